"""Retrieval evaluation: metrics on hand-computed examples, the baselines on the demo's real texts,
and `evaluate_directory` end to end on a small rendered demo build (no mocks).

The demo's real texts (all 120 selling points and 300 clip captions/tags, exactly as the full demo
plans them) are written as an ACKB directory without rendering video, which keeps the suite fast;
`evaluate_directory` is also run on a small rendered build (3 products, 3 clips each).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kb.demo.build import build_demo_ackb, build_rows, plan_clips, select_products
from kb.graph import AckbGraph, graph_from_directory
from kb.interchange import write_ackb
from retrieval.baselines import bm25_scores, popularity_scores, random_scores, sentence_cosine_scores
from retrieval.evaluate import (
    NothingToEvaluateError,
    baseline_rankers,
    evaluate,
    evaluate_directory,
    format_table,
    relevant_clips,
)
from retrieval.features import TextEncoder, build_features, node_text
from retrieval.metrics import ranking_metrics
from retrieval.split import Split, split_by_selling_point

SMALL_PRODUCTS = ["aquasonic-electric-toothbrush", "thermopeak-insulated-bottle", "airbeat-wireless-earbuds"]
BASELINES = ["random", "popularity", "bm25", "sentence-cosine"]
L2 = math.log2


# ------------------------------------------------------------------------------------------------
# Fixtures


def _write_text_only_demo(directory: Path, products: list[str] | None = None, *, status: str | None = None) -> Path:
    """The demo's planned rows (real captions, tags, judgements) as an ACKB directory, no videos."""
    selected = select_products(products)
    plans = plan_clips(selected)
    nodes, rels = build_rows(selected, plans, {plan.id: {} for plan in plans})
    for row in nodes["CreativeClip"]:
        row.pop("video_path")
    if status is not None:
        for row in rels["ILLUSTRATES"]:
            row["status"] = status
    write_ackb(directory, nodes, rels)
    return directory


@pytest.fixture(scope="session")
def encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture(scope="session")
def demo_text(tmp_path_factory: pytest.TempPathFactory, encoder: TextEncoder) -> tuple[AckbGraph, dict[str, np.ndarray], Split]:
    directory = _write_text_only_demo(tmp_path_factory.mktemp("demo-text") / "ackb")
    graph = graph_from_directory(directory)
    return graph, build_features(graph, encoder), split_by_selling_point(graph, test_fraction=0.2, seed=0)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-small") / "ackb"
    build_demo_ackb(out, products=SMALL_PRODUCTS, limit_clips_per_product=3, workers=2, progress=False)
    return out


# ------------------------------------------------------------------------------------------------
# Metrics on hand-computed examples


def test_single_relevant_clip() -> None:
    # ranking: 0 (0.9), 2 (0.5), 3 (0.3), 1 (0.1); the relevant clip 2 is at rank 2
    m = ranking_metrics(np.array([[0.9, 0.1, 0.5, 0.3]]), [{2}])
    assert m["Recall@1"] == 0.0 and m["Recall@5"] == 1.0 and m["Recall@10"] == 1.0
    assert m["NDCG@10"] == pytest.approx(1 / L2(3))
    assert m["MRR"] == pytest.approx(0.5)
    assert m["queries"] == 1 and m["excluded"] == 0


def test_two_relevant_clips_custom_ks() -> None:
    # ranking: 4, 1, 2, 3, 0; relevant {1, 3} at ranks 2 and 4
    m = ranking_metrics(np.array([[0.1, 0.4, 0.3, 0.2, 0.5]]), [{1, 3}], ks=(1, 3, 5))
    assert (m["Recall@1"], m["Recall@3"], m["Recall@5"]) == (0.0, 0.5, 1.0)
    assert m["NDCG@10"] == pytest.approx((1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3)))
    assert m["MRR"] == pytest.approx(0.5)


