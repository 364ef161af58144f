"""The ACKB's versioned schema migrations, one folder per Cypher dialect, shipped as package data.

Kept at the repository's top level as the design says; being a package lets a wheel carry the
`.cypher` files so that a non-editable install can still migrate (`kb.migrate.MIGRATIONS_DIR`).
"""
