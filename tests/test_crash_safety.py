"""An import killed with SIGKILL part-way leaves the store consistent; a re-run completes exactly.

Each kill lands where the importer says it is: `KDCVG_TEST_PAUSE_AFTER=<stage>`, set for the import's
process only, makes it print `paused after <stage>` and wait (kb.media_placement.pause_for_test),
so no kill depends on a sleep or on watching a file grow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb import media_placement as placement
from kb.interchange import write_ackb
from kb.ladybug_store import LadybugStore
from kb.stats import ackb_stats
from kb.synthetic import synthetic_ackb, synthetic_rows
from tests.videos import write_video


@pytest.fixture(scope="module")
def big_ackb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~46k nodes and ~120k relationships: an import of several seconds."""
    directory = tmp_path_factory.mktemp("crash") / "ackb"
    synthetic_ackb(directory, products=1500)
    return directory


def _kdcvg(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _expected(directory: Path) -> dict[str, int]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {name: entry["count"] for section in ("nodes", "relationships") for name, entry in manifest[section].items()}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["validated", "writing"])
def test_killed_import_leaves_store_consistent_and_rerun_completes(big_ackb: Path, tmp_path: Path, stage: str) -> None:
    """Killed where the import says it is: after validation (nothing written yet), or inside the graph
    transaction once every node has been written (nothing committed yet)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_"))}
    env.update(KDCVG_DATA=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    assert _kdcvg(env, "kb", "migrate").wait(timeout=60) == 0
    database = tmp_path / "data" / "ackb.lbug"

    process = _paused_import(env, big_ackb, stage)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    with LadybugStore(database) as store:  # reopening replays/discards the WAL
        stats = ackb_stats(store)
    assert stats["total_nodes"] == 0 and stats["total_relationships"] == 0, "a killed import left part of its rows"

    rerun = _kdcvg(env, "kb", "import", str(big_ackb))
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode() if rerun.stderr else ""
    with LadybugStore(database) as store:
        stats = ackb_stats(store)
    assert {**stats["nodes"], **stats["relationships"]} == _expected(big_ackb)


# ---------------------------------------------------------------------------------------------
# Media placement: the graph commits in one transaction, files move one by one. A SIGKILL at a
# provable point (the importer's test-only pause, as above) must be recoverable:
# either every new file in place (graph committed) or the old state (graph not committed).
# ---------------------------------------------------------------------------------------------

CLIPS = 12


@pytest.fixture(scope="module")
def ackb_with_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ACKB whose CLIPS clips each bring a real video file."""
    directory = tmp_path_factory.mktemp("media-crash") / "ackb"
    nodes, rels = synthetic_rows(products=3, clips_per_product=CLIPS // 3, categories=1)
    for index, clip in enumerate(nodes["CreativeClip"]):
        clip["video_path"] = f"clips/{clip['id']}.mp4"
        write_video(directory / "media" / clip["video_path"], shade=10 + 10 * index)
    write_ackb(directory, nodes, rels)
    return directory


def _paused_import(env: dict[str, str], directory: Path, stage: str) -> subprocess.Popen[bytes]:
    """`kdcvg kb import` paused (alive) right after `stage`; fails the test if it never gets there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "kb", "import", str(directory)],
        env={**env, "KDCVG_TEST_PAUSE_AFTER": stage},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # ends when the process exits
        seen.append(line.decode(errors="replace"))
        if line.strip() == f"paused after {stage}".encode():
            return process
    process.wait(timeout=30)
    raise AssertionError(f"the import never paused after {stage}: rc={process.returncode}, stderr={''.join(seen)}")


def _media_state(media: Path) -> tuple[dict[str, bytes], list[str]]:
    """(final files -> bytes, hidden leftovers: partials and journals)."""
    files = sorted(p for p in media.rglob("*") if p.is_file()) if media.is_dir() else []
    final = {str(p.relative_to(media)): p.read_bytes() for p in files if not p.name.startswith(".")}
    return final, [str(p.relative_to(media)) for p in files if p.name.startswith(".")]


def _clip_count(database: Path) -> int:
    with LadybugStore(database) as store:
        return ackb_stats(store)["nodes"]["CreativeClip"]


@pytest.fixture
def media_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_"))}
    env.update(KDCVG_DATA=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    assert _kdcvg(env, "kb", "migrate").wait(timeout=60) == 0
    return env


@pytest.mark.parametrize(("stage", "moved_before_kill"), [("commit", 0), ("move", 1)])
def test_kill_after_commit_is_completed_by_recovery(ackb_with_media: Path, media_env: dict[str, str], stage: str, moved_before_kill: int) -> None:
    data = Path(media_env["KDCVG_DATA"])
    process = _paused_import(media_env, ackb_with_media, stage)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    final, leftovers = _media_state(data / "media")
    assert len(final) == moved_before_kill and len(leftovers) == CLIPS - moved_before_kill + 1  # partials + the journal
    assert _clip_count(data / "ackb.lbug") == CLIPS  # the graph committed

    with LadybugStore(data / "ackb.lbug") as store:
        report = placement.recover(store, data / "media")
    assert len(report.completed) == 1 and report.rolled_back == [] and report.stale_removed == 0
    final, leftovers = _media_state(data / "media")
    expected = {str(p.relative_to(ackb_with_media / "media")): p.read_bytes() for p in (ackb_with_media / "media").rglob("*.mp4")}
    assert final == expected and leftovers == []


def test_kill_before_commit_is_rolled_back_and_the_rerun_completes(ackb_with_media: Path, media_env: dict[str, str]) -> None:
    data = Path(media_env["KDCVG_DATA"])
    process = _paused_import(media_env, ackb_with_media, "staged")
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    final, leftovers = _media_state(data / "media")
    assert final == {} and len(leftovers) == CLIPS + 1
    assert _clip_count(data / "ackb.lbug") == 0  # not committed

    with LadybugStore(data / "ackb.lbug") as store:
        report = placement.recover(store, data / "media")
    assert len(report.rolled_back) == 1 and report.completed == []
    assert _media_state(data / "media") == ({}, [])

    rerun = _kdcvg(media_env, "kb", "import", str(ackb_with_media))
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode() if rerun.stderr else ""
    final, leftovers = _media_state(data / "media")
    assert len(final) == CLIPS and leftovers == [] and _clip_count(data / "ackb.lbug") == CLIPS


def test_the_next_import_recovers_first_and_stale_partials_are_removed(ackb_with_media: Path, media_env: dict[str, str]) -> None:
    data = Path(media_env["KDCVG_DATA"])
    process = _paused_import(media_env, ackb_with_media, "commit")
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    # a partial left by a process that died before writing any journal
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    stale = data / "media" / "clips" / f".x.mp4.partial-{int(dead.stdout)}-0123456789abcdef"
    stale.write_bytes(b"half a file")

    rerun = _kdcvg(media_env, "kb", "import", str(ackb_with_media))
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode() if rerun.stderr else ""
    final, leftovers = _media_state(data / "media")
    assert len(final) == CLIPS and leftovers == []


# ---------------------------------------------------------------------------------------------
# A writer killed while Ladybug checkpoints: read-only opens must not stay refused.
# ---------------------------------------------------------------------------------------------

WRITER = """
import sys, ladybug, pyarrow as pa
db = ladybug.Database(sys.argv[1]); c = ladybug.Connection(db)
c.execute("CREATE NODE TABLE T(id INT64 PRIMARY KEY, s STRING)")
n = 300_000
c.execute("COPY T FROM $t", {"t": pa.table({"id": pa.array(range(n), pa.int64()), "s": pa.array(["x" * 40] * n)})})
import time; time.sleep(600)
"""


def _killed_while_checkpointing(database: Path) -> bool:
    """Run a writer and SIGKILL it as soon as its checkpoint shadow file exists; whether that point was reached."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(database)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shadow = database.with_name(database.name + ".shadow")
    deadline = time.monotonic() + 120  # a guard against a writer that never checkpoints, not a speed claim
    while not shadow.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    import ladybug

    try:
        ladybug.Database(str(database), read_only=True).close()
    except RuntimeError as exc:
        return "checkpoint recovery is pending" in str(exc)
    return False


def test_read_only_open_completes_an_interrupted_checkpoint(tmp_path: Path) -> None:
    for attempt in range(10):  # the kill must land inside a checkpoint; usually the first one does
        database = tmp_path / f"try{attempt}" / "db.lbug"
        database.parent.mkdir()
        if _killed_while_checkpointing(database):
            break
    else:
        pytest.fail("could not kill the writer inside a checkpoint in 10 attempts")
    with LadybugStore(database, read_only=True) as store:
        assert store.query("MATCH (t:T) RETURN count(*)").rows in ([[0]], [[300_000]])
    with LadybugStore(database, read_only=True) as store:  # and again: nothing pending any more
        assert store.read_only
