"""Versioned schema migrations, Flyway style: `migrations/<dialect>/V0001__name.cypher`.

Each applied migration is recorded as a `SchemaMigration` node (version, description, SHA-256 of
its statements, time applied). Before anything runs, every applied migration's file is checked
against its recorded checksum: an edited statement in an applied migration is refused (write a new
migration instead). `//` comments are documentation, outside the checksum, so they may be corrected.
No maintained library serves both Neo4j and Ladybug, so this small runner does.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import migrations as migrations_package
from kb.schema import MIGRATION_LABEL
from kb.store import ConflictError, GraphStore, StoreError, Transaction
from kb.timestamps import utc_now
from kdcvg.errors import KdcvgError

MIGRATIONS_DIR = Path(migrations_package.__file__).resolve().parent  # package data, so wheels can migrate too
FILE_PATTERN = re.compile(r"^V(\d{4})__([a-z0-9_]+)\.cypher$")

LOCK_LABEL = "MigrationLock"
LOCK_WAIT_S = 120.0  # how long a second `kdcvg kb migrate` waits for a running one before refusing

# The bookkeeping table/constraints; created by the runner itself before the first migration.
# On Neo4j, where several processes may migrate one server at once, a MigrationLock node (unique
# by name) lets one run at a time; on Ladybug the database file's single-writer lock does that.
_BOOTSTRAP: dict[str, list[str]] = {
    "ladybug": [
        f"CREATE NODE TABLE IF NOT EXISTS {MIGRATION_LABEL}(version INT64 PRIMARY KEY, "
        "description STRING, checksum STRING, applied_at STRING, execution_ms INT64)"
    ],
    "neo4j": [
        f"CREATE CONSTRAINT schema_migration_version IF NOT EXISTS FOR (m:{MIGRATION_LABEL}) REQUIRE m.version IS UNIQUE",
        f"CREATE CONSTRAINT migration_lock_name IF NOT EXISTS FOR (l:{LOCK_LABEL}) REQUIRE l.name IS UNIQUE",
    ],
}


# Earlier releases hashed whole files, comments included. Stores migrated by them recorded these
# checksums; each is accepted while the file's statements still hash to the second value.
WHOLE_FILE_CHECKSUMS: dict[tuple[str, int], tuple[str, str]] = {
    ("ladybug", 1): ("c000517dc986eb9e8a4c0d69a8c561b5fedeefbccd74929de2fa0e5e652feb8c", "05527faecdcd7b89c6d4dc2accd9af2c30d95e031610946df054776599962fa4"),
    ("ladybug", 2): ("3be06ef62bd22a07864b4ce3995ab96826cde6d74eab517d3234b7685ab0222c", "d67171c56711547280b60295391ddb61dafca78c610d8f849851690421a70f57"),
    ("ladybug", 3): ("77aaa252bef874cecb53479fd1fe2e2977639a84d7f6836ea6dd9949f4386832", "835036a81979f9b90b058b4736bd929d916cd5bbe980a8ebe7dbe5be5a1dce7d"),
    ("neo4j", 1): ("5d9d0ff7ff705aa5469d610fadf5748f41e254e35a42d5424cb7e85939e3d79b", "69ba6d8a76645d67d91f6cd0e60fd9116a597af521ca27d6fe39b05f08b519dd"),
    ("neo4j", 2): ("5dc16c571f44d7373044820db031cb09829ce197b25e88165565469372038c81", "e0b559ddb3994a65e4c30726b60a59157811793c996104feb9dd39deb2c0f2ec"),
    ("neo4j", 3): ("4eed35ca5c24249facb16778b7105efc3d93dc71c28a340922e94c0fcbdc173e", "ac8e1741222f136b73ed52f81e3d7ea618a2fecbc3b40cfe71fda02e3766764f"),
}


class MigrationError(KdcvgError):
    """Migrations cannot run: a bad file name, a duplicate version, or an edited applied migration."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    description: str
    path: Path

    @property
    def statements(self) -> list[str]:
        """The file's statements: `//` comment lines dropped, split at `;`."""
        text = "\n".join(line for line in self.path.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("//"))
        return [statement.strip() for statement in text.split(";") if statement.strip()]

    @property
    def checksum(self) -> str:
        """SHA-256 of the statements (what runs), not of the comments around them."""
        return hashlib.sha256("\n;\n".join(self.statements).encode("utf-8")).hexdigest()

    def matches(self, recorded: str, dialect: str) -> bool:
        """Whether a recorded checksum is this file's, or an earlier release's whole-file checksum of the same statements."""
        return recorded == self.checksum or WHOLE_FILE_CHECKSUMS.get((dialect, self.version)) == (recorded, self.checksum)


@dataclass(frozen=True)
class MigrationStatus:
    """Where one migration stands in a store."""

    version: int
    description: str
    state: Literal["applied", "pending", "checksum mismatch", "file missing"]
    applied_at: str | None = None


def discover(dialect: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The dialect's migration files in version order; refuses bad names and duplicate versions."""
    folder = directory / dialect
    if not folder.is_dir():
        raise MigrationError(f"no migrations folder for dialect {dialect!r} at {folder}")
    migrations: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".cypher":
            continue
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named V0001__lower_snake_name.cypher")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path}: version {version} is also used by {migrations[version].path.name}")
        migrations[version] = Migration(version, match.group(2).replace("_", " "), path)
    return [migrations[v] for v in sorted(migrations)]


