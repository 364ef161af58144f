"""The evaluation protocols: what rankers see (leak checks), labels, seeds, statistics, on a small evaluation ACKB with real text features."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kb.eval_ackb import eval_rows
from kb.graph import AckbGraph
from kdcvg.errors import BadInputError
from retrieval.baselines import same_product_scores, sp_knn_scores
from retrieval.evaluate import (
    NothingToEvaluateError,
    Task,
    cold_start_task,
    evaluate_protocol,
    format_protocol_table,
    link_completion_task,
    protocol_baselines,
    run_task,
)
from retrieval.features import TextEncoder, build_features
from retrieval.metrics import bootstrap_interval, per_query_metrics, ranking_metrics
from retrieval.split import split_by_selling_point

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def graph() -> AckbGraph:
    nodes, rels, _ = eval_rows(products=16, clips_per_product=14, seed=4)
    return AckbGraph(nodes, rels)


@pytest.fixture(scope="module")
def ideas() -> dict[str, str]:
    return eval_rows(products=16, clips_per_product=14, seed=4)[2]


@pytest.fixture(scope="module")
def features(graph: AckbGraph, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    return build_features(graph, TextEncoder(), tmp_path_factory.mktemp("features"))


class Spy:
    """A ranker that keeps what it was given (real objects, nothing replaced) and scores at random."""

    def __init__(self) -> None:
        self.seen: list[tuple[AckbGraph, dict[str, np.ndarray], Any, list[str]]] = []

    def __call__(self, graph: AckbGraph, features: dict[str, np.ndarray], split: Any, sp_ids: list[str]) -> np.ndarray:
        self.seen.append((graph, features, split, list(sp_ids)))
        return np.random.default_rng(0).random((len(sp_ids), len(graph.nodes["CreativeClip"])))


# ------------------------------------------------------------------------------------------------
# cold start


@pytest.mark.parametrize("seed", SEEDS)
def test_cold_start_hides_held_out_products_from_rankers(graph: AckbGraph, features: dict[str, np.ndarray], seed: int) -> None:
    task = cold_start_task(graph, features, seed=seed)
    held = set(task.hidden["products"])
    assert held and len(held) == round(16 * 0.2)
    held_sps = {sp for sp, p in graph.product_of_selling_point.items() if p in held}
    assert set(task.split.test) == held_sps and not set(task.split.train) & held_sps
    spy = Spy()
    run_task(task, {"spy": spy})
    seen, seen_features, _, queries = spy.seen[0]
    assert queries == task.split.test
    assert not {c for c, p in seen.product_of_clip.items() if p in held}, "a held-out product's clip is a candidate"
    assert not set(task.hidden["clips"]) & set(seen.ids("CreativeClip"))
    for row in seen.relationships["ILLUSTRATES"]:
        assert row["to"] not in held_sps
    for row in seen.relationships["SAME_CLAIM"]:
        assert row["from"] not in held_sps and row["to"] not in held_sps
    assert held_sps <= set(seen.ids("SellingPoint")), "held-out selling points stay as nodes with their text"
    assert all(seen.product_of_selling_point[sp] in held for sp in held_sps)
    assert held <= set(seen.ids("Product"))
    for key, array in seen_features.items():
        assert array.shape[0] == len(seen.nodes[key.split(".")[0]])
    clip_row = graph.index("CreativeClip")
    for i, clip in enumerate(seen.ids("CreativeClip")):
        assert np.array_equal(seen_features["CreativeClip"][i], features["CreativeClip"][clip_row[clip]])


@pytest.mark.parametrize("seed", SEEDS)
def test_cold_start_labels_come_from_approved_same_claims_of_the_full_graph(
    graph: AckbGraph, features: dict[str, np.ndarray], ideas: dict[str, str], seed: int
) -> None:
    task = cold_start_task(graph, features, seed=seed)
    approved_pairs = {
        frozenset((r["from"], r["to"])) for r in graph.relationships["SAME_CLAIM"] if r["status"] == "approved"
    }
    approved = graph.judgements("approved")
    clips = task.graph.ids("CreativeClip")
    for sp, relevant in zip(task.split.test, task.relevant):
        expected = {c for other in approved if frozenset((sp, other)) in approved_pairs for c in approved[other] if c in set(clips)}
        assert {clips[i] for i in relevant} == expected
        for i in relevant:  # every relevant clip shows the query's idea (the generator's ground truth)
            assert any(ideas[other] == ideas[sp] for other in approved if clips[i] in approved[other])
    assert sum(bool(r) for r in task.relevant) >= len(task.relevant) // 2


def test_cold_start_needs_approved_same_claims(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    bare = AckbGraph(graph.nodes, {**graph.relationships, "SAME_CLAIM": []})
    with pytest.raises(NothingToEvaluateError, match="SAME_CLAIM"):
        cold_start_task(bare, features, seed=0)


# ------------------------------------------------------------------------------------------------
# link completion


@pytest.mark.parametrize("seed", SEEDS)
def test_link_completion_hides_every_link_of_hidden_clips(graph: AckbGraph, features: dict[str, np.ndarray], seed: int) -> None:
    task = link_completion_task(graph, features, seed=seed)
    hidden = set(task.hidden["clips"])
    spy = Spy()
    run_task(task, {"spy": spy})
    seen = spy.seen[0][0]
    assert not {row["from"] for row in seen.relationships["ILLUSTRATES"]} & hidden
    clips = seen.ids("CreativeClip")
    linked = {row["from"] for row in seen.relationships["ILLUSTRATES"]}
    unlinked_b_roll = {c for c in clips if c not in linked and c not in hidden}
    assert unlinked_b_roll, "unlinked B-roll stays as distractors"
    with_b_roll = 0
    for q, sp in enumerate(task.split.test):
        product = graph.product_of_selling_point[sp]
        candidates = {clips[i] for i in np.flatnonzero(task.candidates[q])}
        assert {clips[i] for i in task.relevant[q]} <= candidates <= {c for c in clips if graph.product_of_clip[c] == product}
        assert not candidates & linked, "a clip with a visible link is no candidate: 'unlinked in training' tells nothing"
        with_b_roll += bool(candidates & unlinked_b_roll)
        approved_hidden = {c for c in graph.judgements("approved")[sp] if c in hidden}
        assert {clips[i] for i in task.relevant[q]} == approved_hidden
    assert with_b_roll >= 0.8 * len(task.split.test), "most queries rank hidden clips among unlinked B-roll"


def test_structure_only_rankers_are_at_random_level_on_link_completion(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    result = evaluate_protocol(graph, features, "link-completion", seeds=3)
    rows = {row["method"]: row for row in result["rows"]}
    for name in ("same-product", "same-product-unlinked", "popularity"):
        assert abs(rows[name]["NDCG@10"]["mean"] - rows["random"]["NDCG@10"]["mean"]) < 0.05, name
    leak = result["leak_check"]["structure_minus_random"]["same-product-unlinked"]
    assert leak["low"] <= 0 <= leak["high"]
    assert rows["sp-knn"]["NDCG@10"]["mean"] > rows["random"]["NDCG@10"]["mean"] + 0.1, "text and judgements still help"


def test_the_structure_ranker_exposes_the_old_leaky_protocol(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    """Holding out selling points and ranking every clip (the old protocol): 'same product, unlinked' wins without text."""
    split = split_by_selling_point(graph, test_fraction=0.2, seed=0)
    held = set(split.test)
    approved = graph.judgements("approved")
    view = AckbGraph(graph.nodes, {**graph.relationships, "ILLUSTRATES": [r for r in graph.relationships["ILLUSTRATES"] if r["to"] not in held]})
    clip_index = graph.index("CreativeClip")
    relevant = [{clip_index[c] for c in approved.get(sp, ())} for sp in split.test]
    task = Task("old", 0, view, features, split, relevant, None, {})
    runs = run_task(task, {"random": protocol_baselines(0)["random"], "leak": protocol_baselines(0)["same-product-unlinked"]})
    mean = lambda name: np.mean([m["NDCG@10"] for m in runs[name] if m is not None])
    assert mean("leak") > mean("random") + 0.3


# ------------------------------------------------------------------------------------------------
# seeds, learned rankers, statistics


def test_each_seed_varies_the_split_and_the_rankers_seed(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    seen: dict[int, set[str]] = {}
    spies: dict[int, Spy] = defaultdict(Spy)

    def factory(seed: int) -> dict[str, Any]:
        return {"spy": spies[seed]}

    result = evaluate_protocol(graph, features, "cold-start", seeds=3, first_seed=7, extra_rankers=factory)
    assert result["seeds"] == [7, 8, 9] and sorted(spies) == [7, 8, 9]
    for seed, spy in spies.items():
        seen[seed] = set(spy.seen[0][2].test)
    assert len({frozenset(s) for s in seen.values()}) == 3, "every seed holds out other products"
    assert {row["method"]: row["kind"] for row in result["rows"]}["spy"] == "learned"


def test_learned_rankers_run_under_both_protocols(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    from retrieval.feedback import FeedbackConfig
    from retrieval.rankers import learned_rankers
    from retrieval.train import SarConfig

    config = replace(SarConfig(), epochs=2)
    for protocol in ("cold-start", "link-completion"):
        result = evaluate_protocol(
            graph, features, protocol, seeds=1, extra_rankers=lambda s: learned_rankers(config, FeedbackConfig(epochs=1), seed=s)
        )
        rows = {row["method"]: row for row in result["rows"]}
        assert {"GAT", "GAT+text", "GAT+FB", "GAT+FB+text"} <= set(rows)
        assert all(0 <= rows[m]["MRR"]["mean"] <= 1 for m in rows)
        assert "GAT *" in format_protocol_table(result)


def test_intervals_cover_the_mean_and_a_ranker_against_itself_differs_by_zero(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    first = evaluate_protocol(graph, features, "cold-start", seeds=2)
    best = first["best_baseline"]
    result = evaluate_protocol(graph, features, "cold-start", seeds=2, extra_rankers=lambda s: {"twin": protocol_baselines(s)[best]})
    rows = {row["method"]: row for row in result["rows"]}
    assert result["best_baseline"] == best
    for row in rows.values():
        for metric in ("NDCG@10", "Recall@10", "MRR"):
            assert row[metric]["low"] <= row[metric]["mean"] <= row[metric]["high"]
            assert row[metric]["std"] >= 0
    assert rows["twin"]["vs_best"]["NDCG@10"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    assert rows["twin"]["NDCG@10"] == rows[best]["NDCG@10"]
    assert rows["random"]["vs_best"]["NDCG@10"]["high"] < 0, "the best baseline beats chance"


def test_named_pairs_get_paired_differences_on_every_metric(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    """What feedback changed is read as a paired difference per query (e.g. GAT+FB minus GAT), not from two intervals."""
    compare = [("sp-knn", "random"), ("random", "random"), ("absent", "random")]
    result = evaluate_protocol(graph, features, "cold-start", seeds=2, compare=compare)
    pairs = {(c["method"], c["reference"]): c for c in result["comparisons"]}
    assert set(pairs) == {("sp-knn", "random"), ("random", "random")}, "a pair naming an absent ranker is skipped"
    assert all(pairs[("random", "random")][m] == {"mean": 0.0, "low": 0.0, "high": 0.0} for m in ("NDCG@10", "Recall@10", "MRR"))
    knn = pairs[("sp-knn", "random")]
    assert knn["NDCG@10"]["low"] > 0 and knn["NDCG@10"]["low"] <= knn["NDCG@10"]["mean"] <= knn["NDCG@10"]["high"]
    assert "sp-knn minus random (paired): NDCG@10 +" in format_protocol_table(result)


def test_bootstrap_interval() -> None:
    values = np.random.default_rng(1).random(200)
    mean, low, high = bootstrap_interval(values, seed=3)
    assert mean == pytest.approx(values.mean()) and low < mean < high
    assert high - low < 0.2
    assert bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert bootstrap_interval(values, seed=3) == (mean, low, high)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])


def test_per_query_metrics_average_to_ranking_metrics() -> None:
    scores = np.random.default_rng(2).random((6, 30))
    relevant = [{1, 2}, set(), {29}, {0, 5, 7}, {3}, set()]
    per_query = per_query_metrics(scores, relevant)
    assert [m is None for m in per_query] == [False, True, False, False, False, True]
    overall = ranking_metrics(scores, relevant)
    assert overall["NDCG@10"] == pytest.approx(np.mean([m["NDCG@10"] for m in per_query if m]))


def test_sp_knn_ranks_the_clips_of_a_same_worded_training_selling_point_first(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    task = cold_start_task(graph, features, seed=0)
    approved = task.graph.judgements("approved")
    query, twin = task.split.test[0], next(t for t in task.split.train if len(approved.get(t, ())) >= 2)
    sp_index = task.graph.index("SellingPoint")
    worded_alike = {**task.features, "SellingPoint": task.features["SellingPoint"].copy()}
    worded_alike["SellingPoint"][sp_index[query]] = task.features["SellingPoint"][sp_index[twin]]  # the query says what `twin` says
    scores = sp_knn_scores(task.graph, worded_alike, task.split, [query])[0]
    clips = task.graph.ids("CreativeClip")
    assert {clips[i] for i in np.argsort(-scores, kind="stable")[: len(approved[twin])]} == approved[twin]


def test_structure_rankers_break_ties_at_random(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    task = link_completion_task(graph, features, seed=0)
    sp = task.split.test[:1]
    a = same_product_scores(task.graph, task.features, task.split, sp, seed=0)
    b = same_product_scores(task.graph, task.features, task.split, sp, seed=1)
    product = graph.product_of_selling_point[sp[0]]
    mine = [i for i, c in enumerate(task.graph.ids("CreativeClip")) if graph.product_of_clip[c] == product]
    assert set(np.argsort(-a[0])[: len(mine)]) == set(mine)
    assert list(np.argsort(-a[0])[: len(mine)]) != list(np.argsort(-b[0])[: len(mine)])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"protocol": "leave-one-out"}, BadInputError, "unknown protocol"),
        ({"seeds": 0}, BadInputError, "seeds must be at least 1"),
        ({"fraction": 1.5}, BadInputError, "between 0 and 1"),
        ({"protocol": "link-completion", "fraction": 0.0}, BadInputError, "between 0 and 1"),
    ],
)
def test_bad_options_are_refused(graph: AckbGraph, features: dict[str, np.ndarray], kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        evaluate_protocol(graph, features, **kwargs)


def test_a_ranker_of_the_wrong_shape_is_refused(graph: AckbGraph, features: dict[str, np.ndarray]) -> None:
    task = cold_start_task(graph, features, seed=0)
    with pytest.raises(ValueError, match="expected"):
        run_task(task, {"bad": lambda g, f, s, ids: np.zeros((len(ids), 3))})


def test_cli_eval_on_a_directory(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "KDCVG_DATA": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(repo)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "cli.main", *a], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run("kb", "make-eval", str(tmp_path / "ackb"), "--products", "10").returncode == 0
    result = run("retrieval", "eval", str(tmp_path / "ackb"), "--seeds", "2", "--no-learned", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["protocol"] == "cold-start" and data["seeds"] == [0, 1] and data["best_baseline"]
    table = run("retrieval", "eval", str(tmp_path / "ackb"), "--protocol", "link-completion", "--seeds", "1", "--no-learned")
    assert table.returncode == 0 and "Leak check" in table.stdout
    bad = run("retrieval", "eval", str(tmp_path / "ackb"), "--protocol", "nope", "--no-learned")
    assert bad.returncode == 2 and "unknown protocol" in bad.stderr
