"""ClipIndex (real usearch) and the serving layer (real graph, real store): exactness, filters, errors, write-back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kb.audit import list_audit
from kb.graph import AckbGraph, graph_from_directory, graph_from_store
from kb.interchange import import_ackb
from kb.repository import illustrates
from kb.store import GraphStore, NotFoundError
from retrieval.index import EMBEDDINGS_FILE, IDS_FILE, INDEX_FILE, MAX_K, ClipIndex
from retrieval.service import ClipFilter, RetrievedClip, allowed_clips, explain, propose_links, rank

DIM = 32


def unit(rows: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(
    ids: list[str], vectors: np.ndarray, query: np.ndarray, k: int, allowed: set[str] | None = None
) -> list[tuple[str, float]]:
    q = query / np.linalg.norm(query)
    scored = [(ids[i], float(vectors[i] @ q)) for i in range(len(ids)) if allowed is None or ids[i] in allowed]
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:k]


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray, ClipIndex]:
    ids = [f"clip-{i:05d}" for i in range(800)]
    vectors = unit(800)
    return ids, vectors, ClipIndex.build(ids, vectors)


def same(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [c for c, _ in found] == [c for c, _ in expected]
    assert np.allclose([s for _, s in found], [s for _, s in expected], atol=1e-5)


def test_search_returns_exact_neighbours_on_small_data(data) -> None:
    ids, vectors, index = data
    for seed in range(20):
        query = np.random.default_rng(100 + seed).standard_normal(DIM)
        same(index.search(query, 10), brute_force(ids, vectors, query, 10))
    # an indexed vector is its own nearest neighbour with similarity 1
    top = index.search(vectors[123] * 5.0, 1)
    assert top[0][0] == ids[123] and top[0][1] == pytest.approx(1.0, abs=1e-5)


@pytest.fixture
def ann_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every search of a non-empty `allowed` set or index go through the HNSW graph."""
    import retrieval.index as module

    monkeypatch.setattr(module, "EXACT_MAX", 10)
    monkeypatch.setattr(module, "EXACT_FRACTION", 0.0)


