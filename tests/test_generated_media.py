"""Generated videos are first-class media: export, import and the media checks treat them like clips' videos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.prompt import PromptPlan
from generation.provenance import record_generation
from kb import migrate
from kb.interchange import ImportValidationError, export_ackb, import_ackb
from kb.ladybug_store import LadybugStore
from kb.store import GraphStore
from tests.videos import write_video


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _generate_one(store: GraphStore, media_dir: Path, video_id: str, shade: int) -> str:
    """What `kdcvg generate` leaves behind: an mp4 under media/generated/ and its provenance in the graph."""
    clip, selling_point = store.read(
        lambda tx: tx.run(
            "MATCH (c:CreativeClip)-[:ILLUSTRATES]->(s:SellingPoint) RETURN c.id AS clip, s.id AS sp ORDER BY c.id LIMIT 1"
        )
    )[0].values()
    relative = f"generated/{video_id}.mp4"
    write_video(media_dir / relative, shade=shade, seconds=0.5)
    plan = PromptPlan("a bottle, slow zoom in", "", "a bottle", None, "slow zoom in", [clip])
    record_generation(
        store, video_id=video_id, video_path=relative, model_id="tiny", prompt_plan=plan, seed=0,
        parameters={"frames": 4}, timings={"total_s": 0.1}, selling_point_id=selling_point, reference_clip_ids=[clip],
    )  # fmt: skip
    return relative


def test_a_store_with_generations_survives_export_import_export(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    generated = _generate_one(store, media_dir, "gv-roundtrip", shade=90)
    first = tmp_path / "A"
    export_ackb(store, first, media_dir)
    assert (first / "media" / generated).is_file()

    target = LadybugStore(tmp_path / "other" / "ackb.lbug")
    try:
        migrate.migrate(target)
        other_media = tmp_path / "other" / "media"
        report = import_ackb(target, first, other_media)
        assert (other_media / generated).read_bytes() == (media_dir / generated).read_bytes()
        assert report.media_copied == len([p for p in (first / "media").rglob("*") if p.is_file()])
        second = tmp_path / "B"
        export_ackb(target, second, other_media)
    finally:
        target.close()
    assert _files(first) == _files(second)


def _rewrite(directory: Path, label: str, change) -> None:  # noqa: ANN001
    """Apply `change(rows)` to one node file of an ACKB directory (its checksum dropped from the manifest)."""
    path = directory / "nodes" / f"{label}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["nodes"][label].pop("sha256", None)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_a_generated_video_may_not_take_a_clips_file(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    _generate_one(store, media_dir, "gv-owner", shade=60)
    exported = tmp_path / "A"
    export_ackb(store, exported, media_dir)
    _rewrite(exported, "CreativeClip", lambda rows: rows[0].update(video_path="clips/first.mp4"))
    write_video(exported / "media" / "clips" / "first.mp4", shade=30)
    import_ackb(store, exported, media_dir)  # the clip now owns clips/first.mp4
    clip_id = json.loads((exported / "nodes" / "CreativeClip.jsonl").read_text().splitlines()[0])["id"]

    _rewrite(exported, "GeneratedVideo", lambda rows: rows[0].update(video_path="clips/first.mp4"))
    write_video(exported / "media" / "clips" / "first.mp4", shade=200)
    before = sorted(p.name for p in media_dir.rglob("*"))
    with pytest.raises(ImportValidationError, match=f"media/clips/first.mp4 is already the video of clip '{clip_id}'"):
        import_ackb(store, exported, media_dir)
    assert sorted(p.name for p in media_dir.rglob("*")) == before
