"""The embedded default store: Ladybug (the maintained successor of Kùzu), one file on disk.

Ladybug aborts a transaction by itself when a statement fails and would then run later statements
in auto-commit mode; `_LadybugTransaction` refuses any statement after a failure so a transaction
function can never half-commit. Bulk creation uses `COPY ... FROM` an Arrow table (docs/decisions.md#bulk-load-copy-on-ladybug-unwind-batches-on-neo4j).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import ladybug
import pyarrow as pa

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
UPDATE_BATCH = 5_000

# Database files open in this process. Two handles on one file in one process do not see each
# other's writes, and a write through one was seen lost after reopening: share the open store.
_OPEN_IN_PROCESS: set[Path] = set()

_ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "STRING[]": pa.list_(pa.string()),
    "DOUBLE": pa.float64(),
    "INT64": pa.int64(),
}


def _translate(exc: Exception, query: str) -> StoreError:
    """Turn a Ladybug exception into one of our store errors with a readable message."""
    message = str(exc)
    first_line = query.strip().splitlines()[0][:120] if query.strip() else ""
    if "read-only database" in message:
        return ReadOnlyError(f"the store is open read-only; refused: {first_line}")
    if "Interrupted" in message:
        return QueryTimeoutError("the query ran past its timeout and was cancelled")
    if "duplicated primary key" in message:
        return ConflictError(message)
    return StoreError(f"{message} (in: {first_line})")


class _LadybugTransaction:
    """A transaction handle given to transaction functions; dead after the first failed statement."""

    def __init__(self, connection: ladybug.Connection) -> None:
        self._connection = connection
        self.failed = False

    def run(self, query: str, **params: Any) -> list[Row]:
        return [self._plain_row(row) for row in self.execute(query, params).rows_as_dict()]

    def execute(self, query: str, params: dict[str, Any]) -> ladybug.QueryResult:
        """Run one statement; any failure poisons the transaction."""
        if self.failed:
            raise StoreError("the transaction was aborted by an earlier error; no statement may follow")
        try:
            result = self._connection.execute(query, params)
        except RuntimeError as exc:
            self.failed = True
            raise _translate(exc, query) from exc
        if isinstance(result, list):
            self.failed = True
            raise StoreError("one statement at a time: the query text holds several")
        return result

    def lock(self, label: str, id: str) -> None:
        """Nothing to do: Ladybug runs one write transaction at a time."""

    @staticmethod
    def _plain_row(row: dict[str, Any]) -> Row:
        return {key: plain(value) for key, value in row.items()}


class LadybugStore(GraphStore):
    """Ladybug database file at `path`; `read_only=True` opens it so no write can happen."""

    dialect = "ladybug"

    def __init__(
        self, path: Path, *, read_only: bool = False, buffer_pool_bytes: int = 0, max_db_bytes: int | None = None
    ) -> None:
        """Open `path`; the byte sizes cap Ladybug's memory (0 / None: its defaults, sized to the machine)."""
        path = Path(path)
        if read_only and not path.exists():
            raise StoreError(f"no knowledge base at {path}: run `kdcvg kb migrate` (or `make demo`) first")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.read_only = read_only
        key = path.resolve()
        if key in _OPEN_IN_PROCESS:
            raise StoreError(
                f"{path} is already open in this process: use that store (a second handle on one Ladybug "
                "file does not see the first one's writes and can lose them)"
            )
        self._database = _open_database(path, read_only, buffer_pool_bytes=buffer_pool_bytes, max_db_bytes=max_db_bytes)
        self._connection = ladybug.Connection(self._database)
        _OPEN_IN_PROCESS.add(key)
        self._key = key

    def _in_transaction(self, work: Callable[[_LadybugTransaction], T], begin: str) -> T:
        self._connection.execute(begin)
        tx = _LadybugTransaction(self._connection)
        try:
            result = work(tx)
        except BaseException:
            self._rollback()
            raise
        if tx.failed:  # work swallowed an error: never commit what is left
            self._rollback()
            raise StoreError("the transaction failed and was rolled back")
        self._connection.execute("COMMIT")
        return result

    def _rollback(self) -> None:
        try:
            self._connection.execute("ROLLBACK")
        except RuntimeError:
            pass  # Ladybug already rolled back when the failing statement ran

    def write(self, work: Callable[[Any], T]) -> T:
        return self._in_transaction(work, "BEGIN TRANSACTION")

    def read(self, work: Callable[[Any], T]) -> T:
        return self._in_transaction(work, "BEGIN TRANSACTION READ ONLY")

    def query(self, text: str, params: Row | None = None, *, timeout_s: float | None = None) -> QueryResult:
        tx = _LadybugTransaction(self._connection)
        self._connection.set_query_timeout(int(timeout_s * 1000) if timeout_s else 0)
        try:
            result = tx.execute(text, params or {})
            columns = list(result.get_column_names())
            rows = [[plain(value) for value in row] for row in result.get_all()]
        finally:
            self._connection.set_query_timeout(0)
        return QueryResult(columns, rows)

    def apply_schema(self, statements: Sequence[str], record: Callable[[Any], None]) -> None:
        def work(tx: _LadybugTransaction) -> None:
            for statement in statements:
                tx.run(statement)
            record(tx)

        self.write(work)

    def bulk_create_nodes(self, tx: _LadybugTransaction, label: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        properties = node_type(label).all_properties
        table = _arrow_table(rows, {name: properties[name] for name in properties})
        tx.execute(f"COPY {label} FROM $rows", {"rows": table})

    def bulk_create_relationships(self, tx: _LadybugTransaction, rel_type_name: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        columns = {"from": "STRING", "to": "STRING", **rel_type(rel_type_name).properties}
        tx.execute(f"COPY {rel_type_name} FROM $rows", {"rows": _arrow_table(rows, columns)})

    def bulk_update_nodes(self, tx: _LadybugTransaction, label: str, rows: Sequence[Row]) -> None:
        properties = {k: v for k, v in node_type(label).all_properties.items() if k != "id"}
        match = f"MATCH (n:{label} {{id: row.id}})"
        _unwind_set(tx, match, "n", properties, rows)

    def bulk_update_relationships(self, tx: _LadybugTransaction, rel_type_name: str, rows: Sequence[Row]) -> None:
        spec = rel_type(rel_type_name)
        match = f"MATCH (a:{spec.source} {{id: row.from}})-[r:{spec.type}]->(b:{spec.target} {{id: row.to}})"
        _unwind_set(tx, match, "r", spec.properties, rows)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._database.close()
            self._connection = None  # type: ignore[assignment]
            _OPEN_IN_PROCESS.discard(self._key)


RECOVERY_PENDING = "checkpoint recovery is pending"  # Ladybug's words when a writer died mid-checkpoint


def _open_database(path: Path, read_only: bool, *, buffer_pool_bytes: int = 0, max_db_bytes: int | None = None) -> ladybug.Database:
    """Open the database file; a read-only open that finds an interrupted checkpoint completes it first.

    A process killed while checkpointing leaves recovery files that only a read-write open replays;
    until then every read-only open fails. When no other process holds the file, one read-write
    open (which runs the recovery) and close make the read-only open succeed.
    """
    sizes = {"buffer_pool_size": buffer_pool_bytes, "max_db_size": max_db_bytes}
    try:
        return _database(path, read_only, **sizes)
    except StoreError as exc:
        if not read_only or RECOVERY_PENDING not in str(exc):
            raise
    _database(path, read_only=False).close()  # replays the interrupted checkpoint; refused if another process holds it
    return _database(path, read_only=True, **sizes)


def _database(path: Path, read_only: bool, *, buffer_pool_size: int = 0, max_db_size: int | None = None) -> ladybug.Database:
    """`ladybug.Database` (sizes: 0 / None keep Ladybug's defaults), its errors as StoreError with a readable message."""
    try:
        return ladybug.Database(str(path), read_only=read_only, buffer_pool_size=buffer_pool_size, max_db_size=max_db_size)
    except RuntimeError as exc:
        if "lock" in str(exc).lower():
            raise StoreError(
                f"{path} is open for writing in another process (Ladybug allows one writer; "
                "use Neo4j for several concurrent writers)"
            ) from None
        raise StoreError(f"cannot open {path}: {exc}") from None


def _unwind_set(tx: _LadybugTransaction, match: str, variable: str, properties: dict[str, str], rows: Sequence[Row]) -> None:
    """`UNWIND $rows ... SET` in batches; CAST gives Ladybug each column's type even when all are null."""
    if not rows or not properties:
        return
    assignments = ", ".join(f"{variable}.{name} = CAST(row.{name} AS {kind})" for name, kind in properties.items())
    for start in range(0, len(rows), UPDATE_BATCH):
        batch = list(rows[start : start + UPDATE_BATCH])
        tx.execute(f"UNWIND $rows AS row {match} SET {assignments}", {"rows": batch})


def _arrow_table(rows: Sequence[Row], columns: dict[str, str]) -> pa.Table:
    """Rows as an Arrow table with the columns in table order; absent values become nulls."""
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in columns.items()])
    return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in columns}, schema=schema)
