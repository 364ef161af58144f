"""Migrations: fresh apply, re-apply is a no-op, an edited applied migration is refused before anything runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kb import migrate
from kb.schema import MIGRATION_LABEL, NODE_TYPES, REL_TYPES
from kb.stats import ackb_stats
from kb.store import GraphStore


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, target)
    return target


def test_fresh_apply_creates_schema_and_records_it(empty_store: GraphStore, migrations_copy: Path) -> None:
    applied = migrate.migrate(empty_store, migrations_copy)
    files = migrate.discover(empty_store.dialect, migrations_copy)
    assert [m.version for m in applied] == [m.version for m in files] != []
    states = migrate.status(empty_store, migrations_copy)
    assert {s.state for s in states} == {"applied"}
    assert all(s.applied_at and s.applied_at.endswith("Z") for s in states)
    stats = ackb_stats(empty_store)  # every schema label and type can be queried
    assert set(stats["nodes"]) == set(NODE_TYPES) and set(stats["relationships"]) == set(REL_TYPES)
    assert stats["schema_version"] == files[-1].version


def test_reapply_is_a_no_op(empty_store: GraphStore, migrations_copy: Path) -> None:
    migrate.migrate(empty_store, migrations_copy)
    before = migrate.status(empty_store, migrations_copy)
    assert migrate.migrate(empty_store, migrations_copy) == []
    assert migrate.status(empty_store, migrations_copy) == before


def test_new_migration_is_applied_after_existing_ones(empty_store: GraphStore, migrations_copy: Path) -> None:
    migrate.migrate(empty_store, migrations_copy)
    statement = {
        "ladybug": "CREATE NODE TABLE Scratch(id STRING PRIMARY KEY);",
        "neo4j": "CREATE CONSTRAINT scratch_id IF NOT EXISTS FOR (n:Scratch) REQUIRE n.id IS UNIQUE;",
    }[empty_store.dialect]
    (migrations_copy / empty_store.dialect / "V0999__scratch_table.cypher").write_text(statement + "\n")
    applied = migrate.migrate(empty_store, migrations_copy)
    assert [(m.version, m.description) for m in applied] == [(999, "scratch table")]
    if empty_store.dialect == "neo4j":
        empty_store.run("DROP CONSTRAINT scratch_id IF EXISTS")


def test_tampered_applied_migration_is_refused_before_anything_runs(empty_store: GraphStore, migrations_copy: Path) -> None:
    migrate.migrate(empty_store, migrations_copy)
    first = migrate.discover(empty_store.dialect, migrations_copy)[0]
    first.path.write_text(first.path.read_text().replace("CREATE", "CREATE  ", 1))  # one statement changed
    marker = "V0998__would_run.cypher"
    (migrations_copy / empty_store.dialect / marker).write_text(
        {"ladybug": "CREATE NODE TABLE WouldRun(id STRING PRIMARY KEY);", "neo4j": "CREATE (:WouldRun {id: 'x'});"}[empty_store.dialect]
    )
    with pytest.raises(migrate.MigrationError, match=r"V0001 \(core schema\): checksum mismatch"):
        migrate.migrate(empty_store, migrations_copy)
    states = {s.version: s.state for s in migrate.status(empty_store, migrations_copy)}
    assert states[1] == "checksum mismatch" and states[998] == "pending"  # the pending one did not run


def test_applied_migration_whose_file_vanished_is_refused(empty_store: GraphStore, migrations_copy: Path) -> None:
    migrate.migrate(empty_store, migrations_copy)
    migrate.discover(empty_store.dialect, migrations_copy)[0].path.unlink()
    with pytest.raises(migrate.MigrationError, match="file missing"):
        migrate.migrate(empty_store, migrations_copy)


@pytest.mark.parametrize(
    "name, message",
    [("V1__short.cypher", "named V0001__"), ("V0002-dash.cypher", "named V0001__"), ("V0001__duplicate.cypher", "also used by")],
)
def test_bad_migration_files_are_refused(tmp_path: Path, name: str, message: str) -> None:
    folder = tmp_path / "ladybug"
    folder.mkdir()
    (folder / "V0001__core.cypher").write_text("CREATE NODE TABLE A(id STRING PRIMARY KEY);")
    (folder / name).write_text("CREATE NODE TABLE B(id STRING PRIMARY KEY);")
    with pytest.raises(migrate.MigrationError, match=message):
        migrate.discover("ladybug", tmp_path)


def test_statements_ignore_comments_and_split_on_semicolons(tmp_path: Path) -> None:
    folder = tmp_path / "ladybug"
    folder.mkdir()
    (folder / "V0001__two.cypher").write_text("// header; with a semicolon\nCREATE A;\n\nCREATE B(\n x);\n")
    assert migrate.discover("ladybug", tmp_path)[0].statements == ["CREATE A", "CREATE B(\n x)"]


def test_ladybug_tables_match_the_schema(store: GraphStore) -> None:
    if store.dialect != "ladybug":
        pytest.skip("table introspection is Ladybug's")
    for spec in NODE_TYPES.values():
        rows = store.query(f"CALL table_info('{spec.label}') RETURN name, type").rows
        assert [(name, kind) for name, kind in rows] == list(spec.all_properties.items())
    for spec in REL_TYPES.values():
        rows = store.query(f"CALL table_info('{spec.type}') RETURN name, type").rows
        assert [(name, kind) for name, kind in rows] == list(spec.properties.items())


def test_comments_are_outside_the_checksum(empty_store: GraphStore, migrations_copy: Path) -> None:
    migrate.migrate(empty_store, migrations_copy)
    first = migrate.discover(empty_store.dialect, migrations_copy)[0]
    first.path.write_text("// a corrected comment\n" + first.path.read_text())
    assert {s.state for s in migrate.status(empty_store, migrations_copy)} == {"applied"}


def test_whole_file_checksums_of_earlier_releases_are_accepted_while_statements_are_unchanged(
    empty_store: GraphStore, migrations_copy: Path
) -> None:
    migrate.migrate(empty_store, migrations_copy)
    first = migrate.discover(empty_store.dialect, migrations_copy)[0]
    whole_file, statements = migrate.WHOLE_FILE_CHECKSUMS[(empty_store.dialect, first.version)]
    assert first.checksum == statements  # the shipped file still runs what earlier releases ran
    empty_store.write(lambda tx: tx.run(f"MATCH (m:{MIGRATION_LABEL} {{version: 1}}) SET m.checksum = $c", c=whole_file))
    assert {s.state for s in migrate.status(empty_store, migrations_copy)} == {"applied"}
    first.path.write_text(first.path.read_text().replace("CREATE", "CREATE  ", 1))
    assert migrate.status(empty_store, migrations_copy)[0].state == "checksum mismatch"
