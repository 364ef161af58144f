"""Provenance of generated videos (generation.provenance) in a real store: all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.prompt import build_prompt
from generation.provenance import record_generation
from kb.demo.build import build_rows, plan_clips, select_products
from kb.graph import graph_from_directory, graph_from_store
from kb.interchange import export_ackb, import_ackb, read_ackb, write_ackb
from kb.repository import RecordValidationError
from kb.store import ConflictError, GraphStore, NotFoundError
from tests.conftest import snapshot
from tests.videos import write_video

TOOTHBRUSH = "prod-aquasonic-electric-toothbrush"
SONIC = "sp-aquasonic-electric-toothbrush-sonic-strokes"
REFS = ["clip-0053", "clip-0051", "clip-0052"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("provenance") / "ackb"
    selected = select_products(["aquasonic-electric-toothbrush", "hydraglow-sheet-mask"])
    plans = plan_clips(selected)
    nodes, rels = build_rows(selected, plans, {plan.id: {} for plan in plans})
    for row in nodes["CreativeClip"]:
        row.pop("video_path")
    write_ackb(directory, nodes, rels)
    return directory


@pytest.fixture
def loaded(store: GraphStore, demo_dir: Path, media_dir: Path) -> GraphStore:
    import_ackb(store, demo_dir, media_dir)
    return store


def _record(store: GraphStore, demo_dir: Path, **overrides):  # noqa: ANN202
    plan = build_prompt(graph_from_directory(demo_dir), TOOTHBRUSH, SONIC, REFS)
    arguments = dict(
        video_id="gv-0001",
        video_path="generated/gv-0001.mp4",
        model_id="tiny-random-video-model",
        prompt_plan=plan,
        seed=1234,
        parameters={"frames": 16, "size": [256, 256], "steps": 4, "guidance": 6.0, "motion_strength": 0.7},
        timings={"total_s": 1.5, "inversion_s": 0.25},
        selling_point_id=SONIC,
        reference_clip_ids=REFS,
    )
    arguments.update(overrides)
    return plan, record_generation(store, **arguments)


def test_round_trip_node_and_links(loaded: GraphStore, demo_dir: Path) -> None:
    plan, result = _record(loaded, demo_dir)
    node = {k: v for k, v in loaded.read(lambda tx: tx.run("MATCH (g:GeneratedVideo {id: 'gv-0001'}) RETURN g"))[0]["g"].items() if not k.startswith("_")}
    assert node == result["node"]
    assert node["prompt"] == plan.prompt and node["negative_prompt"] == plan.negative_prompt
    assert node["seed"] == 1234 and node["model_id"] == "tiny-random-video-model" and node["video_path"] == "generated/gv-0001.mp4"
    assert json.loads(node["parameters"]) == {"frames": 16, "size": [256, 256], "steps": 4, "guidance": 6.0, "motion_strength": 0.7}
    assert json.loads(node["timings"]) == {"total_s": 1.5, "inversion_s": 0.25}
    assert node["version"] == 1 and node["created_at"] == node["updated_at"] and node["created_at"].endswith("Z")
    referenced = loaded.read(
        lambda tx: tx.run("MATCH (g:GeneratedVideo {id: 'gv-0001'})-[r:REFERENCED]->(c:CreativeClip) RETURN c.id AS clip, r.rank AS rank ORDER BY rank")
    )
    assert [(r["clip"], r["rank"]) for r in referenced] == [(c, i) for i, c in enumerate(REFS, start=1)]
    targets = loaded.read(lambda tx: tx.run("MATCH (g:GeneratedVideo {id: 'gv-0001'})-[:GENERATED_FOR]->(s:SellingPoint) RETURN s.id AS id"))
    assert targets == [{"id": SONIC}]
    # SAR's in-memory graph is the knowledge only: provenance stays out of it
    graph = graph_from_store(loaded)
    assert "GeneratedVideo" not in graph.nodes and "GENERATED_FOR" not in graph.relationships


def test_export_import_round_trip_is_byte_identical(loaded: GraphStore, demo_dir: Path, media_dir: Path, tmp_path: Path) -> None:
    _record(loaded, demo_dir)
    write_video(media_dir / "generated" / "gv-0001.mp4")  # the video `kdcvg generate` writes beside its record
    before = snapshot(loaded, media_dir, tmp_path)
    assert b"gv-0001" in before["nodes/GeneratedVideo.jsonl"]
    assert before["relationships/REFERENCED.jsonl"].count(b"\n") == 3
    assert before["relationships/GENERATED_FOR.jsonl"].count(b"\n") == 1
    exported = tmp_path / "exported"
    export_ackb(loaded, exported, media_dir)
    parsed = read_ackb(exported)
    assert [r["id"] for r in parsed.nodes["GeneratedVideo"]] == ["gv-0001"]
    assert (exported / "media" / "generated" / "gv-0001.mp4").read_bytes() == (media_dir / "generated" / "gv-0001.mp4").read_bytes()


def test_import_into_a_fresh_store_reproduces_it(store: GraphStore, demo_dir: Path, media_dir: Path, tmp_path: Path) -> None:
    import_ackb(store, demo_dir, media_dir)
    _record(store, demo_dir)
    write_video(media_dir / "generated" / "gv-0001.mp4")
    exported = tmp_path / "exported"
    export_ackb(store, exported, media_dir)
    first = snapshot(store, media_dir, tmp_path)
    # wipe the provenance and re-import the export: same bytes
    store.run("MATCH (g:GeneratedVideo) DETACH DELETE g")
    assert b"gv-0001" not in snapshot(store, media_dir, tmp_path)["nodes/GeneratedVideo.jsonl"]
    import_ackb(store, exported, media_dir)
    assert snapshot(store, media_dir, tmp_path) == first


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"selling_point_id": "sp-nope"}, NotFoundError, "no SellingPoint with id 'sp-nope'"),
        ({"reference_clip_ids": ["clip-0053", "clip-9999"]}, NotFoundError, "no CreativeClip with id 'clip-9999'"),
        ({"reference_clip_ids": ["clip-0053", "clip-0053"]}, RecordValidationError, "must not repeat"),
        ({"seed": -1}, RecordValidationError, "seed"),
        ({"seed": 2**63}, RecordValidationError, "seed"),
        ({"seed": "7"}, RecordValidationError, "seed"),
        ({"video_path": "../escape.mp4"}, RecordValidationError, "video_path"),
        ({"video_path": "/abs/gv.mp4"}, RecordValidationError, "video_path"),
        ({"model_id": ""}, RecordValidationError, "model_id"),
        ({"model_id": "x" * 201}, RecordValidationError, "model_id"),
        ({"parameters": {"steps": float("nan")}}, RecordValidationError, "parameters"),
        ({"parameters": {"blob": "x" * 30_000}}, RecordValidationError, "parameters"),
        ({"timings": [1, 2]}, RecordValidationError, "timings"),
        ({"video_id": "gv\n1"}, RecordValidationError, "id"),
    ],
)
def test_bad_input_writes_nothing(loaded: GraphStore, demo_dir: Path, media_dir: Path, tmp_path: Path, overrides: dict, error: type, message: str) -> None:
    before = snapshot(loaded, media_dir, tmp_path)
    with pytest.raises(error, match=message):
        _record(loaded, demo_dir, **overrides)
    assert snapshot(loaded, media_dir, tmp_path) == before


def test_existing_id_is_a_conflict_and_changes_nothing(loaded: GraphStore, demo_dir: Path, media_dir: Path, tmp_path: Path) -> None:
    _record(loaded, demo_dir)
    before = snapshot(loaded, media_dir, tmp_path)
    with pytest.raises(ConflictError, match="GeneratedVideo 'gv-0001' already exists"):
        _record(loaded, demo_dir, seed=99, reference_clip_ids=["clip-0001"])
    assert snapshot(loaded, media_dir, tmp_path) == before


def test_records_refuse_json_that_is_not_an_object() -> None:
    from kb.records import GeneratedVideo, Referenced

    base = {"id": "gv-1", "video_path": "generated/gv-1.mp4", "model_id": "m", "prompt": "p", "seed": 0, "parameters": "{}"}
    assert GeneratedVideo.model_validate(base).parameters == "{}"
    for bad in ("[1, 2]", "not json", '"a string"', "{]", "null"):
        with pytest.raises(ValueError, match="JSON object"):
            GeneratedVideo.model_validate({**base, "parameters": bad})
    with pytest.raises(ValueError):
        GeneratedVideo.model_validate({**base, "unknown": 1})
    with pytest.raises(ValueError):
        Referenced.model_validate({"from": "gv-1", "to": "clip-1", "rank": 0})
