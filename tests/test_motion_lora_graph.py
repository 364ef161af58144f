"""MotionLora nodes in the graph: validated records, exported and imported with their weights file like videos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from generation.motion_lora import save_weights
from generation.provenance import motion_lora_by_id, motion_lora_for_clip, record_motion_lora
from kb import migrate
from kb.interchange import ImportValidationError, export_ackb, import_ackb, sha256_file
from kb.ladybug_store import LadybugStore
from kb.repository import RecordValidationError
from kb.store import GraphStore, NotFoundError
from tests.videos import write_video

HASH = "a" * 64


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _lora_row(lora_id: str, relative: str, media_dir: Path, **changes: object) -> dict[str, object]:
    """A MotionLora row for weights written at media/`relative` (what train-motion-lora records)."""
    save_weights(media_dir / relative, {"layer.lora_a": torch.ones(2, 3), "layer.lora_b": torch.zeros(3, 2)})
    row = {
        "id": lora_id, "file_path": relative, "sha256": sha256_file(media_dir / relative), "model_id": "tiny",
        "backbone_sha256": HASH, "clip_sha256": HASH, "rank": 2, "alpha": 2.0, "steps": 3, "learning_rate": 0.01, "seed": 0,
        "num_frames": 4, "width": 32, "height": 32, "loss": "motion distillation", "loss_before": 0.5, "loss_after": 0.4,
        "train_s": 1.0, "trained_at": "2026-12-02T10:00:00.000000Z",
    }  # fmt: skip
    return {**row, **changes}


def _first_clip(store: GraphStore) -> str:
    return store.read(lambda tx: tx.run("MATCH (c:CreativeClip) RETURN c.id AS id ORDER BY c.id LIMIT 1"))[0]["id"]


def test_a_motion_lora_is_recorded_found_and_updated_in_one_place(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    clip = _first_clip(store)
    row = _lora_row("ml-one", "motion-lora/one.safetensors", media_dir)
    stored = record_motion_lora(store, row, clip)
    assert stored["version"] == 1 and stored["clip"] == clip
    assert motion_lora_for_clip(store, clip, HASH, HASH)["id"] == "ml-one"
    assert motion_lora_for_clip(store, clip, HASH, "b" * 64) is None  # another backbone: not this LoRA
    again = record_motion_lora(store, {**row, "loss_after": 0.3}, clip)  # retrained after its file was lost
    assert again["version"] == 2 and again["created_at"] == stored["created_at"]
    assert motion_lora_by_id(store, "ml-one")["loss_after"] == 0.3
    assert store.query("MATCH (m:MotionLora)-[r:TRAINED_ON]->(c:CreativeClip) RETURN m.id, c.id").rows == [["ml-one", clip]]
    with pytest.raises(NotFoundError, match="no CreativeClip with id 'clip-nope'"):
        record_motion_lora(store, _lora_row("ml-two", "motion-lora/two.safetensors", media_dir), "clip-nope")
    with pytest.raises(RecordValidationError, match="file_path"):
        record_motion_lora(store, {**row, "id": "ml-three", "file_path": "motion-lora/three.pt"}, clip)
    with pytest.raises(RecordValidationError, match="sha256"):
        record_motion_lora(store, {**row, "id": "ml-four", "sha256": "not a hash"}, clip)
    assert store.query("MATCH (m:MotionLora) RETURN m.id").rows == [["ml-one"]]


def test_a_store_with_motion_loras_survives_export_import_export(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    relative = "motion-lora/roundtrip.safetensors"
    record_motion_lora(store, _lora_row("ml-roundtrip", relative, media_dir), _first_clip(store))
    first = tmp_path / "A"
    export_ackb(store, first, media_dir)
    assert (first / "media" / relative).read_bytes() == (media_dir / relative).read_bytes()
    assert json.loads((first / "nodes" / "MotionLora.jsonl").read_text())["file_path"] == relative

    target = LadybugStore(tmp_path / "other" / "ackb.lbug")
    try:
        migrate.migrate(target)
        other_media = tmp_path / "other" / "media"
        report = import_ackb(target, first, other_media)
        assert (other_media / relative).read_bytes() == (media_dir / relative).read_bytes() and report.media_copied == 1
        assert motion_lora_by_id(target, "ml-roundtrip")["clip"] == _first_clip(store)
        second = tmp_path / "B"
        export_ackb(target, second, other_media)
    finally:
        target.close()
    assert _files(first) == _files(second)


def _exported_with_lora(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    import_ackb(store, small_ackb, media_dir)
    relative = "motion-lora/bad.safetensors"
    record_motion_lora(store, _lora_row("ml-bad", relative, media_dir), _first_clip(store))
    exported = tmp_path / "A"
    export_ackb(store, exported, media_dir)
    return exported, relative


def test_a_damaged_lora_file_is_refused_and_nothing_is_written(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    exported, relative = _exported_with_lora(store, small_ackb, media_dir, tmp_path)
    weights = exported / "media" / relative
    weights.write_bytes(weights.read_bytes()[:-5])  # truncated
    other = LadybugStore(tmp_path / "other" / "ackb.lbug")
    try:
        migrate.migrate(other)
        with pytest.raises(ImportValidationError, match=f"nodes/MotionLora.jsonl:1:file_path: media/{relative} is truncated or padded"):
            import_ackb(other, exported, tmp_path / "other" / "media")
        weights.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00hello")
        with pytest.raises(ImportValidationError, match=f"media/{relative} is not a safetensors file"):
            import_ackb(other, exported, tmp_path / "other" / "media")
        assert other.query("MATCH (c:CreativeClip) RETURN count(c)").rows == [[0]]
        assert not (tmp_path / "other" / "media" / relative).exists()
    finally:
        other.close()


def test_a_lora_record_cannot_name_a_clips_video(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    exported, _ = _exported_with_lora(store, small_ackb, media_dir, tmp_path)
    clip = _first_clip(store)
    store.write(lambda tx: tx.run("MATCH (c:CreativeClip {id: $id}) SET c.video_path = $p", id=clip, p="clips/first.mp4"))
    write_video(media_dir / "clips" / "first.mp4", shade=40)
    path = exported / "nodes" / "MotionLora.jsonl"
    path.write_text(path.read_text().replace("motion-lora/bad.safetensors", "clips/first.mp4"))
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["nodes"]["MotionLora"].pop("sha256", None)
    (exported / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImportValidationError, match="MotionLora.jsonl:1:file_path: Value error, must name a .safetensors file"):
        import_ackb(store, exported, media_dir)