def recall(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> float:
    return len({c for c, _ in found} & {c for c, _ in expected}) / len(expected)


def test_hnsw_search_finds_the_true_neighbours(ann_only, data) -> None:
    ids, vectors, index = data
    recalls = []
    for seed in range(50):
        query = np.random.default_rng(100 + seed).standard_normal(DIM)
        found, expected = index.search(query, 10), brute_force(ids, vectors, query, 10)
        assert len(found) == 10 and [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        truth = dict(expected) | {c: float(vectors[ids.index(c)] @ (query / np.linalg.norm(query))) for c, _ in found}
        assert all(abs(s - truth[c]) < 1e-5 for c, s in found)  # the reported score is the true cosine
        recalls.append(recall(found, expected))
    assert np.mean(recalls) >= 0.95
    assert index.search(vectors[321], 1)[0][0] == ids[321]


def test_save_load_gives_identical_results(data, tmp_path: Path) -> None:
    ids, _, index = data
    index.save(tmp_path / "idx")
    loaded = ClipIndex.load(tmp_path / "idx")
    assert (
        loaded.clip_ids == ids
        and np.array_equal(loaded.embeddings, index.embeddings)
        and len(loaded) == len(index)
        and loaded.dim == DIM
    )
    assert loaded.index.expansion_search == index.index.expansion_search  # searches as wide as the built index
    allowed = set(ids[::7])
    for seed in range(10):
        query = np.random.default_rng(200 + seed).standard_normal(DIM)
        assert loaded.search(query, 10) == index.search(query, 10)
        assert loaded.search(query, 5, allowed) == index.search(query, 5, allowed)
        # the HNSW graph itself survives the round trip
        assert [int(k) for k in loaded.index.search(query.astype(np.float32), 10).keys] == [
            int(k) for k in index.index.search(query.astype(np.float32), 10).keys
        ]


def test_filters_restrict_results_and_exact_path_equals_brute_force(data) -> None:
    ids, vectors, index = data
    allowed = set(ids[3::11])
    for seed in range(10):
        query = np.random.default_rng(300 + seed).standard_normal(DIM)
        found = index.search(query, 10, allowed)
        assert {c for c, _ in found} <= allowed
        same(found, brute_force(ids, vectors, query, 10, allowed))
    query = np.ones(DIM)
    assert len(index.search(query, 1000, allowed)) == len(allowed)  # fewer allowed than k: all of them
    assert index.search(query, 5, {"not-indexed"}) == []
    assert index.search(query, 5, set()) == []
    assert [c for c, _ in index.search(query, 5, {ids[4], "not-indexed"})] == [ids[4]]


def test_large_filter_takes_the_ann_path_and_still_filters(ann_only, data) -> None:
    ids, vectors, index = data
    allowed = set(ids[::2])  # 400 clips: over-fetch from the ANN, then filter
    recalls = []
    for seed in range(20):
        query = np.random.default_rng(400 + seed).standard_normal(DIM)
        found = index.search(query, 10, allowed)
        assert len(found) == 10 and {c for c, _ in found} <= allowed
        recalls.append(recall(found, brute_force(ids, vectors, query, 10, allowed)))
    assert np.mean(recalls) >= 0.95
    sparse = set(ids[:12])  # very selective: the over-fetch grows until it has k hits (or falls back to a scan)
    query = np.random.default_rng(9).standard_normal(DIM)
    found = index.search(query, 10, sparse)
    assert len(found) == 10 and {c for c, _ in found} <= sparse


def test_clear_errors(data, tmp_path: Path) -> None:
    _, _, index = data
    query = np.zeros(DIM) + 1
    for k in (0, -1, MAX_K + 1):
        with pytest.raises(ValueError, match=f"k must be an integer between 1 and {MAX_K}"):
            index.search(query, k)
    with pytest.raises(ValueError, match=f"dimension {DIM}"):
        index.search(np.ones(DIM + 1), 5)
    with pytest.raises(ValueError, match="all zeros"):
        index.search(np.zeros(DIM), 5)
    with pytest.raises(ValueError, match="2 clip ids but 3"):
        ClipIndex.build(["a", "b"], unit(3))
    with pytest.raises(ValueError, match="'a' appears more than once"):
        ClipIndex.build(["a", "b", "a"], unit(3))
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        ClipIndex.build(["a", "b"], np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(FileNotFoundError, match="missing clips.usearch, clip_ids.json, embeddings.npy"):
        ClipIndex.load(tmp_path / "nowhere")
    index.save(tmp_path / "idx")
    (tmp_path / "idx" / EMBEDDINGS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=f"missing {EMBEDDINGS_FILE}"):
        ClipIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / INDEX_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=f"missing {INDEX_FILE}, {EMBEDDINGS_FILE}"):
        ClipIndex.load(tmp_path / "idx")
    assert (tmp_path / "idx" / IDS_FILE).is_file()


# ---- serving layer -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph(small_ackb: Path) -> AckbGraph:
    return graph_from_directory(small_ackb)


def test_allowed_clips_each_filter(graph: AckbGraph) -> None:
    clips = set(graph.ids("CreativeClip"))
    assert allowed_clips(graph, None) is None and allowed_clips(graph, ClipFilter()) is None
    product = graph.ids("Product")[1]
    by_product = allowed_clips(graph, ClipFilter(product=product))
    assert by_product == {c for c in clips if graph.product_of_clip[c] == product} and len(by_product) == 4
    category = graph.ids("Category")[0]
    by_category = allowed_clips(graph, ClipFilter(category=category))
    assert by_category == {c for c in clips if graph.category_of_product[graph.product_of_clip[c]] == category}
    assert by_product.isdisjoint(by_category)  # product 1 is in category 1
    motion = graph.motion_of_clip[graph.ids("CreativeClip")[0]]
    by_motion = allowed_clips(graph, ClipFilter(motion=motion))
    assert by_motion and by_motion == {c for c in clips if graph.motion_of_clip[c] == motion}
    approved = allowed_clips(graph, ClipFilter(approved_only=True))
    assert approved == set().union(*graph.judgements("approved").values()) and 0 < len(approved) < len(clips)
    both = allowed_clips(graph, ClipFilter(category=category, approved_only=True))
    assert both == by_category & approved
    for field, label in (("product", "Product"), ("category", "Category"), ("motion", "Motion")):
        with pytest.raises(KeyError, match=f"no {label} with id 'nope'"):
            allowed_clips(graph, ClipFilter(**{field: "nope"}))


def test_rank_filters_and_explains(graph: AckbGraph) -> None:
    clip_ids = graph.ids("CreativeClip")
    vectors = unit(len(clip_ids), seed=5)
    index = ClipIndex.build(clip_ids, vectors)
    target = clip_ids[5]
    results = rank(index, graph, vectors[5], "a zoom in of the product", 3, None)
    assert results[0].clip_id == target and len(results) == 3
    assert all(isinstance(r, RetrievedClip) and r.explanation for r in results)
    product = graph.product_of_clip[target]
    filtered = rank(index, graph, vectors[5], "anything", 10, ClipFilter(product=product))
    assert {r.clip_id for r in filtered} == allowed_clips(graph, ClipFilter(product=product))
    assert all(r.product == product for r in filtered)
    assert [r.score for r in filtered] == sorted((r.score for r in filtered), reverse=True)
    other_category = next(c for c in graph.ids("Category") if c != graph.category_of_product[product])
    assert rank(index, graph, vectors[5], "x", 5, ClipFilter(product=product, category=other_category)) == []


def test_rank_never_returns_clips_missing_from_the_graph(graph: AckbGraph) -> None:
    clip_ids = graph.ids("CreativeClip")
    vectors = unit(len(clip_ids) + 3, seed=6)
    index = ClipIndex.build(clip_ids + ["ghost-1", "ghost-2", "ghost-3"], vectors)
    results = rank(index, graph, vectors[-1], "x", 5, None)  # the query is a ghost's own vector
    assert len(results) == 5 and all(r.clip_id in clip_ids for r in results)


def test_explain_is_honest(graph: AckbGraph) -> None:
    row = graph.nodes["CreativeClip"][0]
    motion_id = graph.motion_of_clip[row["id"]]
    motion_name = next(m["name"] for m in graph.nodes["Motion"] if m["id"] == motion_id)
    tag = row["tags"][0]  # e.g. "zoom_in"
    lines = explain(f"The {tag.replace('_', ' ').upper()} for the product!", row, graph)
    assert f"tags shared with the query: {tag}" in lines
    assert any(line == "caption words shared with the query: product" for line in lines)
    assert f"motion: {motion_name}" in lines
    approved_sps = [sp for sp, clips in graph.judgements("approved").items() if row["id"] in clips]
    if approved_sps:
        assert any(line.startswith("approved by annotators for selling point") and approved_sps[0] in line for line in lines)
    else:
        assert "not approved by annotators for any selling point yet" in lines
    unrelated = explain("the of and", row, graph)
    assert unrelated[0] == "no words shared with the query: ranked by embedding similarity alone"


def _links(store: GraphStore, sp: str) -> dict[str, dict]:
    rows = store.read(
        lambda tx: tx.run(
            "MATCH (c:CreativeClip)-[r:ILLUSTRATES]->(:SellingPoint {id: $sp}) "
            "RETURN c.id AS clip, r.status AS status, r.score AS score, r.annotator AS annotator",
            sp=sp,
        )
    )
    return {r["clip"]: r for r in rows}


def test_propose_links_writes_only_new_links(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    sp = "sp-0000000-0"
    clips = [f"clip-0000000-{k:03d}" for k in range(4)] + ["clip-0000001-000"]
    illustrates.link(store, clips[1], sp, {"status": "approved", "score": 0.2, "annotator": "alice"})
    illustrates.link(store, clips[2], sp, {"status": "rejected", "score": 0.3, "annotator": "bob"})
    before = _links(store, sp)
    assert before[clips[0]]["status"] in {"approved", "proposed", "rejected"}  # synthetic link, kept as is
    results = [RetrievedClip(c, score, None, [], None, None, None) for c, score in zip(clips, (0.9, 0.8, 0.7, 1.7, -0.2))]

    written = propose_links(store, sp, results)

    assert written == 2  # clips[3] and the other product's clip; clips[0..2] were already linked
    after = _links(store, sp)
    for clip in clips[:3]:
        assert after[clip] == before[clip]
    assert after[clips[1]]["status"] == "approved" and after[clips[1]]["annotator"] == "alice"
    assert after[clips[2]]["status"] == "rejected" and after[clips[2]]["annotator"] == "bob"
    assert after[clips[3]] == {"clip": clips[3], "status": "proposed", "score": 1.0, "annotator": "sar-model"}
    assert after[clips[4]] == {"clip": clips[4], "status": "proposed", "score": 0.0, "annotator": "sar-model"}
    audited = list_audit(store, action="link").events  # one audit row per new link, by the proposer
    assert sorted(e.entity_id for e in audited) == sorted(f"{c}->{sp}" for c in (clips[3], clips[4]))
    assert {(e.actor, e.entity_label, e.before, e.after["status"]) for e in audited} == {("sar-model", "ILLUSTRATES", None, "proposed")}

    assert propose_links(store, sp, results) == 0
    assert len(list_audit(store, action="link").events) == 2
    assert _links(store, sp) == after
    graph = graph_from_store(store)
    assert len([r for r in graph.relationships["ILLUSTRATES"] if r["to"] == sp]) == len(after)


def test_propose_links_unknown_ids_write_nothing(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    sp = "sp-0000000-1"
    before = _links(store, sp)
    good = RetrievedClip("clip-0000003-000", 0.5, None, [], None, None, None)
    with pytest.raises(NotFoundError, match="no CreativeClip with id 'clip-missing'"):
        propose_links(store, sp, [good, RetrievedClip("clip-missing", 0.5, None, [], None, None, None)])
    with pytest.raises(NotFoundError, match="no SellingPoint with id 'sp-missing'"):
        propose_links(store, "sp-missing", [good])
    assert _links(store, sp) == before
    assert propose_links(store, sp, []) == 0


def test_importing_torch_geometric_after_the_index_does_not_hang() -> None:
    """usearch loaded before torch made torch.jit.script (run by torch_geometric's import) spin forever."""
    import subprocess
    import sys

    code = "import numpy, retrieval.index as i; i.ClipIndex.build(['a'], numpy.ones((1, 4))); import torch_geometric; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1]
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
