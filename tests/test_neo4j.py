"""Neo4j-specific behaviour on a real server: the local launcher, URIs, errors, read-only, migrations, a killed server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import migrate, neo4j_server
from kb.interchange import import_ackb, write_ackb
from kb.neo4j_store import Neo4jStore
from kb.stats import ackb_stats
from kb.store import ConflictError, GraphStore, QueryTimeoutError, ReadOnlyError, StoreUnavailableError
from kb.synthetic import synthetic_rows
from tests.conftest import reset_migrated_neo4j, snapshot, wipe_neo4j


@pytest.fixture
def server(local_neo4j: neo4j_server.Neo4jServer) -> neo4j_server.Neo4jServer:
    """The server this session started (tests that restart or kill it need its process)."""
    return local_neo4j


@pytest.fixture
def neo4j_store(neo4j_server_uri: tuple[str, str, str]) -> Iterator[Neo4jStore]:
    uri, user, password = neo4j_server_uri
    store = Neo4jStore(uri, user=user, password=password)
    reset_migrated_neo4j(store)
    yield store
    store.close()


def test_starting_again_reuses_the_running_server(server: neo4j_server.Neo4jServer) -> None:
    current = neo4j_server.running(server.home)
    assert current is not None
    again = neo4j_server.start(server.home)
    assert (again.pid, again.uri, again.password) == (current.pid, server.uri, server.password)
    assert (server.home / "password").stat().st_mode & 0o077 == 0  # the password file is the owner's only


def test_start_prints_export_lines_a_shell_can_eval(server: neo4j_server.Neo4jServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kb.neo4j_server", "start", "--home", str(server.home)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"export NEO4J_URI={server.uri} NEO4J_USER=neo4j NEO4J_PASSWORD={server.password}\n"
    assert "already running" in result.stderr


@pytest.mark.parametrize("scheme", ["bolt", "neo4j"])
def test_direct_and_routing_uris_both_work(server: neo4j_server.Neo4jServer, scheme: str) -> None:
    uri = server.uri.replace("bolt://", f"{scheme}://")
    with Neo4jStore(uri, user=server.user, password=server.password) as store:
        assert store.query("RETURN 40 + 2 AS answer").rows == [[42]]
        assert store.read(lambda tx: tx.run("CALL db.info() YIELD name RETURN name"))[0]["name"] == "neo4j"


def test_wrong_password_is_one_clear_error(server: neo4j_server.Neo4jServer) -> None:
    with pytest.raises(StoreUnavailableError, match=r"NEO4J_URI\) refused the login: wrong user or password"):
        Neo4jStore(server.uri, user=server.user, password="not-the-password")


def test_refused_connection_and_wrong_password_are_one_line_with_exit_code_2(server: neo4j_server.Neo4jServer, tmp_path: Path) -> None:
    base = {**os.environ, "KDCVG_DATA": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    cases = {
        f"bolt://127.0.0.1:{neo4j_server.free_port()}": (server.password, "cannot reach Neo4j at"),
        server.uri: ("not-the-password", "refused the login"),
        "http://127.0.0.1:7474": (server.password, "must start with one of bolt://"),
    }
    for uri, (password, expected) in cases.items():
        env = {**base, "NEO4J_URI": uri, "NEO4J_USER": "neo4j", "NEO4J_PASSWORD": password}
        result = subprocess.run([sys.executable, "-m", "cli.main", "kb", "migrate"], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "NEO4J_URI" in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def test_read_only_store_refuses_a_write_even_past_the_keyword_guard(neo4j_server_uri: tuple[str, str, str], neo4j_store: Neo4jStore) -> None:
    uri, user, password = neo4j_server_uri
    with Neo4jStore(uri, user=user, password=password, read_only=True) as read_only:
        for write in ("CREATE (:Product {id: 'sneaked'})", "MATCH (m:SchemaMigration) DETACH DELETE m", "CREATE INDEX sneaked FOR (n:X) ON (n.y)"):
            with pytest.raises(ReadOnlyError):
                read_only.query(write)  # store.query() directly: kb.readonly's check is not in the way
        with pytest.raises(ReadOnlyError):
            read_only.read(lambda tx: tx.run("CREATE (:Product {id: 'sneaked'})"))
    assert neo4j_store.query("MATCH (p:Product {id: 'sneaked'}) RETURN count(p)").rows == [[0]]
    assert neo4j_store.query("SHOW INDEXES YIELD name WHERE name = 'sneaked' RETURN name").rows == []
    assert {s.state for s in migrate.status(neo4j_store)} == {"applied"}


def test_uniqueness_violation_and_timeout_become_store_errors(neo4j_store: Neo4jStore) -> None:
    neo4j_store.run("CREATE (:Category {id: 'c1', name: 'A', version: 1})")
    with pytest.raises(ConflictError, match="already exists"):
        neo4j_store.run("CREATE (:Category {id: 'c1', name: 'B', version: 1})")
    assert neo4j_store.query("MATCH (c:Category) RETURN c.name").rows == [["A"]]
    with pytest.raises(QueryTimeoutError):
        neo4j_store.query("UNWIND range(1, 2000000000) AS x WITH x WHERE x % 7 = 99 RETURN count(x)", timeout_s=0.5)


def test_database_name_is_explicit(neo4j_server_uri: tuple[str, str, str]) -> None:
    uri, user, password = neo4j_server_uri
    with Neo4jStore(uri, user=user, password=password) as store:
        assert store.database == "neo4j"
    with Neo4jStore(uri, user=user, password=password, database="nosuchdb") as store:
        with pytest.raises(StoreUnavailableError, match=r"no database 'nosuchdb' \(NEO4J_DATABASE\)"):
            store.query("RETURN 1")


def _schema_and_data(store: GraphStore) -> tuple:
    if store.dialect == "neo4j":
        return (
            store.query("SHOW CONSTRAINTS YIELD name RETURN name ORDER BY name").rows,
            store.query("SHOW INDEXES YIELD name RETURN name ORDER BY name").rows,
            store.query("MATCH (n) RETURN labels(n), count(n) ORDER BY labels(n)").rows,
        )
    return (store.query("CALL show_tables() RETURN name ORDER BY name").rows,)


@pytest.mark.parametrize("migrated", [False, True])
def test_migrate_status_writes_nothing(empty_store: GraphStore, migrated: bool) -> None:
    if migrated:
        migrate.migrate(empty_store)
    before = _schema_and_data(empty_store)
    states = migrate.status(empty_store)
    assert {s.state for s in states} == ({"applied"} if migrated else {"pending"})
    assert _schema_and_data(empty_store) == before


def test_two_migrations_at_once_apply_once(neo4j_server_uri: tuple[str, str, str]) -> None:
    uri, user, password = neo4j_server_uri
    stores = [Neo4jStore(uri, user=user, password=password) for _ in range(2)]
    wipe_neo4j(stores[0])
    start = threading.Barrier(2)
    applied: list[list[int]] = []

    def run(store: Neo4jStore) -> None:
        start.wait()
        applied.append([m.version for m in migrate.migrate(store)])

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = [m.version for m in migrate.discover("neo4j")]
    assert sorted(applied) == [[], files]  # one applied everything, the other waited and found nothing to do
    assert stores[0].query("MATCH (m:SchemaMigration) RETURN m.version ORDER BY m.version").rows == [[v] for v in files]
    assert stores[0].query(f"MATCH (l:{migrate.LOCK_LABEL}) RETURN count(l)").rows == [[0]]
    for store in stores:
        store.close()


def test_a_held_migration_lock_makes_a_second_migration_refuse(neo4j_store: Neo4jStore) -> None:
    neo4j_store.run(f"CREATE (:{migrate.LOCK_LABEL} {{name: 'migrate', holder: 'pid 1 on elsewhere'}})")
    with pytest.raises(migrate.MigrationError, match=r"another `kdcvg kb migrate` holds the migration lock \(pid 1 on elsewhere\)"):
        migrate.migrate(neo4j_store, lock_wait_s=0.5)


class _KillAfterWriting(Neo4jStore):
    """A Neo4j store whose import transaction kills the server (SIGKILL) once it has written every relationship."""

    server: neo4j_server.Neo4jServer

    def bulk_create_relationships(self, tx, rel_type_name, rows):  # noqa: ANN001, ANN201
        super().bulk_create_relationships(tx, rel_type_name, rows)
        if rel_type_name == "HAS_MOTION" and rows:  # the last type written, inside the one import transaction
            written = tx.run(
                "UNWIND $rows AS row MATCH (:CreativeClip {id: row.from})-[r:HAS_MOTION]->(:Motion {id: row.to}) RETURN count(r) AS n",
                rows=[{"from": row["from"], "to": row["to"]} for row in rows],
            )
            assert written == [{"n": len(rows)}]  # provably written, not yet committed
            neo4j_server.stop(self.server.home, kill=True)


@pytest.mark.slow
def test_server_killed_mid_import_keeps_old_or_new_data_and_a_rerun_completes(
    server: neo4j_server.Neo4jServer, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    nodes, relationships = synthetic_rows(products=12, clips_per_product=5, categories=4)
    bigger = tmp_path / "bigger"
    expected = write_ackb(bigger, nodes, relationships)
    write_ackb(tmp_path / "old", {label: nodes[label] for label in ("Category", "Product")}, {"IN_CATEGORY": relationships["IN_CATEGORY"]})
    with Neo4jStore(server.uri, user=server.user, password=server.password) as store:
        reset_migrated_neo4j(store)
        import_ackb(store, tmp_path / "old", media)  # a part of the new data: the re-run must end with exact counts
        old = snapshot(store, media, tmp_path)
    killer = _KillAfterWriting(server.uri, user=server.user, password=server.password, retry_s=0)
    killer.server = server
    with pytest.raises(StoreUnavailableError, match="NEO4J_URI"):
        import_ackb(killer, bigger, media)
    killer.close()
    restarted = neo4j_server.start(server.home, port=server.port)
    assert restarted.uri == server.uri
    with Neo4jStore(server.uri, user=server.user, password=server.password) as store:
        assert snapshot(store, media, tmp_path) == old  # the uncommitted import left nothing behind
        report = import_ackb(store, bigger, media)
        stats = ackb_stats(store)
        assert {**stats["nodes"], **stats["relationships"]} == expected
        kept = ("Category", "Product", "IN_CATEGORY")
        assert {name: report.created[name] for name in expected} == {name: 0 if name in kept else n for name, n in expected.items()}
        assert sum(report.updated.values()) == 0


@pytest.mark.parametrize("ci, outcome, code", [("", "1 skipped", 0), ("true", "1 error", 1)])
def test_without_java_neo4j_tests_skip_locally_and_fail_under_ci(tmp_path: Path, ci: str, outcome: str, code: int) -> None:
    """CI must never go green by skipping: no Java (so no server) is a skip with the reason, a failure under CI=true."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    env.update({"PATH": str(tmp_path), "CI": ci, "KDCVG_DATA": str(tmp_path / "data")})  # no java, javac, mvn, docker
    test = "tests/test_store_conformance.py::test_create_and_get_round_trip[neo4j]"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-rsf", "-p", "no:cacheprovider"],
        env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert outcome in result.stdout and result.returncode == code, result.stdout
    assert "cannot start a local Neo4j server: java, javac, mvn not on PATH" in result.stdout