def test_ties_break_by_clip_index() -> None:
    scores = np.ones((2, 4))
    m = ranking_metrics(scores, [{2}, {0}])  # ranks 3 and 1
    assert m["Recall@1"] == pytest.approx(0.5)
    assert m["MRR"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["NDCG@10"] == pytest.approx((1 / L2(4) + 1) / 2)
    # partial tie: clips 1 and 3 share the top score; 1 comes first
    assert ranking_metrics(np.array([[0.0, 0.7, 0.2, 0.7]]), [{3}])["MRR"] == pytest.approx(0.5)


def test_query_without_relevant_clip_is_excluded_and_counted() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.3, 0.2, 0.1], [0.1, 0.2, 0.3]])
    m = ranking_metrics(scores, [{0}, set(), {0}])  # ranks 1 and 3
    assert m["queries"] == 2 and m["excluded"] == 1
    assert m["Recall@1"] == pytest.approx(0.5)
    assert m["MRR"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / L2(4)) / 2)


def test_ideal_dcg_uses_at_most_ten_relevant() -> None:
    scores = -np.arange(20, dtype=float)[None, :]  # clip i at rank i + 1
    m = ranking_metrics(scores, [set(range(12))])
    assert m["NDCG@10"] == pytest.approx(1.0)
    assert m["Recall@10"] == pytest.approx(10 / 12)
    assert m["Recall@1"] == pytest.approx(1 / 12)


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="2 sets but scores has 3 query rows"):
        ranking_metrics(np.zeros((3, 4)), [{0}, {1}])
    with pytest.raises(ValueError, match="2-D"):
        ranking_metrics(np.zeros(4), [{0}])
    with pytest.raises(ValueError, match="outside 0..3"):
        ranking_metrics(np.zeros((1, 4)), [{4}])
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(np.array([[0.1, np.nan]]), [{0}])
    with pytest.raises(ValueError, match="positive integers"):
        ranking_metrics(np.zeros((1, 4)), [{0}], ks=(0,))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        ranking_metrics(np.zeros((2, 4)), [set(), set()])


# ------------------------------------------------------------------------------------------------
# Baselines on the demo's real texts


def test_random_baseline_recall_near_chance(demo_text: tuple[AckbGraph, dict[str, np.ndarray], Split]) -> None:
    graph, features, split = demo_text
    relevant = relevant_clips(graph, split.test)
    n_clips = len(graph.nodes["CreativeClip"])
    assert n_clips == 300 and len(split.test) >= 10
    np.testing.assert_array_equal(random_scores(graph, features, split, split.test, seed=3),
                                  random_scores(graph, features, split, split.test, seed=3))
    assert not np.array_equal(random_scores(graph, features, split, split.test, seed=3),
                              random_scores(graph, features, split, split.test, seed=4))
    runs = [ranking_metrics(random_scores(graph, features, split, split.test, seed=s), relevant) for s in range(100)]
    for k, tolerance in ((1, 0.004), (5, 0.008), (10, 0.012)):
        mean = float(np.mean([r[f"Recall@{k}"] for r in runs]))
        assert abs(mean - k / n_clips) < tolerance, (k, mean)


def test_sentence_cosine_beats_random(demo_text: tuple[AckbGraph, dict[str, np.ndarray], Split]) -> None:
    graph, features, split = demo_text
    scores = sentence_cosine_scores(graph, features, split, split.test)
    assert scores.shape == (len(split.test), 300)
    assert np.all(scores <= 1 + 1e-6) and np.all(scores >= -1 - 1e-6)
    rows = {r["method"]: r for r in evaluate(graph, features, split, baseline_rankers(seed=0))}
    assert rows["sentence-cosine"]["Recall@10"] > rows["random"]["Recall@10"] + 0.3
    assert rows["sentence-cosine"]["MRR"] > rows["random"]["MRR"] + 0.3


def test_bm25_prefers_clips_sharing_words(demo_text: tuple[AckbGraph, dict[str, np.ndarray], Split]) -> None:
    import bm25s

    graph, features, split = demo_text
    queries = split.test
    scores = bm25_scores(graph, features, split, queries)
    sp_rows = graph.index("SellingPoint")

    def tokenize(texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords="english", return_ids=False, show_progress=False)

    clip_tokens = [set(t) for t in tokenize([node_text("CreativeClip", row) for row in graph.nodes["CreativeClip"]])]
    query_tokens = [set(t) for t in tokenize([graph.nodes["SellingPoint"][sp_rows[sp]]["text"] for sp in queries])]
    for q, words in enumerate(query_tokens):
        sharing = np.array([bool(words & clip) for clip in clip_tokens])
        assert sharing.any() and not sharing.all()
        assert scores[q, sharing].min() > 0
        assert np.all(scores[q, ~sharing] == 0)
    # e.g. "Soft round-end bristles": the toothbrush clips about bristles rank above the rest
    soft = "sp-aquasonic-electric-toothbrush-soft-bristles"
    row = bm25_scores(graph, features, split, [soft])[0]
    about = np.array(["bristles" in clip["caption"] for clip in graph.nodes["CreativeClip"]])
    assert about.sum() >= 5 and row[about].min() > row[~about].max()


