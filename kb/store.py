"""One graph-store interface, two backends (docs/decisions.md#store-neo4j-in-production-ladybug-embedded-by-default): Ladybug embedded, Neo4j 5 over Bolt.

Callers write transaction functions, as in the neo4j driver manual:

    store.write(lambda tx: tx.run("MATCH (p:Product {id: $id}) SET p.name = $name", id=i, name=n))

A transaction function either commits as a whole or, if it raises, leaves nothing behind. Values
always travel as parameters; the only identifiers ever put into query text are labels and
relationship types taken from `kb.schema` (Cypher cannot parameterise them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from kdcvg import errors
from kdcvg.errors import BadInputError, KdcvgError, UnavailableError

T = TypeVar("T")
Row = dict[str, Any]


class StoreError(KdcvgError):
    """A store operation failed; the message says what and why."""


class NotFoundError(StoreError, errors.NotFoundError):
    """A record that the caller named does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else "not found"


class ConflictError(StoreError, errors.ConflictError):
    """An update was based on a stale version of a record (optimistic concurrency), or an id is taken."""


class StoreUnavailableError(StoreError, UnavailableError):
    """The store cannot be reached or refused the login; the message names the setting to check."""


class ReadOnlyError(StoreError, BadInputError):
    """A write was attempted through a read-only connection."""


class QueryTimeoutError(StoreError):
    """A query ran past its timeout and was cancelled."""


class Transaction(Protocol):
    """What a transaction function receives: run one parameterised statement, get rows as dicts."""

    def run(self, query: str, **params: Any) -> list[Row]: ...

    def lock(self, label: str, id: str) -> None:
        """Take the write lock of node (`label`, `id`) until the transaction ends, before reading it to change it."""
        ...


@dataclass(frozen=True)
class QueryResult:
    """Rows of an analyst's query, with column names in RETURN order."""

    columns: list[str]
    rows: list[list[Any]]


class GraphStore(ABC):
    """The operations every backend provides. See the module docstring for the rules."""

    dialect: Literal["ladybug", "neo4j"]
    read_only: bool

    @abstractmethod
    def write(self, work: Callable[[Transaction], T]) -> T:
        """Run `work` in one write transaction; commit if it returns, roll back if it raises."""

    @abstractmethod
    def read(self, work: Callable[[Transaction], T]) -> T:
        """Run `work` in one read transaction."""

    @abstractmethod
    def query(self, text: str, params: Row | None = None, *, timeout_s: float | None = None) -> QueryResult:
        """Run one analyst's statement and return its table; nodes and relationships become dicts."""

    @abstractmethod
    def apply_schema(self, statements: Sequence[str], record: Callable[[Transaction], None]) -> None:
        """Run schema (DDL) statements, then `record` (the migration's bookkeeping write).

        Atomic where the backend allows DDL in a transaction (Ladybug); on Neo4j, where schema and
        data cannot share a transaction, statements run one by one and must be idempotent
        (`IF NOT EXISTS`), so a re-run after a failure completes the migration.
        """

    @abstractmethod
    def bulk_create_nodes(self, tx: Transaction, label: str, rows: Sequence[Row]) -> None:
        """Create many new nodes (ids not yet stored) inside `tx`, the fastest way the backend has."""

    @abstractmethod
    def bulk_create_relationships(self, tx: Transaction, rel_type: str, rows: Sequence[Row]) -> None:
        """Create many new relationships (`from`, `to` ids plus properties) inside `tx`."""

    @abstractmethod
    def bulk_update_nodes(self, tx: Transaction, label: str, rows: Sequence[Row]) -> None:
        """Set every schema property of existing nodes (matched by `id`) to the rows' values."""

    @abstractmethod
    def bulk_update_relationships(self, tx: Transaction, rel_type: str, rows: Sequence[Row]) -> None:
        """Set every schema property of existing relationships (matched by `from`/`to`) to the rows' values."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (and on Ladybug the database lock)."""

    def run(self, query: str, **params: Any) -> list[Row]:
        """Run one write statement in its own transaction."""
        return self.write(lambda tx: tx.run(query, **params))

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
