"""The `kdcvg` command as users run it: a real process, a real store under a temporary data dir."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kb import migrate


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_"))}
    environ.update(KDCVG_DATA=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    return environ


def kdcvg(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def loaded(env: dict[str, str], small_ackb: Path) -> dict[str, str]:
    kdcvg(env, "kb", "migrate")
    kdcvg(env, "kb", "import", str(small_ackb))
    return env


def test_migrate_import_stats_export(loaded: dict[str, str], small_ackb: Path, tmp_path: Path) -> None:
    status = kdcvg(loaded, "kb", "migrate", "--status").stdout
    assert "V0001" in status and "applied" in status
    assert "up to date" in kdcvg(loaded, "kb", "migrate").stdout
    stats = json.loads(kdcvg(loaded, "kb", "stats", "--json").stdout)
    manifest = json.loads((small_ackb / "manifest.json").read_text())
    assert stats["nodes"] == {k: v["count"] for k, v in manifest["nodes"].items()}
    assert stats["relationships"] == {k: v["count"] for k, v in manifest["relationships"].items()}
    assert stats["backend"] == "ladybug" and stats["schema_version"] == migrate.discover("ladybug")[-1].version
    kdcvg(loaded, "kb", "export", str(tmp_path / "out"))
    assert (tmp_path / "out" / "nodes" / "Product.jsonl").read_bytes() == (small_ackb / "nodes" / "Product.jsonl").read_bytes()
    refused = kdcvg(loaded, "kb", "export", str(tmp_path / "out"), ok=False)
    assert refused.returncode != 0 and "not empty" in refused.stderr


def test_cypher_table_json_csv_file_and_params(loaded: dict[str, str], tmp_path: Path) -> None:
    query = "MATCH (p:Product)-[:IN_CATEGORY]->(c:Category {id: $cat}) RETURN p.id AS id, p.name AS name ORDER BY id"
    rows = json.loads(kdcvg(loaded, "cypher", query, "--param", "cat=cat-0000", "--json").stdout)
    assert rows == [{"id": "prod-0000000", "name": "Product 0"}, {"id": "prod-0000003", "name": "Product 3"}]
    table = kdcvg(loaded, "cypher", query, "-p", "cat=cat-0000").stdout
    assert "prod-0000003" in table and "2 row(s)" in table
    parsed = list(csv.reader(io.StringIO(kdcvg(loaded, "cypher", query, "-p", "cat=cat-0000", "--csv").stdout)))
    assert parsed == [["id", "name"], ["prod-0000000", "Product 0"], ["prod-0000003", "Product 3"]]
    query_file = tmp_path / "q.cypher"
    query_file.write_text("// clips per motion\nMATCH (c:CreativeClip)-[:HAS_MOTION]->(m:Motion) RETURN count(c) AS clips\n")
    assert json.loads(kdcvg(loaded, "cypher", "--file", str(query_file), "--json").stdout) == [{"clips": 24}]


@pytest.mark.parametrize(
    "args, message",
    [
        (["cypher", "MATCH (p:Product) DETACH DELETE p"], "read-only: DETACH"),
        (["cypher", "CREATE (:Category {id: 'x'})"], "read-only: CREATE"),
        (["cypher", "CALL apoc.periodic.iterate('a', 'b', {})"], "procedure apoc.periodic.iterate"),
        (["cypher", "MATCH (p:Nope) RETURN p"], "Nope"),
        (["cypher", "UNWIND range(1, 100000) AS x UNWIND range(1, 100000) AS y RETURN sum(x * y)", "--timeout", "0.2"], "timeout"),
        (["cypher"], "give a query or --file"),
        (["cypher", "--file", "/nonexistent.cypher"], "no such file"),
        (["cypher", "RETURN 1", "--param", "bad"], "NAME=VALUE"),
        (["kb", "import", "/nonexistent-dir"], "not a directory"),
    ],
)
def test_errors_are_one_clear_line_and_nothing_changes(loaded: dict[str, str], args: list[str], message: str) -> None:
    before = kdcvg(loaded, "kb", "stats", "--json").stdout
    result = kdcvg(loaded, *args, ok=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert kdcvg(loaded, "kb", "stats", "--json").stdout == before


def test_commands_on_a_fresh_data_dir_say_what_to_do(env: dict[str, str]) -> None:
    result = kdcvg(env, "kb", "stats", ok=False)
    assert result.returncode != 0 and "kdcvg kb migrate" in result.stderr
    result = kdcvg(env, "kb", "import", "/nonexistent", ok=False)
    assert "kdcvg kb migrate" in result.stderr  # schema first, then data


def test_bad_configuration_is_reported(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('query_timeout_s = "soon"\n')
    result = kdcvg({**env, "KDCVG_CONFIG": str(config)}, "config", ok=False)
    assert result.returncode != 0 and "query_timeout_s" in result.stderr
    result = kdcvg({**env, "KDCVG_BACKEND": "neo4j"}, "config", ok=False)
    assert "NEO4J_URI" in result.stderr
    shown = json.loads(kdcvg(env, "config").stdout)
    assert shown["store_backend"] == "ladybug" and shown["data_dir"] == env["KDCVG_DATA"]


def test_demo_command_builds_imports_and_is_idempotent(env: dict[str, str]) -> None:
    args = ("kb", "demo", "--products", "aquasonic-electric-toothbrush,airbeat-wireless-earbuds", "--clips-per-product", "2")
    first = kdcvg(env, *args)
    assert "applied migration V0001" in first.stdout and "next" in first.stdout
    stats = json.loads(kdcvg(env, "kb", "stats", "--json").stdout)
    assert stats["nodes"]["Product"] == 2 and stats["nodes"]["CreativeClip"] == 4 and stats["nodes"]["SellingPoint"] == 10
    assert stats["relationships"]["ILLUSTRATES"] == 4 and stats["relationships"]["HAS_MOTION"] == 4
    videos = sorted((Path(env["KDCVG_DATA"]) / "media" / "clips").glob("*.mp4"))
    assert len(videos) == 4 and all(v.stat().st_size > 1000 for v in videos)
    second = kdcvg(env, *args)
    assert "0 new, 0 updated" in second.stdout
    bad = kdcvg(env, "kb", "demo", "--products", "flying-car", ok=False)
    assert bad.returncode != 0 and "unknown demo product" in bad.stderr