def test_popularity_counts_only_training_links(demo_text: tuple[AckbGraph, dict[str, np.ndarray], Split]) -> None:
    graph, features, split = demo_text
    scores = popularity_scores(graph, features, split, split.test)
    assert np.all(scores == scores[0])  # the same for every query
    approved = graph.judgements("approved")
    clip_index = graph.index("CreativeClip")
    expected = np.zeros(len(clip_index))
    for sp in split.train:
        for clip in approved.get(sp, ()):
            expected[clip_index[clip]] += 1
    np.testing.assert_array_equal(scores[0], expected)
    for sp in split.test:  # held-out links never count
        for clip in approved[sp]:
            assert scores[0, clip_index[clip]] == 0


# ------------------------------------------------------------------------------------------------
# evaluate_directory end to end


def test_evaluate_directory_on_small_demo(small_demo: Path, encoder: TextEncoder, feature_cache: Path) -> None:
    calls: list[tuple[int, int]] = []

    def negated_cosine(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: list[str]) -> np.ndarray:
        calls.append((len(split.train), len(sp_ids)))
        assert set(sp_ids) == set(split.test) and not set(sp_ids) & set(split.train)
        return -sentence_cosine_scores(graph, features, split, sp_ids)

    rows = evaluate_directory(small_demo, extra_rankers={"anti-cosine": negated_cosine}, cache_dir=feature_cache,
                              encoder=encoder)
    graph = graph_from_directory(small_demo)
    split = split_by_selling_point(graph, test_fraction=0.2, seed=0)
    assert [r["method"] for r in rows] == [*BASELINES, "anti-cosine"]
    assert calls == [(len(split.train), len(split.test))]
    for row in rows:
        assert list(row) == ["method", "queries", "Recall@1", "Recall@5", "Recall@10", "NDCG@10", "MRR"]
        assert row["queries"] == len(split.test) > 0
        for name, value in row.items():
            if name not in ("method", "queries"):
                assert 0.0 <= value <= 1.0, (row["method"], name, value)
    assert len(list(feature_cache.glob(f"features-{graph.content_hash[:24]}-*.npz"))) == 1  # features were cached
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| method | queries | Recall@1 | Recall@5 | Recall@10 | NDCG@10 | MRR |"
    assert len(lines) == 2 + len(rows)
    assert f"| random | {len(split.test)} | {rows[0]['Recall@1']:.3f} |" in lines[2]


def test_extra_ranker_errors(small_demo: Path, encoder: TextEncoder, feature_cache: Path) -> None:
    with pytest.raises(ValueError, match="already a baseline"):
        evaluate_directory(small_demo, extra_rankers={"bm25": bm25_scores}, encoder=encoder)

    def wrong_shape(graph: AckbGraph, features: Any, split: Split, sp_ids: list[str]) -> np.ndarray:
        return np.zeros((len(sp_ids), 3))

    with pytest.raises(ValueError, match="ranker 'broken' returned scores of shape"):
        evaluate_directory(small_demo, extra_rankers={"broken": wrong_shape}, cache_dir=feature_cache, encoder=encoder)


def test_no_approved_links_is_a_clear_error(tmp_path: Path) -> None:
    directory = _write_text_only_demo(tmp_path / "ackb", SMALL_PRODUCTS, status="proposed")
    with pytest.raises(NothingToEvaluateError, match="nothing to evaluate .*0 approved ILLUSTRATES links"):
        evaluate_directory(directory)
    graph = graph_from_directory(directory)
    with pytest.raises(NothingToEvaluateError, match="no approved links at all"):
        evaluate(graph, {}, Split(graph.ids("SellingPoint")[:10], graph.ids("SellingPoint")[10:]), baseline_rankers())
