"""Analysts' Cypher: an allow-list guard over a real parse, a limited worker process, a read-only connection."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kb import query_worker
from kb.interchange import import_ackb
from kb.ladybug_store import LadybugStore
from kb.query_worker import QueryMemoryError, QueryWorkerError, run_analyst_query
from kb.readonly import check_read_only, tokenize
from kb.store import GraphStore, QueryTimeoutError, ReadOnlyError, StoreError
from kdcvg.config import Settings

WRITES = [
    "CREATE (p:Product {id: 'x', name: 'x'})",
    "MERGE (p:Product {id: 'x'}) RETURN p",
    "MATCH (p:Product) DELETE p",
    "MATCH (p:Product) DETACH DELETE p",
    "MATCH (p:Product) SET p.name = 'hacked'",
    "match (p:Product) set p.name = 'lower case'",
    "MATCH (p:Product) REMOVE p.name",
    "DROP TABLE Product",
    "COPY Product FROM 'file.csv'",
    "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
    "MATCH (p:Product) WITH p LIMIT 1 CREATE (q:Product {id: 'y'})",
    "UNWIND [1, 2] AS x FOREACH (i IN [1] | CREATE (:Category {id: toString(x)}))",
    "CALL apoc.create.node(['Product'], {id: 'z'})",
    "CALL db.createLabel('Evil')",
    "CALL create_fts_index('CreativeClip', 'caption_fts', ['caption'])",
    "CALL dbms.security.createUser('eve', 'pw', false)",
    "MATCH (n) RETURN n; MATCH (m) DETACH DELETE m",
    "ALTER TABLE Product ADD colour STRING",
    "",
    "// only a comment",
]


@pytest.mark.parametrize("query", WRITES)
def test_write_clauses_and_write_procedures_are_refused(query: str) -> None:
    with pytest.raises(ReadOnlyError):
        check_read_only(query)


@pytest.mark.parametrize(
    "query",
    [
        "MATCH (p:Product) RETURN p.name",
        "MATCH (p:Product) WHERE p.name = 'CREATE something; DELETE it' RETURN p",  # keywords inside strings are data
        "MATCH (p:Product) RETURN p.name AS `SET` ORDER BY p.name",
        "MATCH (c:CreativeClip) WHERE c.caption CONTAINS 'merge' RETURN c.id // DELETE in a comment",
        "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s) RETURN p.id, collect(s.text) AS sps;",
        "CALL show_tables() RETURN *",
        "CALL db.labels()",
        "MATCH (n:Product) RETURN n.created_at AS created, n.version",
    ],
)
def test_read_queries_pass_the_check(query: str) -> None:
    check_read_only(query)


def test_read_only_connection_refuses_writes_even_without_the_check(
    store: GraphStore, small_ackb: Path, media_dir: Path, reopen_read_only: Callable[[], GraphStore]
) -> None:
    import_ackb(store, small_ackb, media_dir)
    with reopen_read_only() as read_only:
        for query in (
            "CREATE (c:Category {id: 'sneaky', name: 'x'})",
            "MATCH (p:Product) SET p.name = 'x'",
            "MATCH (c:CreativeClip) DETACH DELETE c",
        ):
            with pytest.raises(ReadOnlyError):
                read_only.query(query)
        rows = read_only.query("MATCH (p:Product) RETURN count(p) AS n").rows
        assert rows == [[6]]
        names = read_only.query("MATCH (p:Product) RETURN p.name ORDER BY p.name LIMIT 1").rows
        assert names == [["Product 0"]]
        with pytest.raises(ReadOnlyError):
            read_only.write(lambda tx: tx.run("CREATE (c:Category {id: 'via-write', name: 'x'})"))
        assert read_only.query("MATCH (c:Category) RETURN count(c)").rows == [[3]]


def test_long_query_is_cancelled_by_the_timeout(store: GraphStore) -> None:
    with pytest.raises(QueryTimeoutError, match="timeout"):
        store.query("UNWIND range(1, 100000) AS x UNWIND range(1, 100000) AS y RETURN sum(x * y)", timeout_s=0.2)
    assert store.query("RETURN 1 AS one").rows == [[1]]  # the connection is still usable


def test_query_returns_columns_and_plain_values(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    result = store.query(
        "MATCH (p:Product {id: $id})-[r:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p, s.text AS text, r ORDER BY text LIMIT 2",
        {"id": "prod-0000000"},
    )
    assert result.columns == ["p", "text", "r"]
    product, text, rel = result.rows[0]
    assert product["_label"] == "Product" and product["id"] == "prod-0000000" and product["version"] == 1
    assert text == "selling point 0 of product 0" and rel["_type"] == "HAS_SELLING_POINT"


# Each reproduced hole, with what the refusal must name.
HOLES = [
    (
        "WITH 1 AS x LIMIT 1LOAD FROM '/etc/shadow' (file_format='csv', header=false, delim=':') RETURN *",
        "LOAD is not an allowed clause",
    ),
    ("MATCH (p:Product) RETURN p LIMIT 1LOAD FROM 'users.yaml' RETURN *", "LOAD is not an allowed clause"),
    ("WITH 1 AS x SKIP 0CALL read_csv_serial('/etc/passwd') RETURN *", "procedure read_csv_serial"),
    ("CALL `read_csv_serial`('/etc/passwd') RETURN *", "procedure read_csv_serial"),
    ("CALL `threads`=1", "procedure threads"),
    ("CALL `Threads` = 1", "procedure Threads"),
    ("CALL current_setting('home_directory') RETURN *", "procedure current_setting"),
    ("COPY (MATCH (p:Product) RETURN p.id) TO '/tmp/out.csv'", "COPY is not an allowed clause"),
    ("EXPORT DATABASE '/tmp/export'", "EXPORT is not an allowed clause"),
    ("IMPORT DATABASE '/tmp/export'", "IMPORT is not an allowed clause"),
    ("CHECKPOINT", "CHECKPOINT is not an allowed clause"),
    ("INSTALL httpfs", "INSTALL is not an allowed clause"),
    ("ATTACH '/tmp/other.lbug' AS other (dbtype lbug)", "ATTACH is not an allowed clause"),
    ("MATCH (p:Product) RETURN p.id UNION ALL LOAD FROM '/etc/passwd' RETURN *", "LOAD is not an allowed clause"),
    ("RETURN read_csv('/etc/passwd')", "function read_csv is not on the list"),
    ("RETURN nextval('ids')", "function nextval is not on the list"),
    ("RETURN `apoc`.`load`.`json`('file:///etc/passwd')", "function apoc.load.json is not on the list"),
    ("CALL { MATCH (n) RETURN n } RETURN 1", "CALL subqueries"),
    ("MATCH (n) RETURN n LIMIT 1 /* x **/ LOAD FROM '/etc/passwd' RETURN * /* */", "'**/'"),
    ("RETURN 1 // note\rLOAD FROM '/etc/passwd' RETURN *", "U+000D"),
    ("RETURN 1 \rLOAD FROM '/etc/passwd' RETURN *", "carriage return"),
    ("MATCH (n) RETURN n LIMIT 1 \uff2c\uff2f\uff21\uff24 FROM '/etc/passwd' RETURN *", "U+FF2C"),
    ("MATCH (n) RETURN 1 \u2212 2", "U+2212 MINUS SIGN"),
    ("MATCH (n)\u00a0RETURN n", "U+00A0"),
    ("MATCH (n) WHERE n.id = 'a\\u0027 LOAD FROM x' RETURN n", "\\u escape"),
    ("MATCH (n) RETURN n // \\u000a LOAD CSV FROM 'file:///etc/passwd' AS r RETURN r", "\\u escape"),
    ("MATCH (n) RETURN n.`a\\u0060 LOAD` AS x", "\\u escape"),
    ("MATCH (n) WHERE n.id = 'a\\q' RETURN n", "only the escapes"),
    ("RETURN 'it''s' AS quoted", "doubled quote"),
    ("MATCH (n) RETURN n.x$y", "space before $"),
    ("WITH 1 AS load RETURN load", "load is a Cypher keyword"),
    ("MATCH (p:Product) RETURN p; CHECKPOINT", "one statement at a time"),
    ("EXPLAIN MATCH (n) RETURN n", "EXPLAIN is not an allowed clause"),
    ("MATCH (n) RETURN n ORDER BY", "expected an expression, found the end of the query"),
    ("MATCH (n)", "must end with RETURN"),
]


@pytest.mark.parametrize("query, named", HOLES)
def test_the_guard_refuses_what_it_cannot_prove_reads_and_names_the_token(query: str, named: str) -> None:
    with pytest.raises(ReadOnlyError) as refused:
        check_read_only(query)
    message = str(refused.value)
    assert named in message and "\n" not in message and "(line " in message


def test_the_tokenizer_splits_numbers_from_letters_as_ladybug_lexes_them() -> None:
    kinds = [(t.kind, t.text) for t in tokenize("LIMIT 1LOAD 1E5x .5 1..3 0123 `a``b` $p")][:-1]
    assert kinds == [
        ("word", "LIMIT"), ("number", "1"), ("word", "LOAD"), ("number", "1E5"), ("word", "x"), ("number", ".5"),
        ("number", "1"), ("op", ".."), ("number", "3"), ("number", "0"), ("number", "123"), ("word", "a`b"), ("param", "p"),
    ]  # fmt: skip
    assert tokenize("`LOAD`")[0].keyword is None and tokenize("lOaD")[0].keyword == "LOAD"


# Reads the guard accepts; each must also parse, bind and run in the real Ladybug on the small ACKB.
ACCEPTED_READS = [
    "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p.name, s.text ORDER BY s.text LIMIT 10",
    "MATCH (c:CreativeClip)-[:HAS_MOTION]->(m:Motion) RETURN m.name, count(c) AS clips, avg(c.motion_divergence) AS d ORDER BY m.name",
    "match (p:Product) where p.name starts with 'Product' and not p.id in ['x'] return distinct p.brand as brand order by brand desc skip 1 limit 2",
    "MATCH (c:CreativeClip)-[r:ILLUSTRATES]->(s:SellingPoint) WHERE r.status = $status RETURN c.id, r.score ORDER BY r.score DESC LIMIT 3",
    "MATCH (p:Product) WHERE EXISTS { MATCH (p)<-[:FEATURES]-(c:CreativeClip) WHERE c.motion_magnitude > 0.5 } RETURN count(*) AS n",
    "MATCH path = (c:CreativeClip)-[:FEATURES]->(p:Product)-[:IN_CATEGORY]->(k:Category) RETURN length(path), labels(p), k.name LIMIT 2",
    "MATCH (a:Product)-[*1..2]-(b:Category) RETURN count(DISTINCT b) AS categories",
    "UNWIND [1, 2, 3] AS x WITH x WHERE x > 1 RETURN sum(x) AS total, collect(x) AS xs, CASE WHEN sum(x) > 4 THEN 'big' ELSE 'small' END AS size",
    "MATCH (c:CreativeClip) RETURN toUpper(c.caption) AS caption, size(c.tags) AS tags, c.tags[1] AS first LIMIT 1",
    "MATCH (p:Product) RETURN p.id AS id ORDER BY id LIMIT 1 UNION MATCH (k:Category) RETURN k.id AS id ORDER BY id LIMIT 1",
    "MATCH (p:Product) OPTIONAL MATCH (p)<-[:FEATURES]-(c:CreativeClip) WHERE c.motion_jitter IS NOT NULL RETURN p.id, count(c) AS clips",
    "// the first product\nMATCH (p:Product) /* any */ RETURN p.`name` AS `the name`, coalesce(p.brand, '-') AS brand LIMIT 1;",
    "WITH 2 AS x LIMIT 1MATCH (p:Product) RETURN count(p) AS n",
    "RETURN round(3.7, 0) AS r, abs(-2) AS a, 1E3 AS big, .5 AS half, 'it\\'s' AS quoted",
    "CALL show_tables() RETURN *",
    "CALL table_info('Product') RETURN *",
]


def test_accepted_reads_parse_and_run_in_ladybug(analyst_world: Settings) -> None:
    with LadybugStore(analyst_world.ladybug_path, read_only=True) as store:
        for query in ACCEPTED_READS:
            check_read_only(query)
            store.query(query, {"status": "approved"} if "$status" in query else {})  # raises on a parser or binder error


def _store_bytes(settings: Settings) -> str:
    """A digest of every file of the store: equal digests mean the worker wrote nothing."""
    digest = hashlib.sha256()
    for path in sorted(settings.data_dir.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(settings.data_dir)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_the_worker_returns_the_same_table_as_the_store(analyst_world: Settings) -> None:
    query = "MATCH (p:Product)-[r:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p, r, s.text AS text ORDER BY text LIMIT 3"
    result = run_analyst_query(analyst_world, query, {}, 30)
    with LadybugStore(analyst_world.ladybug_path, read_only=True) as store:
        assert result == store.query(query)
    assert result.columns == ["p", "r", "text"] and result.rows[0][0]["_label"] == "Product"
    totals = run_analyst_query(analyst_world, "UNWIND [1, 2, 3] AS x RETURN sum(x) AS total, sum(x) / 2.0 AS half", {}, 30)
    assert totals.rows == [[6, 3.0]]  # Ladybug's sum is a Decimal: it comes back a number


def test_a_runaway_unwind_is_stopped_by_the_memory_cap_and_reported(analyst_world: Settings) -> None:
    before = _store_bytes(analyst_world)
    for query in ("UNWIND range(1, 10000000000) AS x RETURN count(x)", "UNWIND range(1, 10000000000) AS x RETURN sum(x)"):
        with pytest.raises(QueryMemoryError, match=f"more than {analyst_world.query_memory_mb} MB"):
            run_analyst_query(analyst_world, query, {}, 5)
    assert _store_bytes(analyst_world) == before
    assert run_analyst_query(analyst_world, "MATCH (p:Product) RETURN count(p)", {}, 30).rows == [[6]]


def test_the_memory_cap_is_the_setting(analyst_world: Settings) -> None:
    from kdcvg.config import ConfigError, load_settings

    query = "RETURN size(range(1, 50000000)) AS n"  # a list of about 400 MB
    assert run_analyst_query(analyst_world, query, {}, 30).rows == [[50000000]]
    small = analyst_world.model_copy(update={"query_memory_mb": 256})
    with pytest.raises(QueryMemoryError, match="more than 256 MB"):
        run_analyst_query(small, query, {}, 30)
    assert load_settings(environ={"KDCVG_QUERY_MEMORY_MB": "512"}, config_file=Path("/nonexistent.toml")).query_memory_mb == 512
    with pytest.raises(ConfigError, match="query_memory_mb"):
        load_settings(environ={"KDCVG_QUERY_MEMORY_MB": "100"}, config_file=Path("/nonexistent.toml"))


def test_a_neo4j_store_opens_in_the_worker_and_its_failure_is_one_line(tmp_path: Path) -> None:
    from kdcvg.config import load_settings

    settings = load_settings(environ={"NEO4J_URI": "bolt://127.0.0.1:9"}, config_file=tmp_path / "absent.toml")
    with pytest.raises(StoreError, match="cannot reach Neo4j at bolt://127.0.0.1:9"):
        run_analyst_query(settings, "MATCH (n) RETURN count(n)", {}, 5)


def test_a_long_query_is_stopped_at_its_timeout(analyst_world: Settings) -> None:
    with pytest.raises(QueryTimeoutError, match="ran past its 0.5 s timeout and was stopped"):
        run_analyst_query(analyst_world, "UNWIND range(1, 100000) AS x UNWIND range(1, 100000) AS y RETURN sum(x * y)", {}, 0.5)


def test_a_query_the_database_cannot_interrupt_is_killed_at_the_timeout(
    analyst_world: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ladybug checks its own timeout between batches, never inside one list function: only the kill stops this.
    monkeypatch.setattr(query_worker, "KILL_GRACE_S", 0.0)
    with pytest.raises(QueryTimeoutError, match="ran past its 0.3 s timeout and was stopped"):
        run_analyst_query(analyst_world, "RETURN size(list_sort(range(1, 30000000))) AS n", {}, 0.3)
    assert not _workers_of(os.getpid())


def _workers_of(pid: int) -> list[int]:
    """Process ids of the query workers this process started that are still alive."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"kb.query_worker" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_crashing_worker_is_reported_in_one_line_and_the_caller_lives_on(analyst_world: Settings) -> None:
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            run_analyst_query(
                analyst_world, "UNWIND range(1, 100000) AS x UNWIND range(1, 100000) AS y RETURN sum(x * y)", {}, 60
            )
        except StoreError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not (workers := _workers_of(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers, "the query worker did not start"
    os.kill(workers[0], signal.SIGSEGV)
    thread.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], QueryWorkerError)
    assert "the query worker crashed (signal 11, SIGSEGV)" in str(outcome[0])


