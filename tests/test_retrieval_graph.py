"""SAR's view of the ACKB: exports reproduce the store exactly; features have the documented shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kb.graph import KNOWLEDGE_LABELS, KNOWLEDGE_RELATIONSHIPS, AckbGraph, graph_from_directory, graph_from_store
from kb.interchange import import_ackb
from kb.stats import ackb_stats
from kb.store import GraphStore, NotFoundError
from retrieval.features import VISUAL_DIM, TextEncoder, build_features, node_text
from retrieval.split import split_by_selling_point


@pytest.fixture(scope="session")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_whole_export_reproduces_store_counts_and_content(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    graph = graph_from_store(store, media_dir)
    stats = ackb_stats(store)
    stored = {**stats["nodes"], **stats["relationships"]}
    assert graph.counts() == {name: stored[name] for name in (*KNOWLEDGE_LABELS, *KNOWLEDGE_RELATIONSHIPS)}
    assert graph.content_hash == graph_from_directory(small_ackb).content_hash  # same rows, same hash


def test_category_and_product_subgraphs(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    sub = graph_from_store(store, category="cat-0000")
    products = {r["id"] for r in store.read(lambda tx: tx.run("MATCH (p:Product)-[:IN_CATEGORY]->(:Category {id: 'cat-0000'}) RETURN p.id AS id"))}
    assert set(sub.ids("Product")) == products and sub.ids("Category") == ["cat-0000"]
    clips = {r["id"] for r in store.read(lambda tx: tx.run(
        "MATCH (c:CreativeClip)-[:FEATURES]->(p:Product)-[:IN_CATEGORY]->(:Category {id: 'cat-0000'}) RETURN c.id AS id"))}  # fmt: skip
    assert set(sub.ids("CreativeClip")) == clips
    for type_, rows in sub.relationships.items():  # induced: every relationship's ends are in the subgraph
        for row in rows:
            assert row["from"] in sub.index(sub_label(type_, "source")) and row["to"] in sub.index(sub_label(type_, "target"))
    one_hop = graph_from_store(store, products=["prod-0000000"], hops=1)
    assert one_hop.ids("Product") == ["prod-0000000"] and one_hop.ids("Motion") == []  # motions are 2 hops away
    assert len(one_hop.ids("SellingPoint")) == 5 and len(one_hop.ids("CreativeClip")) == 4
    with pytest.raises(NotFoundError, match="no Product with id 'prod-nope'"):
        graph_from_store(store, products=["prod-nope"])
    with pytest.raises(NotFoundError, match="no Category"):
        graph_from_store(store, category="cat-nope")


def sub_label(type_: str, end: str) -> str:
    from kb.schema import rel_type

    return getattr(rel_type(type_), end)


def test_features_have_documented_shapes_and_are_cached(small_ackb: Path, encoder: TextEncoder, tmp_path: Path) -> None:
    graph = graph_from_directory(small_ackb)
    features = build_features(graph, encoder, tmp_path / "cache")
    for label, rows in graph.nodes.items():
        assert features[label].shape == (len(rows), 384) and features[label].dtype == np.float32
        assert np.allclose(np.linalg.norm(features[label], axis=1), 1.0, atol=1e-5)
    assert features["CreativeClip.visual"].shape == (len(graph.nodes["CreativeClip"]), VISUAL_DIM)
    assert not features["CreativeClip.visual"][:, -1].any()  # synthetic clips have no videos: has-video flag 0
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 1
    again = build_features(graph, encoder, tmp_path / "cache")
    assert all(np.array_equal(features[k], again[k]) for k in features)


def test_text_embeddings_are_semantic(encoder: TextEncoder) -> None:
    query, near, far = encoder.encode(["leak-proof lid", "a lid that never leaks", "30-hour battery life"])
    assert float(query @ near) > float(query @ far) + 0.2


def test_node_text_uses_caption_and_tags() -> None:
    assert node_text("CreativeClip", {"caption": "Zoom on the lid", "tags": ["lid", "zoom in"]}) == "Zoom on the lid. lid, zoom in"
    assert node_text("Motion", {"name": "zoom_in", "description": "camera moves closer"}) == "zoom in. camera moves closer"


def test_split_holds_out_selling_points_with_approved_clips(small_ackb: Path) -> None:
    graph = graph_from_directory(small_ackb)
    split = split_by_selling_point(graph, test_fraction=0.2, seed=0)
    approved = graph.judgements("approved")
    assert split.test and not set(split.test) & set(split.train)
    assert set(split.test) | set(split.train) == set(graph.ids("SellingPoint"))
    assert all(approved.get(sp) for sp in split.test)
    assert split == split_by_selling_point(graph, test_fraction=0.2, seed=0)
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_selling_point(graph, test_fraction=1.5)


def test_missing_encoder_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers model directory"):
        TextEncoder(tmp_path)


def _record_generated_video(store: GraphStore, graph: AckbGraph, video_id: str) -> None:
    """What `kdcvg generate` writes: a GeneratedVideo with REFERENCED clips and its GENERATED_FOR selling point."""
    from generation.prompt import build_prompt
    from generation.provenance import record_generation

    sp = graph.ids("SellingPoint")[0]
    product = graph.product_of_selling_point[sp]
    clips = [c for c, p in sorted(graph.product_of_clip.items()) if p == product][:2]
    record_generation(
        store, video_id=video_id, video_path=f"generated/{video_id}.mp4", model_id="tiny", prompt_plan=build_prompt(graph, product, sp, clips),
        seed=1, parameters={}, timings={}, selling_point_id=sp, reference_clip_ids=clips,
    )  # fmt: skip


def test_generated_videos_are_not_part_of_sars_graph(store: GraphStore, small_ackb: Path, media_dir: Path, encoder: TextEncoder, tmp_path: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    before = graph_from_store(store, media_dir)
    features = build_features(before, encoder, tmp_path / "cache")
    _record_generated_video(store, before, "gv-0001")
    assert store.read(lambda tx: tx.run("MATCH (g:GeneratedVideo)-[:REFERENCED]->(:CreativeClip) RETURN count(*) AS n"))[0]["n"] == 2
    after = graph_from_store(store, media_dir)
    assert after.content_hash == before.content_hash and after.counts() == before.counts()
    assert set(after.nodes) == set(KNOWLEDGE_LABELS) and set(after.relationships) == set(KNOWLEDGE_RELATIONSHIPS)
    assert not {"GeneratedVideo", "AuditEvent", "SchemaMigration"} & set(after.nodes)
    assert not {"REFERENCED", "GENERATED_FOR"} & set(after.relationships)
    again = build_features(after, encoder, tmp_path / "cache")  # the cached features are reused, not recomputed
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 1 and set(again) == set(features)
    sub = graph_from_store(store, products=[before.ids("Product")[0]], hops=3)
    assert "GeneratedVideo" not in sub.nodes


def test_knowledge_fingerprint_sees_curation_but_not_generation(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    from kb.curation import Curator
    from retrieval.serving import knowledge_fingerprint

    import_ackb(store, small_ackb, media_dir)
    graph = graph_from_store(store, media_dir)
    first = knowledge_fingerprint(store)
    assert first == knowledge_fingerprint(store)
    assert first["CreativeClip"][0] == len(graph.ids("CreativeClip")) and first["ILLUSTRATES"][0] == len(graph.relationships["ILLUSTRATES"])
    _record_generated_video(store, graph, "gv-0001")
    assert knowledge_fingerprint(store) == first
    clip = graph.ids("CreativeClip")[0]
    version = graph.nodes["CreativeClip"][0]["version"]
    Curator(store, "tester", media_dir).update("CreativeClip", clip, {"caption": "changed"}, expected_version=version)
    assert knowledge_fingerprint(store) != first
