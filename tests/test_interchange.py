"""Import/export: exact round trip, idempotent re-import, updates, media files, progress, stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb import repository as repo
from kb.interchange import export_ackb, import_ackb
from kb.stats import ackb_stats
from kb.store import GraphStore
from kb.synthetic import synthetic_ackb
from tests.conftest import snapshot
from tests.videos import write_video


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_export_import_export_is_byte_identical(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    export_ackb(store, tmp_path / "first", media_dir)
    assert _files(tmp_path / "first") == _files(small_ackb)  # the synthetic writer follows the same format
    # into a second, empty store of the same backend
    for label in ("CreativeClip", "SellingPoint", "Product", "Category", "Motion"):
        store.run(f"MATCH (n:{label}) DETACH DELETE n")
    import_ackb(store, tmp_path / "first", media_dir)
    export_ackb(store, tmp_path / "second", media_dir)
    assert _files(tmp_path / "second") == _files(tmp_path / "first")


def test_import_counts_match_the_files(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    report = import_ackb(store, small_ackb, media_dir)
    manifest = json.loads((small_ackb / "manifest.json").read_text())
    expected = {name: entry["count"] for section in ("nodes", "relationships") for name, entry in manifest[section].items()}
    assert report.created == expected
    stats = ackb_stats(store)
    assert {**stats["nodes"], **stats["relationships"]} == expected


def test_reimport_changes_nothing(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    before = snapshot(store, media_dir, tmp_path)
    report = import_ackb(store, small_ackb, media_dir)
    assert sum(report.created.values()) == 0 and sum(report.updated.values()) == 0
    assert snapshot(store, media_dir, tmp_path) == before


def test_reimport_with_changes_updates_in_place(store: GraphStore, editable_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, editable_ackb, media_dir)
    path = editable_ackb / "nodes" / "Product.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["name"] = "Renamed product"
    for row in rows:  # timestamps and version left to the importer
        del row["created_at"], row["updated_at"], row["version"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = json.loads((editable_ackb / "manifest.json").read_text())
    del manifest["nodes"]["Product"]["sha256"]
    (editable_ackb / "manifest.json").write_text(json.dumps(manifest))
    report = import_ackb(store, editable_ackb, media_dir)
    assert report.updated["Product"] == 1 and report.unchanged["Product"] == len(rows) - 1 and report.created["Product"] == 0
    changed = repo.products.get(store, rows[0]["id"])
    assert changed["name"] == "Renamed product" and changed["version"] == 2
    assert changed["created_at"] == "2026-01-01T00:00:00.000000Z" and changed["updated_at"] > changed["created_at"]
    assert repo.products.get(store, rows[1]["id"])["version"] == 1
    assert ackb_stats(store)["nodes"]["Product"] == len(rows)


def test_media_files_travel_with_the_ackb(store: GraphStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    synthetic_ackb(source, products=1, clips_per_product=2, categories=1)
    clip_file = source / "nodes" / "CreativeClip.jsonl"
    rows = [json.loads(line) for line in clip_file.read_text().splitlines()]
    rows[0]["video_path"] = "clips/first.mp4"
    clip_file.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    manifest = json.loads((source / "manifest.json").read_text())
    del manifest["nodes"]["CreativeClip"]["sha256"]
    (source / "manifest.json").write_text(json.dumps(manifest))
    write_video(source / "media" / "clips" / "first.mp4")
    media = tmp_path / "media"
    report = import_ackb(store, source, media)
    assert report.media_copied == 1
    assert (media / "clips" / "first.mp4").read_bytes() == (source / "media" / "clips" / "first.mp4").read_bytes()
    assert import_ackb(store, source, media).media_copied == 0  # identical file kept
    export_ackb(store, tmp_path / "out", media)
    assert (tmp_path / "out" / "media" / "clips" / "first.mp4").read_bytes() == (media / "clips" / "first.mp4").read_bytes()


def test_export_refuses_a_non_empty_directory(store: GraphStore, media_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        export_ackb(store, target, media_dir)
    assert (target / "keep.txt").read_text() == "precious"
    export_ackb(store, target, media_dir, overwrite=True)
    assert (target / "manifest.json").is_file() and not (target / "keep.txt").exists()


def _without_same_claim(source: Path, target: Path) -> None:
    """Copy `source` as a directory written before SAME_CLAIM existed: no file, no manifest entry."""
    import shutil

    shutil.copytree(source, target)
    (target / "relationships" / "SAME_CLAIM.jsonl").unlink()
    manifest = json.loads((target / "manifest.json").read_text())
    del manifest["relationships"]["SAME_CLAIM"]
    (target / "manifest.json").write_text(json.dumps(manifest))


def test_same_claim_relations_round_trip_with_their_judgements(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    written = [json.loads(line) for line in (small_ackb / "relationships" / "SAME_CLAIM.jsonl").read_text().splitlines()]
    assert {row["status"] for row in written} == {"approved", "proposed", "rejected"}  # the synthetic ACKB has some
    import_ackb(store, small_ackb, media_dir)
    assert ackb_stats(store)["relationships"]["SAME_CLAIM"] == len(written)
    export_ackb(store, tmp_path / "out", media_dir)
    assert (tmp_path / "out" / "relationships" / "SAME_CLAIM.jsonl").read_bytes() == (small_ackb / "relationships" / "SAME_CLAIM.jsonl").read_bytes()


def test_a_directory_from_before_same_claim_imports_as_before(store: GraphStore, small_ackb: Path, media_dir: Path, tmp_path: Path) -> None:
    _without_same_claim(small_ackb, tmp_path / "old")
    report = import_ackb(store, tmp_path / "old", media_dir)
    assert report.created.get("SAME_CLAIM", 0) == 0 and report.created["ILLUSTRATES"] > 0
    assert ackb_stats(store)["relationships"]["SAME_CLAIM"] == 0
    export_ackb(store, tmp_path / "out", media_dir)  # an export always lists the type, empty
    assert (tmp_path / "out" / "relationships" / "SAME_CLAIM.jsonl").read_bytes() == b""


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"from": "sp-0000001-0", "to": "sp-0000000-0", "status": "approved"}, "from < to"),
        ({"from": "sp-0000000-0", "to": "sp-0000000-0", "status": "approved"}, "itself"),
        ({"from": "sp-0000000-0", "to": "prod-0000001", "status": "approved"}, "prod-0000001"),
        ({"from": "sp-0000000-0", "to": "sp-0000002-0", "status": "maybe"}, "status"),
    ],
)
def test_a_bad_same_claim_row_is_refused_naming_its_line(store: GraphStore, editable_ackb: Path, media_dir: Path, tmp_path: Path, row: dict, reason: str) -> None:
    from kb.interchange import ImportValidationError

    path = editable_ackb / "relationships" / "SAME_CLAIM.jsonl"
    lines = path.read_text().splitlines() + [json.dumps(row)]
    path.write_text("\n".join(lines) + "\n")
    manifest = json.loads((editable_ackb / "manifest.json").read_text())
    manifest["relationships"]["SAME_CLAIM"] = {"file": "relationships/SAME_CLAIM.jsonl"}
    (editable_ackb / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, editable_ackb, media_dir)
    assert any(p.startswith(f"relationships/SAME_CLAIM.jsonl:{len(lines)}") and reason in p for p in caught.value.problems), caught.value.problems
    assert ackb_stats(store)["relationships"]["SAME_CLAIM"] == 0
