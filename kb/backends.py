"""Opening the configured store: the one place that knows both backends (Ladybug embedded, Neo4j over Bolt)."""

from __future__ import annotations

from kb.store import GraphStore
from kdcvg.config import Settings


def open_store(settings: Settings, *, read_only: bool = False) -> GraphStore:
    """Open the store the settings name (Ladybug under the data dir unless Neo4j is configured)."""
    if settings.store_backend == "neo4j":
        from kb.neo4j_store import Neo4jStore

        assert settings.neo4j_uri  # Settings validates this
        return Neo4jStore(
            settings.neo4j_uri,
            user=settings.neo4j_user,
            password=settings.neo4j_password,
            database=settings.neo4j_database,
            read_only=read_only,
        )
    from kb.ladybug_store import LadybugStore

    return LadybugStore(settings.ladybug_path, read_only=read_only)
