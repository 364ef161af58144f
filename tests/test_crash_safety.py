"""An import killed with SIGKILL part-way leaves the store consistent; a re-run completes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb.ladybug_store import LadybugStore
from kb.stats import ackb_stats
from kb.synthetic import synthetic_ackb


@pytest.fixture(scope="module")
def big_ackb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~46k nodes and ~120k relationships: an import of several seconds."""
    directory = tmp_path_factory.mktemp("crash") / "ackb"
    synthetic_ackb(directory, products=1500)
    return directory


def _kdcvg(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "kdcvg.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _expected(directory: Path) -> dict[str, int]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {name: entry["count"] for section in ("nodes", "relationships") for name, entry in manifest[section].items()}


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while validating", "while writing"])
def test_killed_import_leaves_store_consistent_and_rerun_completes(big_ackb: Path, tmp_path: Path, moment: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_"))}
    env.update(KDCVG_DATA=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    assert _kdcvg(env, "kb", "migrate").wait(timeout=60) == 0
    database = tmp_path / "data" / "ackb.lbug"
    size_before = database.stat().st_size

    process = _kdcvg(env, "kb", "import", str(big_ackb))
    deadline = time.monotonic() + 120
    if moment == "while validating":
        time.sleep(1.5)  # validation of this ACKB takes several seconds; nothing is written yet
    else:
        while database.stat().st_size == size_before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # the database file grows once the transaction starts writing pages
    assert process.poll() is None, "the import finished before it could be killed"
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
