"""kb.demo.build: a small real demo build (few clips), checked file by file, and the full plan."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kb.demo import build as demo
from kb.demo.spec import BRIEFED_PRODUCTS, CATEGORIES, MOTIONS, PRODUCTS, SAME_CLAIMS
from kb.motion import measure_motion
from kb.schema import ILLUSTRATION_STATUSES, MOTION_DESCRIPTORS, NODE_TYPES, REL_TYPES

SMALL = {"products": ["airbeat-wireless-earbuds", "prod-thermopeak-insulated-bottle"], "limit_clips_per_product": 3}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _jsonl_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/*.jsonl"))}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("demo")
    summary = demo.build_demo_ackb(base / "a", workers=2, progress=False, **SMALL)
    demo.build_demo_ackb(base / "b", workers=1, progress=False, **SMALL)  # in-process, for comparison
    return base / "a", base / "b", summary


@pytest.fixture(scope="module")
def built(builds: tuple[Path, Path, dict[str, Any]]) -> Path:
    return builds[0]


@pytest.fixture(scope="module")
def manifest(built: Path) -> dict[str, Any]:
    return json.loads((built / "manifest.json").read_text(encoding="utf-8"))


DEMO_NODES = {"Category": 2, "Product": 2, "SellingPoint": 10, "CreativeClip": 6, "Motion": 10}  # what the SMALL demo fills
DEMO_RELATIONSHIPS = {"IN_CATEGORY": 2, "HAS_SELLING_POINT": 10, "ILLUSTRATES": 6, "FEATURES": 6, "HAS_MOTION": 6}


def test_summary(builds: tuple[Path, Path, dict[str, Any]]) -> None:
    _, _, summary = builds
    assert summary["reused"] is False
    assert summary["clips"] == 6
    assert summary["nodes"] == {label: DEMO_NODES.get(label, 0) for label in NODE_TYPES}  # a type a migration adds: 0
    assert summary["relationships"] == {type_: DEMO_RELATIONSHIPS.get(type_, 0) for type_ in REL_TYPES}
    assert summary["bytes"] > 0


def test_manifest_counts_and_checksums_match_files(built: Path, manifest: dict[str, Any]) -> None:
    assert manifest["format"] == "ackb" and manifest["format_version"] == 1
    assert set(manifest["nodes"]) == set(NODE_TYPES)
    assert set(manifest["relationships"]) == set(REL_TYPES)
    for section in ("nodes", "relationships"):
        for name, entry in manifest[section].items():
            path = built / entry["file"]
            assert entry["file"] == f"{section}/{name}.jsonl"
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
            assert data.count(b"\n") == entry["count"], entry["file"]
    for relative, entry in manifest["media"].items():
        data = (built / "media" / relative).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert not list(built.parent.glob(".a.*")), "temporary build directory left behind"


def test_jsonl_is_canonical_and_sorted(built: Path) -> None:
    for path in sorted(built.glob("*/*.jsonl")):
        text = path.read_text(encoding="utf-8")
        if path.stem not in DEMO_NODES | DEMO_RELATIONSHIPS:  # no generated videos, no relations, no type added later
            assert text == "", path
            continue
        assert text.endswith("\n") and "\n\n" not in text, path
        rows = [json.loads(line) for line in text.splitlines()]
        for line, row in zip(text.splitlines(), rows):
            assert line == json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        key = (lambda r: r["id"]) if path.parent.name == "nodes" else (lambda r: (r["from"], r["to"]))
        assert [key(r) for r in rows] == sorted(key(r) for r in rows), path


def test_rows_follow_the_schema(built: Path) -> None:
    ids: dict[str, set[str]] = {}
    for label, node_type in NODE_TYPES.items():
        rows = _read_jsonl(built / "nodes" / f"{label}.jsonl")
        ids[label] = {r["id"] for r in rows}
        assert len(ids[label]) == len(rows), label
        for row in rows:
            assert set(row) <= set(node_type.all_properties), (label, set(row) - set(node_type.all_properties))
            assert row["created_at"] == row["updated_at"] == "2026-01-01T00:00:00.000000Z" and row["version"] == 1
    for type_, rel in REL_TYPES.items():
        rows = _read_jsonl(built / "relationships" / f"{type_}.jsonl")
        assert len({(r["from"], r["to"]) for r in rows}) == len(rows), type_
        for row in rows:
            assert set(row) == {"from", "to", *rel.properties}, type_
            assert row["from"] in ids[rel.source] and row["to"] in ids[rel.target], (type_, row)
    for row in _read_jsonl(built / "relationships" / "ILLUSTRATES.jsonl"):
        assert row["status"] in ILLUSTRATION_STATUSES and 0 <= row["score"] <= 1
        assert row["annotator"].startswith("demo-annotator-")
    clip_ids = ids["CreativeClip"]
    for type_ in ("ILLUSTRATES", "FEATURES", "HAS_MOTION"):
        assert sorted(r["from"] for r in _read_jsonl(built / "relationships" / f"{type_}.jsonl")) == sorted(clip_ids)


def test_every_clip_is_a_real_measured_video(built: Path) -> None:
    clips = _read_jsonl(built / "nodes" / "CreativeClip.jsonl")
    assert [c["id"] for c in clips] == ["clip-0176", "clip-0177", "clip-0178", "clip-0226", "clip-0227", "clip-0228"]
    for clip in clips:
        assert clip["video_path"] == f"clips/{clip['id']}.mp4"
        path = built / "media" / clip["video_path"]
        measured = measure_motion(path)  # decodes every frame
        for key in (*MOTION_DESCRIPTORS, "duration_s", "fps", "width", "height", "num_frames"):
            assert isinstance(clip[key], (int, float)) and math.isfinite(clip[key]), (clip["id"], key)
            assert clip[key] == measured[key], (clip["id"], key)  # the stored numbers are the file's
        assert (clip["width"], clip["height"], clip["fps"]) == (256, 256, 12.0)
        assert 2.0 <= clip["duration_s"] <= 4.0
        assert 6 <= len(clip["caption"].split()) <= 12, clip["caption"]
        assert 3 <= len(clip["tags"]) <= 6 and len(set(clip["tags"])) == len(clip["tags"])
        assert path.read_bytes()[4:8] == b"ftyp"


def test_two_builds_are_byte_identical(builds: tuple[Path, Path, dict[str, Any]]) -> None:
    first, second, _ = builds
    assert _jsonl_files(first) == _jsonl_files(second)
    assert (first / "manifest.json").read_bytes() == (second / "manifest.json").read_bytes()
    for clip in sorted((first / "media" / "clips").iterdir()):
        assert clip.read_bytes() == (second / "media" / "clips" / clip.name).read_bytes(), clip.name


def test_second_call_reuses_complete_build(built: Path) -> None:
    def written() -> dict[Path, int]:
        return {path: path.stat().st_mtime_ns for path in built.rglob("*") if path.is_file()}

    before = written()
    summary = demo.build_demo_ackb(built, workers=2, progress=False, **SMALL)
    assert summary["reused"] is True
    assert written() == before and len(before) > 1  # no clip rendered, no row or manifest written again


def test_rebuild_replaces_an_older_demo_build(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    demo.build_demo_ackb(out, workers=1, progress=False, products=["pulse-portable-speaker"], limit_clips_per_product=1)
    summary = demo.build_demo_ackb(out, workers=1, progress=False, products=["pulse-portable-speaker"],
                                   limit_clips_per_product=2)
    assert summary["reused"] is False and summary["clips"] == 2
    assert sorted(p.name for p in (out / "media" / "clips").iterdir()) == ["clip-0276.mp4", "clip-0277.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary directories left


def test_killed_build_leaves_no_half_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "kb.demo.build", str(out), "--workers", "1", "--no-progress",
               "--products", "pulse-portable-speaker", "--limit-clips-per-product", "10"]
    process = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".demo.building-*/media/clips/*.mp4")) and time.monotonic() < deadline:
            assert process.poll() is None, "the build ended before it could be interrupted"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert not out.exists()
    assert list(tmp_path.glob(".demo.building-*")), "expected the killed build's temporary directory"

    assert demo.main([str(out), "--workers", "1", "--no-progress", "--products", "pulse-portable-speaker",
                      "--limit-clips-per-product", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"built: {out}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # the stale temporary is gone
    assert os.listdir(out / "media" / "clips") == ["clip-0276.mp4"]


def test_refuses_to_replace_other_data(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        demo.build_demo_ackb(out, progress=False, products=["pulse-portable-speaker"], limit_clips_per_product=1)
    assert (out / "notes.txt").read_text() == "keep me"


def test_unknown_product_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no-such-product"):
        demo.build_demo_ackb(tmp_path / "x", progress=False, products=["no-such-product"])


def test_full_demo_plan() -> None:
    """The full demo's content, planned without rendering: sizes, spread of motions, annotations."""
    plans = demo.plan_clips(PRODUCTS)
    assert len(CATEGORIES) >= 5 and len(PRODUCTS) == 12 and len(MOTIONS) >= 8
    assert all(len(p["selling_points"]) == 5 for p in PRODUCTS)
    assert len({demo.selling_point_id(p["key"], s["key"]) for p in PRODUCTS for s in p["selling_points"]}) == 60
    assert len(plans) == 300 and len({c.id for c in plans}) == 300
    assert [c.id for c in plans] == [f"clip-{n:04d}" for n in range(1, 301)]
    assert set(Counter(c.product for c in plans).values()) == {25}
    assert set(Counter((c.product, c.selling_point) for c in plans).values()) == {5}
    category_of = {p["key"]: p["category"] for p in PRODUCTS}
    per_category = Counter((category_of[c.product], c.motion) for c in plans)
    for category in CATEGORIES:
        for motion in MOTIONS:
            assert per_category[(category["key"], motion["key"])] >= 4, (category["key"], motion["key"])
    statuses = Counter(c.status for c in plans)
    assert set(statuses) == set(ILLUSTRATION_STATUSES) and statuses["approved"] > 0.6 * len(plans)
    for clip in plans:
        assert 6 <= len(clip.caption.split()) <= 12, clip.caption
        assert 3 <= len(clip.tags) <= 6, clip.tags
        assert 0 <= clip.score <= 1 and 24 <= clip.num_frames <= 48
    assert demo.plan_clips(PRODUCTS) == plans  # deterministic


