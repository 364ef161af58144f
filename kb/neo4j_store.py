"""The production store: Neo4j 5 through the official driver (docs/decisions.md#store-neo4j-in-production-ladybug-embedded-by-default).

Writes use the driver's transaction functions (`execute_write`), which retry transient failures
(deadlocks, a leader switch) for up to `retry_s`; bulk creation is `UNWIND $rows` in batches inside
the caller's transaction, the Neo4j idiom. A read-only store opens every session in READ access
mode, which the server enforces. The database is always named (default `neo4j`), so no session
asks the server for the user's home database first. `bolt://` and `neo4j://` (routing) URIs work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import neo4j
from neo4j.exceptions import AuthError, DriverError, Neo4jError

from kb.schema import node_type, rel_type
from kb.store import (
    ConflictError,
    GraphStore,
    QueryResult,
    QueryTimeoutError,
    ReadOnlyError,
    Row,
    StoreError,
    StoreUnavailableError,
)
from kb.values import plain, without_nulls

T = TypeVar("T")
BATCH_SIZE = 5_000
DEFAULT_DATABASE = "neo4j"
URI_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")  # Bolt only: direct or routing
RETRY_S = 30.0  # how long transaction functions retry transient errors (the driver's default)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _translate(exc: Neo4jError | DriverError, uri: str, database: str = DEFAULT_DATABASE) -> StoreError:
    """Turn a driver error into one of our store errors, with a one-line message."""
    if isinstance(exc, AuthError):
        return StoreUnavailableError(
            f"Neo4j at {uri} (NEO4J_URI) refused the login: wrong user or password (NEO4J_USER, NEO4J_PASSWORD)"
        )
    if not isinstance(exc, Neo4jError):  # ServiceUnavailable, SessionExpired, ...: the server is gone
        return StoreUnavailableError(f"cannot reach Neo4j at {uri} (NEO4J_URI): {_one_line(exc)}")
    code = exc.code or ""
    message = _one_line(exc.message or exc)
    if code.endswith(".DatabaseNotFound"):
        return StoreUnavailableError(f"Neo4j at {uri} (NEO4J_URI) has no database {database!r} (NEO4J_DATABASE)")
    if code.endswith(".AccessMode") or "Forbidden" in code:
        return ReadOnlyError(f"the store is open read-only; refused: {message}")
    if "TransactionTimedOut" in code or code.endswith(".Terminated"):
        return QueryTimeoutError("the query ran past its timeout and was cancelled")
    if "ConstraintValidationFailed" in code:
        return ConflictError(message)
    return StoreError(f"{code}: {message}")


def _endpoints_and_props(row: Row) -> Row:
    """A relationship row as {from, to, props} for `SET r = row.props`."""
    return {"from": row["from"], "to": row["to"], "props": without_nulls({k: v for k, v in row.items() if k not in ("from", "to")})}


class _Neo4jTransaction:
    """Wraps the driver's managed transaction: `run` returns plain dict rows, errors become store errors.

    Like Ladybug's, it is dead after its first failed statement, so a caller that swallows an
    error can never commit what is left. Retryable errors stay the driver's own, so that
    `execute_write` runs the whole transaction function again.
    """

    def __init__(self, tx: neo4j.ManagedTransaction, uri: str, database: str) -> None:
        self._tx = tx
        self._uri = uri
        self._database = database
        self.failed = False

    def run(self, query: str, **params: Any) -> list[Row]:
        if self.failed:
            raise StoreError("the transaction was aborted by an earlier error; no statement may follow")
        try:
            result = self._tx.run(query, params)
            return [{key: plain(value) for key, value in record.items()} for record in result]
        except (Neo4jError, DriverError) as exc:
            self.failed = True
            if exc.is_retryable():
                raise
            raise _translate(exc, self._uri, self._database) from exc

    def lock(self, label: str, id: str) -> None:
        """Write-lock the node: Neo4j reads at read-committed isolation, so a read-then-write is atomic
        only once the lock is held. The write must not read the node (a `SET n.version = n.version`
        would evaluate the old value before waiting and write it back), hence a throwaway property."""
        node_type(label)  # only schema labels ever reach the query text
        self.run(f"MATCH (n:{label} {{id: $id}}) SET n._lock = true REMOVE n._lock", id=id)


class Neo4jStore(GraphStore):
    """A Neo4j 5 database reached over Bolt."""

    dialect = "neo4j"

    def __init__(
        self,
        uri: str,
        *,
        user: str,
        password: str | None,
        database: str | None = None,
        read_only: bool = False,
        retry_s: float = RETRY_S,
    ) -> None:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in URI_SCHEMES:
            raise StoreUnavailableError(f"NEO4J_URI {uri!r} must start with one of {', '.join(s + '://' for s in URI_SCHEMES)}")
        self.read_only = read_only
        self.uri = uri
        self.database = database or DEFAULT_DATABASE
        try:
            self._driver = neo4j.GraphDatabase.driver(
                uri,
                auth=(user, password or ""),
                max_transaction_retry_time=retry_s,
                notifications_min_severity="OFF",  # the server's hints (e.g. an unknown property key) are not the user's errors
            )
        except (ValueError, DriverError) as exc:  # a malformed URI or scheme
            raise StoreUnavailableError(f"NEO4J_URI {uri!r} is not a Neo4j URI: {_one_line(exc)}") from None
        try:
            self._driver.verify_connectivity()
        except (DriverError, Neo4jError, OSError) as exc:
            self._driver.close()
            if isinstance(exc, (DriverError, Neo4jError)):
                raise _translate(exc, uri, self.database) from None
            raise StoreUnavailableError(f"cannot reach Neo4j at {uri} (NEO4J_URI): {_one_line(exc)}") from None

    def _session(self) -> neo4j.Session:
        mode = neo4j.READ_ACCESS if self.read_only else neo4j.WRITE_ACCESS
        return self._driver.session(database=self.database, default_access_mode=mode)

    def _run_work(self, tx: neo4j.ManagedTransaction, work: Callable[[Any], T]) -> T:
        """Run `work` on a wrapped transaction; a swallowed failure rolls back instead of committing."""
        wrapped = _Neo4jTransaction(tx, self.uri, self.database)
        result = work(wrapped)
        if wrapped.failed:
            raise StoreError("the transaction failed and was rolled back")
        return result

    def write(self, work: Callable[[Any], T]) -> T:
        if self.read_only:
            raise ReadOnlyError("the store is open read-only; refused a write transaction")
        try:
            with self._session() as session:
                return session.execute_write(self._run_work, work)
        except (Neo4jError, DriverError) as exc:
            raise _translate(exc, self.uri, self.database) from exc

    def read(self, work: Callable[[Any], T]) -> T:
        try:
            with self._session() as session:
                return session.execute_read(self._run_work, work)
        except (Neo4jError, DriverError) as exc:
            raise _translate(exc, self.uri, self.database) from exc

    def query(self, text: str, params: Row | None = None, *, timeout_s: float | None = None) -> QueryResult:
        """Run an analyst's statement in its own transaction, in READ access mode when read-only (the server refuses writes)."""
        try:
            with self._session() as session:
                result = session.run(neo4j.Query(text, timeout=timeout_s), params or {})
                columns = list(result.keys())
                rows = [[plain(value) for value in record.values()] for record in result]
        except (Neo4jError, DriverError) as exc:
            raise _translate(exc, self.uri, self.database) from exc
        return QueryResult(columns, rows)

    def apply_schema(self, statements: Sequence[str], record: Callable[[Any], None]) -> None:
        if self.read_only:
            raise ReadOnlyError("the store is open read-only; refused a schema change")
        try:
            with self._session() as session:
                for statement in statements:  # each in its own transaction, retried like any write (schema locks deadlock too)
                    session.execute_write(lambda tx, statement=statement: tx.run(statement).consume())
        except (Neo4jError, DriverError) as exc:
            raise _translate(exc, self.uri, self.database) from exc
        self.write(record)

    def bulk_create_nodes(self, tx: _Neo4jTransaction, label: str, rows: Sequence[Row]) -> None:
        node_type(label)  # only schema labels ever reach the query text
        for start in range(0, len(rows), BATCH_SIZE):
            batch = [without_nulls(row) for row in rows[start : start + BATCH_SIZE]]
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
            batch = [{"id": row["id"], "props": without_nulls(row)} for row in rows[start : start + BATCH_SIZE]]
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
