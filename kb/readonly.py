"""A clear, early refusal of analysts' queries that would write.

This is the friendly first line: the real guarantee is the read-only connection (Ladybug opened
read-only, Neo4j sessions in READ access mode), which refuses writes even if this check missed one.
"""

from __future__ import annotations

import re

from kb.store import ReadOnlyError

WRITE_CLAUSES = (
    "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "ALTER", "COPY", "LOAD",
    "INSTALL", "UNINSTALL", "ATTACH", "IMPORT", "EXPORT", "CHECKPOINT", "FOREACH", "BEGIN", "COMMIT", "ROLLBACK",
)  # fmt: skip

# Procedures known to only read (lower case); any other CALL is refused.
READ_PROCEDURES = frozenset(
    {
        "show_tables", "table_info", "show_connection", "show_functions", "show_indexes", "current_setting",
        "db.labels", "db.relationshiptypes", "db.propertykeys", "db.schema.visualization",
        "db.schema.nodetypeproperties", "db.schema.reltypeproperties", "db.indexes", "db.constraints",
        "dbms.components", "db.index.fulltext.querynodes", "db.index.fulltext.queryrelationships",
    }
)  # fmt: skip

_LITERALS_AND_COMMENTS = re.compile(
    r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`|//[^\n]*|/\*.*?\*/""", re.DOTALL
)
_WRITE = re.compile(r"(?<![.\w$])(" + "|".join(WRITE_CLAUSES) + r")\b", re.IGNORECASE)
_CALL = re.compile(r"(?<![.\w$])CALL\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


def check_read_only(text: str) -> None:
    """Raise ReadOnlyError naming the clause if `text` would write; return silently otherwise."""
    code = _LITERALS_AND_COMMENTS.sub(" ", text)
    if not code.strip():
        raise ReadOnlyError("the query is empty")
    if ";" in code.strip().rstrip(";"):
        raise ReadOnlyError("one statement at a time: the query holds several (separated by ';')")
    match = _WRITE.search(code)
    if match:
        raise ReadOnlyError(f"analysts' Cypher is read-only: {match.group(1).upper()} would write (or manage) data")
    for procedure in _CALL.findall(code):
        if procedure.lower() not in READ_PROCEDURES:
            raise ReadOnlyError(f"analysts' Cypher is read-only: procedure {procedure} is not on the list of read-only procedures")