def test_briefed_products_have_selling_points_and_relations_but_no_clips() -> None:
    """Briefed products add selling points and SAME_CLAIM rows, never clips: the filmed clips' ids and plans stay as they were."""
    every = demo.select_products(None)
    assert [p["key"] for p in every] == [p["key"] for p in [*PRODUCTS, *BRIEFED_PRODUCTS]] and len(BRIEFED_PRODUCTS) == 12
    assert all(len(p["selling_points"]) == 5 for p in BRIEFED_PRODUCTS)
    sp_ids = [demo.selling_point_id(p["key"], s["key"]) for p in every for s in p["selling_points"]]
    assert len(sp_ids) == len(set(sp_ids)) == 120
    assert demo.plan_clips(every) == demo.plan_clips(PRODUCTS)
    assert demo.plan_clips(demo.select_products([BRIEFED_PRODUCTS[0]["key"]])) == []
    categories = {c["key"] for c in CATEGORIES}
    assert all(p["category"] in categories for p in BRIEFED_PRODUCTS)
    filmed = {p["key"] for p in PRODUCTS}
    for product in BRIEFED_PRODUCTS:  # each can borrow footage: approved claims shared with filmed products
        approved = [row for row in SAME_CLAIMS if row[4] == "approved" and product["key"] in (row[0], row[2])
                    and (row[0] in filmed or row[2] in filmed)]
        assert len(approved) >= 4, product["key"]
