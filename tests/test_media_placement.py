"""kb.media_placement without a crash: a file changed after validation is refused, a live import is left alone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kb import media_placement as placement
from kb.store import GraphStore
from tests.videos import write_video


def _state(media: Path) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def test_a_file_changed_after_validation_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "ackb"
    good = write_video(source / "media" / "clips" / "a.mp4", shade=1)
    validated = hashlib.sha256(good.read_bytes()).hexdigest()
    write_video(source / "media" / "clips" / "b.mp4", shade=2)  # b is staged with a's digest: "changed"
    media = tmp_path / "media"
    with pytest.raises(placement.MediaChangedError, match=r"media/clips/b\.mp4: changed while being imported"):
        placement.stage(source, [("clips/a.mp4", validated), ("clips/b.mp4", validated)], media, placement.new_import_id())
    assert _state(media) == []  # a's partial, written first, is gone too


def test_recovery_leaves_a_live_import_alone(store: GraphStore, tmp_path: Path) -> None:
    source = tmp_path / "ackb"
    video = write_video(source / "media" / "clips" / "a.mp4", shade=3)
    media = tmp_path / "media"
    import_id = placement.new_import_id()
    moves = placement.stage(source, [("clips/a.mp4", hashlib.sha256(video.read_bytes()).hexdigest())], media, import_id)
    placement.write_journal(media, import_id, moves)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        journal = media / placement.journal_name(import_id)
        journal.write_text(journal.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {live.pid}'))
        before = _state(media)
        report = placement.recover(store, media)
        assert (report.completed, report.rolled_back, report.stale_removed) == ([], [], 0)
        assert _state(media) == before and len(before) == 2  # the partial and the journal
    finally:
        live.kill()
        live.wait()
    report = placement.recover(store, media)  # its process is gone now, and it never committed
    assert report.rolled_back == [import_id] and _state(media) == []


def test_the_pause_hook_pauses_only_at_its_known_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(placement.PAUSE_ENV, "not-a-stage")
    for stage in placement.PAUSE_STAGES:
        placement.pause_for_test(stage)  # another stage named: returns at once
    with pytest.raises(ValueError, match="unknown pause stage 'nodes'"):
        placement.pause_for_test("nodes")
