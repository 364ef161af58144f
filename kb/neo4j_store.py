"""The production store: Neo4j 5 through the official driver (DECISIONS D1, D2).

Writes use the driver's transaction functions (`execute_write`), which retry transient failures;
bulk creation is `UNWIND $rows` in batches inside the caller's transaction, the Neo4j idiom.
A read-only store opens every session in READ access mode, which the server enforces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import neo4j
from neo4j.exceptions import ClientError, Neo4jError, ServiceUnavailable

from kb.schema import node_type, rel_type
from kb.store import (
    ConflictError,
    GraphStore,
    QueryResult,
    QueryTimeoutError,
    ReadOnlyError,
    Row,
    StoreError,
)
from kb.values import plain

T = TypeVar("T")
BATCH_SIZE = 5_000


def _translate(exc: Neo4jError) -> StoreError:
    """Turn a driver error into one of our store errors."""
    code = getattr(exc, "code", "") or ""
    message = getattr(exc, "message", None) or str(exc)
    if "AccessMode" in code or "Forbidden" in code:
        return ReadOnlyError(f"the store is open read-only; refused: {message}")
    if "TransactionTimedOut" in code or "Terminated" in code:
        return QueryTimeoutError("the query ran past its timeout and was cancelled")
    if "ConstraintValidationFailed" in code:
        return ConflictError(message)
    return StoreError(f"{code}: {message}")


def _without_nulls(row: Row) -> Row:
    """Neo4j stores no nulls: an absent property is the null."""
    return {k: v for k, v in row.items() if v is not None}


def _endpoints_and_props(row: Row) -> Row:
    """A relationship row as {from, to, props} for `SET r = row.props`."""
    return {"from": row["from"], "to": row["to"], "props": _without_nulls({k: v for k, v in row.items() if k not in ("from", "to")})}


class _Neo4jTransaction:
    """Wraps the driver's managed transaction so `run` returns plain dict rows."""

    def __init__(self, tx: neo4j.ManagedTransaction) -> None:
        self._tx = tx

    def run(self, query: str, **params: Any) -> list[Row]:
        result = self._tx.run(query, params)
        return [{key: plain(value) for key, value in record.items()} for record in result]


class Neo4jStore(GraphStore):
    """A Neo4j 5 database reached over Bolt."""

    dialect = "neo4j"

    def __init__(
        self, uri: str, *, user: str, password: str | None, database: str | None = None, read_only: bool = False
    ) -> None:
        self.read_only = read_only
        self._database = database
        self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password or ""))
        try:
            self._driver.verify_connectivity()
        except (ServiceUnavailable, Neo4jError, OSError) as exc:
            self._driver.close()
            raise StoreError(f"cannot reach Neo4j at {uri}: {exc}") from None

    def _session(self) -> neo4j.Session:
        mode = neo4j.READ_ACCESS if self.read_only else neo4j.WRITE_ACCESS
        return self._driver.session(database=self._database, default_access_mode=mode)

    def write(self, work: Callable[[Any], T]) -> T:
        if self.read_only:
            raise ReadOnlyError("the store is open read-only; refused a write transaction")
        try:
            with self._session() as session:
                return session.execute_write(lambda tx: work(_Neo4jTransaction(tx)))
        except Neo4jError as exc:
            raise _translate(exc) from exc

    def read(self, work: Callable[[Any], T]) -> T:
        try:
            with self._session() as session:
                return session.execute_read(lambda tx: work(_Neo4jTransaction(tx)))
        except Neo4jError as exc:
            raise _translate(exc) from exc

    def query(self, text: str, params: Row | None = None, *, timeout_s: float | None = None) -> QueryResult:
        try:
            with self._session() as session:
                result = session.run(neo4j.Query(text, timeout=timeout_s), params or {})
                columns = list(result.keys())
                rows = [[plain(value) for value in record.values()] for record in result]
        except ClientError as exc:
            raise _translate(exc) from exc
        except Neo4jError as exc:
            raise _translate(exc) from exc
        return QueryResult(columns, rows)

    def apply_schema(self, statements: Sequence[str], record: Callable[[Any], None]) -> None:
        try:
            with self._session() as session:
                for statement in statements:
                    session.run(statement).consume()
        except Neo4jError as exc:
            raise _translate(exc) from exc
        self.write(record)

    def bulk_create_nodes(self, tx: _Neo4jTransaction, label: str, rows: Sequence[Row]) -> None:
        node_type(label)  # only schema labels ever reach the query text
        for start in range(0, len(rows), BATCH_SIZE):
            batch = [_without_nulls(row) for row in rows[start : start + BATCH_SIZE]]
            tx.run(f"UNWIND $rows AS row CREATE (n:{label}) SET n = row", rows=batch)

    def bulk_create_relationships(self, tx: _Neo4jTransaction, rel_type_name: str, rows: Sequence[Row]) -> None:
        spec = rel_type(rel_type_name)
        query = (
            f"UNWIND $rows AS row MATCH (a:{spec.source} {{id: row.from}}) MATCH (b:{spec.target} {{id: row.to}}) "
            f"CREATE (a)-[r:{spec.type}]->(b) SET r = row.props"
        )
        for start in range(0, len(rows), BATCH_SIZE):
            tx.run(query, rows=[_endpoints_and_props(row) for row in rows[start : start + BATCH_SIZE]])

    def bulk_update_nodes(self, tx: _Neo4jTransaction, label: str, rows: Sequence[Row]) -> None:
        node_type(label)
        for start in range(0, len(rows), BATCH_SIZE):
            batch = [{"id": row["id"], "props": _without_nulls(row)} for row in rows[start : start + BATCH_SIZE]]
            tx.run(f"UNWIND $rows AS row MATCH (n:{label} {{id: row.id}}) SET n = row.props", rows=batch)

    def bulk_update_relationships(self, tx: _Neo4jTransaction, rel_type_name: str, rows: Sequence[Row]) -> None:
        spec = rel_type(rel_type_name)
        query = (
            f"UNWIND $rows AS row MATCH (a:{spec.source} {{id: row.from}})-[r:{spec.type}]->(b:{spec.target} {{id: row.to}}) "
            "SET r = row.props"
        )
        for start in range(0, len(rows), BATCH_SIZE):
            tx.run(query, rows=[_endpoints_and_props(row) for row in rows[start : start + BATCH_SIZE]])

    def close(self) -> None:
        self._driver.close()