def test_a_store_that_is_not_there_is_reported(tmp_path: Path) -> None:
    from kdcvg.config import load_settings

    settings = load_settings(environ={"KDCVG_DATA": str(tmp_path / "none")}, config_file=tmp_path / "absent.toml")
    with pytest.raises(StoreError, match="kdcvg kb migrate"):
        run_analyst_query(settings, "RETURN 1", {}, 5)


def test_ladybugs_read_only_connection_is_no_second_line(analyst_world: Settings, tmp_path: Path) -> None:
    """Why the guard must hold alone: Ladybug's read-only connection still reads files (docs/security.md)."""
    sentinel = tmp_path / "sentinel.csv"
    sentinel.write_text("kdcvg-sentinel-marker\n")
    with LadybugStore(analyst_world.ladybug_path, read_only=True) as store:
        rows = store.query(f"LOAD FROM '{sentinel}' (header=false) RETURN *").rows
    assert rows == [["kdcvg-sentinel-marker"]]
    with pytest.raises(ReadOnlyError):
        check_read_only(f"LOAD FROM '{sentinel}' (header=false) RETURN *")


def _kdcvg(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_"))}
    env.update(KDCVG_DATA=str(settings.data_dir), XDG_CONFIG_HOME=str(settings.data_dir.parent / "config"))
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_refuses_the_reproduced_holes_with_exit_2_and_reads_nothing(analyst_world: Settings, tmp_path: Path) -> None:
    secret = tmp_path / "users.yaml"
    secret.write_text("ana:kdcvg-secret-marker:analyst\n")
    out = tmp_path / "out"
    out.mkdir()
    before = _store_bytes(analyst_world)
    for query in (
        f"WITH 1 AS x LIMIT 1LOAD FROM '{secret}' (file_format='csv', header=false, delim=':') RETURN *",
        f"CALL `read_csv_serial`('{secret}') RETURN *",
        "CALL `threads`=1",
        f"COPY (MATCH (p:Product) RETURN p.id) TO '{out}/copy.csv'",
        f"EXPORT DATABASE '{out}/export'",
        "CHECKPOINT",
    ):
        result = _kdcvg(analyst_world, "cypher", query)
        assert result.returncode == 2, (query, result.stderr)
        assert result.stderr.startswith("error: refused: ") and len(result.stderr.strip().splitlines()) == 1
        assert "kdcvg-secret-marker" not in result.stdout + result.stderr
    assert list(out.iterdir()) == [] and _store_bytes(analyst_world) == before


def test_the_cli_reports_a_runaway_query_in_one_line(analyst_world: Settings) -> None:
    result = _kdcvg(analyst_world, "cypher", "UNWIND range(1,10000000000) AS x RETURN count(x)", "--timeout", "5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"error: the query needed more than {analyst_world.query_memory_mb} MB (setting query_memory_mb) and was stopped"
    )


def test_the_apps_shared_store_hands_its_file_to_the_worker_and_takes_it_back(analyst_world: Settings) -> None:
    from ui.state import SharedStore

    shared = SharedStore(analyst_world)  # holds the Ladybug file open read-write, as the app does
    try:
        assert shared.read_only_query("MATCH (p:Product) RETURN count(p) AS n", None, 30).rows == [[6]]
        with pytest.raises(ReadOnlyError, match="procedure threads"):
            shared.read_only_query("CALL `threads`=1", None, 30)
        users = analyst_world.ui_users_path
        users.parent.mkdir(parents=True, exist_ok=True)
        users.write_text("ana: kdcvg-users-marker\n")
        with pytest.raises(ReadOnlyError, match="LOAD is not an allowed clause"):
            shared.read_only_query(f"WITH 1 AS x LIMIT 1LOAD FROM '{users}' (header=false, delim=':') RETURN *", None, 30)
        with pytest.raises(QueryMemoryError):
            shared.read_only_query("UNWIND range(1, 10000000000) AS x RETURN sum(x)", None, 5)
        with shared.use() as store:  # reopened read-write after each query, whatever its end
            assert store.read(lambda tx: tx.run("MATCH (p:Product) RETURN count(p) AS n")) == [{"n": 6}]
            assert not store.read_only
    finally:
        shared.close()