def _applied(store: GraphStore) -> dict[int, dict]:
    """The store's migration records by version; none when the bookkeeping table does not exist yet."""
    try:
        rows = store.read(
            lambda tx: tx.run(
                f"MATCH (m:{MIGRATION_LABEL}) RETURN m.version AS version, m.checksum AS checksum, "
                "m.applied_at AS applied_at, m.description AS description"
            )
        )
    except StoreError as exc:
        if store.dialect == "ladybug" and f"Table {MIGRATION_LABEL} does not exist" in str(exc):
            return {}  # never migrated
        raise
    return {row["version"]: row for row in rows}


def _bootstrap(store: GraphStore) -> None:
    store.apply_schema(_BOOTSTRAP[store.dialect], lambda tx: None)


@contextmanager
def _migration_lock(store: GraphStore, wait_s: float) -> Iterator[None]:
    """Hold the store's migration lock (Neo4j: a unique MigrationLock node); wait up to `wait_s` for it, then refuse."""
    if store.dialect != "neo4j":  # Ladybug: the open database file is already the one writer
        yield
        return
    holder = f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            store.write(lambda tx: tx.run(f"CREATE (:{LOCK_LABEL} {{name: 'migrate', holder: $holder}})", holder=holder))
            break
        except ConflictError:
            if time.monotonic() > deadline:
                rows = store.read(lambda tx: tx.run(f"MATCH (l:{LOCK_LABEL} {{name: 'migrate'}}) RETURN l.holder AS holder"))
                other = rows[0]["holder"] if rows else "another process"
                raise MigrationError(
                    f"another `kdcvg kb migrate` holds the migration lock ({other}); waited {wait_s:.0f} s. "
                    f"If that process died, remove the lock: MATCH (l:{LOCK_LABEL}) DELETE l"
                ) from None
            time.sleep(0.2)
    try:
        yield
    finally:
        store.write(lambda tx: tx.run(f"MATCH (l:{LOCK_LABEL} {{name: 'migrate', holder: $holder}}) DELETE l", holder=holder))


def status(store: GraphStore, directory: Path = MIGRATIONS_DIR) -> list[MigrationStatus]:
    """Every migration known to the files or to the store, with its state; writes nothing."""
    files = {m.version: m for m in discover(store.dialect, directory)}
    applied = _applied(store)
    result = []
    for version in sorted(files.keys() | applied.keys()):
        migration, record = files.get(version), applied.get(version)
        if migration is None:
            result.append(MigrationStatus(version, record["description"], "file missing", record["applied_at"]))
        elif record is None:
            result.append(MigrationStatus(version, migration.description, "pending"))
        elif not migration.matches(record["checksum"], store.dialect):
            result.append(MigrationStatus(version, migration.description, "checksum mismatch", record["applied_at"]))
        else:
            result.append(MigrationStatus(version, migration.description, "applied", record["applied_at"]))
    return result


def migrate(store: GraphStore, directory: Path = MIGRATIONS_DIR, *, lock_wait_s: float = LOCK_WAIT_S) -> list[Migration]:
    """Apply pending migrations in order; returns those applied (none when up to date).

    One migration run at a time per store: a second one waits for the first (then finds nothing
    pending) or, after `lock_wait_s`, refuses.
    """
    discover(store.dialect, directory)  # refuse bad files before touching the store
    _bootstrap(store)
    with _migration_lock(store, lock_wait_s):
        return _apply_pending(store, directory)


def _apply_pending(store: GraphStore, directory: Path) -> list[Migration]:
    states = status(store, directory)
    broken = [s for s in states if s.state in ("checksum mismatch", "file missing")]
    if broken:
        details = "; ".join(f"V{s.version:04d} ({s.description}): {s.state}" for s in broken)
        raise MigrationError(
            f"refusing to migrate, applied migrations do not match their files: {details}. "
            "Never edit an applied migration: restore it and add a new one."
        )
    pending = {s.version for s in states if s.state == "pending"}
    applied = []
    for migration in discover(store.dialect, directory):
        if migration.version not in pending:
            continue
        started = time.perf_counter()

        def record(tx: Transaction, migration: Migration = migration) -> None:
            tx.run(
                f"CREATE (m:{MIGRATION_LABEL} {{version: $version, description: $description, "
                "checksum: $checksum, applied_at: $applied_at, execution_ms: $ms})",
                version=migration.version,
                description=migration.description,
                checksum=migration.checksum,
                applied_at=utc_now(),
                ms=int((time.perf_counter() - started) * 1000),
            )

        try:
            store.apply_schema(migration.statements, record)
        except Exception as exc:
            raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
        applied.append(migration)
    return applied


def ensure_up_to_date(store: GraphStore, directory: Path = MIGRATIONS_DIR) -> None:
    """Raise MigrationError telling the user to migrate unless every migration is applied."""
    pending = [s for s in status(store, directory) if s.state != "applied"]
    if pending:
        raise MigrationError(f"the store's schema is not up to date ({len(pending)} migration(s) not applied): run `kdcvg kb migrate`")
