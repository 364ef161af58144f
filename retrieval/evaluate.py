"""Offline evaluation of selling point -> clip retrieval: protocols that cannot be gamed, and the older single split.

Rankers (baselines here; the GAT and GAT+RL rankers are passed in by callers) are callables

    ranker(graph, features, split, sp_ids) -> (len(sp_ids), n_clips) scores, clips in graph order

that may learn from `split.train` only. `evaluate_protocol` runs a protocol over several seeds; each
seed builds a `Task`: a VIEW of the graph that hides what is scored, the view's features, the split
(queries = `split.test`), the relevant clips and the candidate clips:

- cold-start (`cold_start_task`): whole products held out; relevant = approved clips of the selling
  points related by approved SAME_CLAIM in the full graph;
- link completion (`link_completion_task`): every link of some clips hidden, so a hidden clip and
  unlinked B-roll look alike; candidates = the query's product's clips without a visible link.

Every table holds chance, structure-only (a leak shows as one of them beating random), text and
selling-point kNN baselines; per metric mean, std over seeds and a 95 % percentile-bootstrap
interval over the pooled (seed, query) values, and paired per-query differences against the best
baseline. `evaluate` / `evaluate_directory` keep the older protocol (one split by selling point,
ranking every clip), whose "not linked in training" cue leaks.
"""

from __future__ import annotations

import functools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.graph import AckbGraph, graph_from_directory
from kdcvg.errors import BadInputError
from retrieval.baselines import (
    Ranker,
    bm25_scores,
    popularity_scores,
    random_scores,
    same_category_scores,
    same_product_scores,
    sentence_cosine_scores,
    sp_knn_scores,
)
from retrieval.features import TextEncoder, build_features
from retrieval.metrics import DEFAULT_KS, NDCG_K, bootstrap_interval, per_query_metrics, ranking_metrics
from retrieval.split import Split, split_by_selling_point


class NothingToEvaluateError(BadInputError):
    """The ACKB (or split) has no held-out selling point with an approved clip."""


def baseline_rankers(*, seed: int = 0) -> dict[str, Ranker]:
    """The four baselines, in table order: random (seeded), popularity, BM25, sentence cosine."""
    return {
        "random": functools.partial(random_scores, seed=seed),
        "popularity": popularity_scores,
        "bm25": bm25_scores,
        "sentence-cosine": sentence_cosine_scores,
    }


def relevant_clips(graph: AckbGraph, sp_ids: Sequence[str]) -> list[set[int]]:
    """Per selling point, the clip indices (graph order) of its approved ILLUSTRATES links."""
    approved = graph.judgements("approved")
    clip_index = graph.index("CreativeClip")
    return [{clip_index[c] for c in approved.get(sp, ()) if c in clip_index} for sp in sp_ids]


def evaluate(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    rankers: Mapping[str, Ranker],
    ks: Sequence[int] = DEFAULT_KS,
) -> list[dict[str, Any]]:
    """One row per ranker (in `rankers` order): method, queries, Recall@k for each k, NDCG@10, MRR.

    Queries are the TEST selling points with at least one approved clip; relevance is binary.
    Raises NothingToEvaluateError when there is none, ValueError when a ranker returns the wrong shape.
    """
    relevant = relevant_clips(graph, split.test)
    if not any(relevant):
        raise NothingToEvaluateError(
            f"nothing to evaluate: none of the {len(split.test)} test selling points has an approved ILLUSTRATES link"
            + (" (the ACKB has no approved links at all)" if not graph.judgements("approved") else "")
        )
    n_clips = len(graph.nodes["CreativeClip"])
    rows = []
    for name, ranker in rankers.items():
        scores = np.asarray(ranker(graph, features, split, list(split.test)))
        if scores.shape != (len(split.test), n_clips):
            raise ValueError(
                f"ranker {name!r} returned scores of shape {scores.shape}, expected {(len(split.test), n_clips)} "
                "(test selling points, all clips in graph order)"
            )
        metrics = ranking_metrics(scores, relevant, ks)
        row: dict[str, Any] = {"method": name, "queries": metrics["queries"]}
        row.update({f"Recall@{k}": metrics[f"Recall@{k}"] for k in ks})
        row[f"NDCG@{NDCG_K}"] = metrics[f"NDCG@{NDCG_K}"]
        row["MRR"] = metrics["MRR"]
        rows.append(row)
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of `evaluate` rows: columns in row order, floats to 3 decimals."""
    if not rows:
        return ""
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.3f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if c == "method" else "---:" for c in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def evaluate_directory(
    directory: Path,
    extra_rankers: Mapping[str, Ranker] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: Path | None = None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    encoder: TextEncoder | None = None,
) -> list[dict[str, Any]]:
    """Read an ACKB interchange directory, build features, split by selling point, evaluate.

    Ranks with the baselines (random seeded by `seed`) and then `extra_rankers` (e.g. the GAT and
    GAT+RL rankers), whose names must differ from the baselines'. Features are cached under
    `cache_dir` when given. Raises NothingToEvaluateError before any encoding when the split holds
    no test selling point with an approved clip.
    """
    return evaluate_graph(
        graph_from_directory(Path(directory)),
        extra_rankers,
        test_fraction,
        seed,
        cache_dir,
        ks=ks,
        encoder=encoder,
        source=str(directory),
    )


def evaluate_graph(
    graph: AckbGraph,
    extra_rankers: Mapping[str, Ranker] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: Path | None = None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    encoder: TextEncoder | None = None,
    source: str = "the graph",
) -> list[dict[str, Any]]:
    """As `evaluate_directory`, for a graph already in memory (e.g. read from the store)."""
    directory = source
    rankers: dict[str, Ranker] = baseline_rankers(seed=seed)
    for name, ranker in (extra_rankers or {}).items():
        if name in rankers:
            raise ValueError(f"extra ranker name {name!r} is already a baseline's; pick another")
        if not callable(ranker):
            raise TypeError(f"extra ranker {name!r} is not callable: {type(ranker).__name__}")
        rankers[name] = ranker
    split = split_by_selling_point(graph, test_fraction=test_fraction, seed=seed)
    if not any(relevant_clips(graph, split.test)):
        approved = sum(len(v) for v in graph.judgements("approved").values())
        raise NothingToEvaluateError(
            f"nothing to evaluate in {directory}: {approved} approved ILLUSTRATES links; a product needs at least "
            "two selling points with approved clips so one can be held out"
        )
    features = build_features(graph, encoder or TextEncoder(), Path(cache_dir) if cache_dir is not None else None)
    return evaluate(graph, features, split, rankers, ks)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m retrieval.evaluate DIR [--cache-dir D] [--test-fraction F] [--seed S]`: print the table."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(
        format_table(
            evaluate_directory(args.directory, test_fraction=args.test_fraction, seed=args.seed, cache_dir=args.cache_dir)
        )
    )


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------------------------------------
# Protocols that cannot be gamed: several seeds, views of the graph that hide what is scored,
# structure-only rankers that show a leak, and intervals.

PROTOCOLS = ("cold-start", "link-completion")
DEFAULT_SEEDS = 5
DEFAULT_FRACTION = {"cold-start": 0.2, "link-completion": 0.3}
TABLE_METRICS = ("NDCG@10", "Recall@10", "MRR")
STRUCTURE_RANKERS = ("same-product", "same-product-unlinked", "same-category")
INTERVAL = "95 % percentile bootstrap over the pooled (seed, query) values, 2000 resamples; std is over the seeds' means"
RankerFactory = Callable[[int], Mapping[str, Ranker]]


@dataclass(frozen=True)
class Task:
    """One seed of a protocol: the graph view the rankers see, its features, the split, and the labels.

    `split.test` are the queries; `relevant[q]` are clip indices of `graph` (the view); `candidates`
    is a (queries, clips) mask of the clips that may be ranked (None: all clips of the view).
    """

    protocol: str
    seed: int
    graph: AckbGraph
    features: dict[str, np.ndarray]
    split: Split
    relevant: list[set[int]]
    candidates: np.ndarray | None
    hidden: dict[str, list[str]]


def view_features(graph: AckbGraph, features: dict[str, np.ndarray], view: AckbGraph) -> dict[str, np.ndarray]:
    """The rows of `features` (computed for `graph`) that belong to `view`'s nodes, in `view`'s order.

    Keys are a label or `Label.something`; every array has one row per node of its label.
    """
    result = {}
    for key, array in features.items():
        label = key.split(".")[0]
        index = graph.index(label)
        result[key] = np.asarray(array)[[index[node] for node in view.ids(label)]]
    return result


def _view(graph: AckbGraph, drop_clips: set[str], drop_links: set[tuple[str, str]], drop_claims_of: set[str]) -> AckbGraph:
    """A copy of `graph` without the clips `drop_clips` (and their relationships), the ILLUSTRATES pairs
    `drop_links` and the SAME_CLAIM relations touching `drop_claims_of`."""
    nodes = {
        label: [row for row in rows if label != "CreativeClip" or row["id"] not in drop_clips]
        for label, rows in graph.nodes.items()
    }
    relationships = {}
    for type_, rows in graph.relationships.items():
        if type_ in ("FEATURES", "HAS_MOTION"):
            rows = [row for row in rows if row["from"] not in drop_clips]
        elif type_ == "ILLUSTRATES":
            rows = [row for row in rows if row["from"] not in drop_clips and (row["from"], row["to"]) not in drop_links]
        elif type_ == "SAME_CLAIM":
            rows = [row for row in rows if row["from"] not in drop_claims_of and row["to"] not in drop_claims_of]
        relationships[type_] = rows
    return AckbGraph(nodes, relationships, graph.media_root)


def _same_claims(graph: AckbGraph) -> dict[str, set[str]]:
    """selling point -> the selling points joined to it by an approved SAME_CLAIM (both directions)."""
    related: dict[str, set[str]] = defaultdict(set)
    for row in graph.relationships["SAME_CLAIM"]:
        if row.get("status") == "approved":
            related[row["from"]].add(row["to"])
            related[row["to"]].add(row["from"])
    return related


def cold_start_task(
    graph: AckbGraph, features: dict[str, np.ndarray], *, seed: int, fraction: float = DEFAULT_FRACTION["cold-start"]
) -> Task:
    """Hold out `fraction` of the products: their clips, their selling points' links and relations leave the view.

    Queries are the held-out products' selling points (still nodes with their text and product);
    candidates are the clips of the other products; a query's relevant clips are the approved clips
    of the selling points related to it by an approved SAME_CLAIM in the FULL graph (labels only).
    """
    if not 0 < fraction < 1:
        raise BadInputError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    related = _same_claims(graph)
    if not related:
        raise NothingToEvaluateError(
            "the cold-start protocol labels held-out selling points through approved SAME_CLAIM relations and this ACKB has none: "
            "judge some (or use --protocol link-completion)"
        )
    products = graph.ids("Product")
    if len(products) < 2:
        raise NothingToEvaluateError(f"the cold-start protocol needs at least 2 products, the ACKB has {len(products)}")
    held = set(random.Random(seed).sample(products, min(len(products) - 1, max(1, round(len(products) * fraction)))))
    held_sps = {sp for sp, product in graph.product_of_selling_point.items() if product in held}
    held_clips = {clip for clip, product in graph.product_of_clip.items() if product in held}
    drop_links = {(row["from"], row["to"]) for row in graph.relationships["ILLUSTRATES"] if row["to"] in held_sps}
    view = _view(graph, held_clips, drop_links, held_sps)
    approved = graph.judgements("approved")
    clip_index = view.index("CreativeClip")
    test = [sp for sp in view.ids("SellingPoint") if sp in held_sps]
    relevant = [
        {clip_index[c] for other in related.get(sp, ()) for c in approved.get(other, ()) if c in clip_index} for sp in test
    ]
    split = Split([sp for sp in view.ids("SellingPoint") if sp not in held_sps], test)
    hidden = {"products": sorted(held), "clips": sorted(held_clips)}
    return Task("cold-start", seed, view, view_features(graph, features, view), split, relevant, None, hidden)


def link_completion_task(
    graph: AckbGraph, features: dict[str, np.ndarray], *, seed: int, fraction: float = DEFAULT_FRACTION["link-completion"]
) -> Task:
    """Hide every ILLUSTRATES link (any status) of `fraction` of each product's clips with an approved link.

    A hidden clip then looks like the product's B-roll (no link at all), so "unlinked in training" is
    no cue. Queries: selling points with a hidden approved clip; candidates: the query's product's
    clips without any visible link (hidden clips and unlinked B-roll alike); relevant: its hidden
    approved clips. Every selling point keeps its visible links for training.
    """
    if not 0 < fraction < 1:
        raise BadInputError(f"the hidden fraction must be between 0 and 1, got {fraction}")
    approved_by_clip = graph.judgements_by_clip["approved"]
    by_product: dict[str, list[str]] = defaultdict(list)
    for clip in graph.ids("CreativeClip"):
        if approved_by_clip.get(clip) and clip in graph.product_of_clip:
            by_product[graph.product_of_clip[clip]].append(clip)
    rng = random.Random(seed)
    hidden_clips: set[str] = set()
    for product in sorted(by_product):
        clips = by_product[product]
        hidden_clips.update(rng.sample(clips, max(1, round(len(clips) * fraction))))
    drop_links = {(row["from"], row["to"]) for row in graph.relationships["ILLUSTRATES"] if row["from"] in hidden_clips}
    view = _view(graph, set(), drop_links, set())
    clip_index = view.index("CreativeClip")
    hidden_approved: dict[str, set[int]] = defaultdict(set)
    for row in graph.relationships["ILLUSTRATES"]:
        if row["from"] in hidden_clips and row.get("status") == "approved":
            hidden_approved[row["to"]].add(clip_index[row["from"]])
    test = [sp for sp in view.ids("SellingPoint") if hidden_approved.get(sp)]
    if not test:
        raise NothingToEvaluateError("the link-completion protocol needs approved ILLUSTRATES links and this ACKB has none")
    linked = np.zeros(len(clip_index), dtype=bool)
    for row in view.relationships["ILLUSTRATES"]:
        linked[clip_index[row["from"]]] = True
    product_of_clip = np.array([view.product_of_clip.get(c, "") for c in view.ids("CreativeClip")], dtype=object)
    candidates = np.stack([(product_of_clip == view.product_of_selling_point.get(sp)) & ~linked for sp in test])
    split = Split(view.ids("SellingPoint"), test)
    return Task(
        "link-completion",
        seed,
        view,
        view_features(graph, features, view),
        split,
        [hidden_approved[sp] for sp in test],
        candidates,
        {"clips": sorted(hidden_clips)},
    )


TASKS: dict[str, Callable[..., Task]] = {"cold-start": cold_start_task, "link-completion": link_completion_task}


def protocol_baselines(seed: int = 0) -> dict[str, Ranker]:
    """The baselines of every protocol table, in table order: chance, structure only, text only, selling-point kNN."""
    return {
        "random": functools.partial(random_scores, seed=seed),
        "popularity": popularity_scores,
        "same-product": functools.partial(same_product_scores, seed=seed),
        "same-product-unlinked": functools.partial(same_product_scores, seed=seed, unlinked_first=True),
        "same-category": functools.partial(same_category_scores, seed=seed),
        "bm25": bm25_scores,
        "sentence-cosine": sentence_cosine_scores,
        "sp-knn": sp_knn_scores,
    }


def run_task(
    task: Task, rankers: Mapping[str, Ranker], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, list[dict[str, float] | None]]:
    """Per ranker, each query's metrics (None: no relevant clip) with non-candidate clips ranked last."""
    n_clips = len(task.graph.nodes["CreativeClip"])
    result = {}
    for name, ranker in rankers.items():
        scores = np.asarray(ranker(task.graph, task.features, task.split, list(task.split.test)), dtype=np.float64)
        if scores.shape != (len(task.split.test), n_clips):
            raise ValueError(
                f"ranker {name!r} returned scores of shape {scores.shape}, expected {(len(task.split.test), n_clips)} "
                "(queries, all clips of the graph view in graph order)"
            )
        if task.candidates is not None:
            scores = np.where(task.candidates, scores, -np.inf)
        result[name] = per_query_metrics(scores, task.relevant, ks)
    return result


def _summary(per_seed: list[list[dict[str, float] | None]], metric: str, seed: int) -> dict[str, float]:
    pooled = [m[metric] for run in per_seed for m in run if m is not None]
    seed_means = [
        float(np.mean([m[metric] for m in run if m is not None])) for run in per_seed if any(m is not None for m in run)
    ]
    mean, low, high = bootstrap_interval(pooled, seed=seed)
    return {"mean": mean, "std": float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else 0.0, "low": low, "high": high}


def _paired(
    a: list[list[dict[str, float] | None]], b: list[list[dict[str, float] | None]], metric: str, seed: int
) -> dict[str, float]:
    differences = [
        x[metric] - y[metric] for run_a, run_b in zip(a, b) for x, y in zip(run_a, run_b) if x is not None and y is not None
    ]
    mean, low, high = bootstrap_interval(differences, seed=seed)
    return {"mean": mean, "low": low, "high": high}


def evaluate_protocol(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    protocol: str = "cold-start",
    *,
    seeds: int = DEFAULT_SEEDS,
    first_seed: int = 0,
    fraction: float | None = None,
    extra_rankers: RankerFactory | None = None,
    compare: Sequence[tuple[str, str]] = (),
    ks: Sequence[int] = DEFAULT_KS,
    metrics: Sequence[str] = TABLE_METRICS,
) -> dict[str, Any]:
    """Run `protocol` for `seeds` seeds (each varies the split AND the rankers' seed) and summarise every ranker.

    `extra_rankers(seed)` gives the learned rankers for a seed (e.g. `retrieval.rankers.learned_rankers(seed=seed)`);
    they see only the seed's graph view. Per metric: mean, std over seeds, 95 % interval; and the
    paired difference (per query, pooled over seeds) against the best baseline by NDCG@10.
    `compare`: (ranker, reference) pairs whose paired differences are also given on every metric
    (e.g. the feedback-updated model against the model before feedback); pairs naming an absent ranker are skipped.
    """
    if protocol not in TASKS:
        raise BadInputError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if seeds < 1:
        raise BadInputError(f"seeds must be at least 1, got {seeds}")
    runs: dict[str, list[list[dict[str, float] | None]]] = defaultdict(list)
    kinds: dict[str, str] = {}
    queries = excluded = candidates = 0
    for seed in range(first_seed, first_seed + seeds):
        task = TASKS[protocol](graph, features, seed=seed, **({} if fraction is None else {"fraction": fraction}))
        rankers: dict[str, Ranker] = dict(protocol_baselines(seed))
        kinds.update({name: "baseline" for name in rankers})
        for name, ranker in (extra_rankers(seed) if extra_rankers else {}).items():
            if name in rankers:
                raise ValueError(f"extra ranker name {name!r} is already a baseline's; pick another")
            rankers[name] = ranker
            kinds[name] = "learned"
        for name, per_query in run_task(task, rankers, ks).items():
            runs[name].append(per_query)
        scored = [q for q, items in enumerate(task.relevant) if items]
        queries += len(scored)
        excluded += len(task.relevant) - len(scored)
        candidates += (
            int(task.candidates[scored].sum())
            if task.candidates is not None
            else len(scored) * len(task.graph.nodes["CreativeClip"])
        )
    if not queries:
        raise NothingToEvaluateError(
            f"nothing to evaluate: no query of the {protocol} protocol has a relevant clip in {seeds} seed(s)"
        )
    best = max((n for n in runs if kinds[n] == "baseline"), key=lambda n: _summary(runs[n], "NDCG@10", first_seed)["mean"])
    rows = []
    for name, per_seed in runs.items():
        row: dict[str, Any] = {
            "method": name,
            "kind": kinds[name],
            "queries": sum(m is not None for run in per_seed for m in run),
        }
        row.update({metric: _summary(per_seed, metric, first_seed) for metric in metrics})
        row["vs_best"] = {metric: _paired(per_seed, runs[best], metric, first_seed) for metric in metrics}
        rows.append(row)
    leak = {name: _paired(runs[name], runs["random"], "NDCG@10", first_seed) for name in STRUCTURE_RANKERS}
    comparisons = [
        {"method": a, "reference": b, **{metric: _paired(runs[a], runs[b], metric, first_seed) for metric in metrics}}
        for a, b in compare
        if a in runs and b in runs
    ]
    return {
        "protocol": protocol,
        "seeds": list(range(first_seed, first_seed + seeds)),
        "queries": queries,
        "excluded_queries": excluded,
        "mean_candidates": candidates / queries,
        "interval": INTERVAL,
        "best_baseline": best,
        "rows": rows,
        "leak_check": {"metric": "NDCG@10", "structure_minus_random": leak},
        "comparisons": comparisons,
    }


def format_protocol_table(result: Mapping[str, Any]) -> str:
    """A Markdown table of `evaluate_protocol`'s result: mean ± std [95 % interval] per metric, and Δ vs the best baseline."""
    metrics = [m for m in TABLE_METRICS if m in result["rows"][0]]
    best = result["best_baseline"]
    header = ["method", *metrics, *(f"Δ{m} vs {best}" for m in metrics[:1]), "queries"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in result["rows"]:
        cells = [row["method"] + (" *" if row["kind"] == "learned" else "")]
        cells += [f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f} [{row[m]['low']:.3f}, {row[m]['high']:.3f}]" for m in metrics]
        diff = row["vs_best"][metrics[0]]
        cells.append(f"{diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]")
        cells.append(str(row["queries"]))
        lines.append("| " + " | ".join(cells) + " |")
    leak = result["leak_check"]["structure_minus_random"]
    notes = [
        (
            f"{result['protocol']}: seeds {result['seeds'][0]}..{result['seeds'][-1]}, {result['queries']} queries pooled "
            f"({result['excluded_queries']} without a relevant clip left out), {result['mean_candidates']:.1f} candidate clips per query; "
            "* learned."
        ),
        f"Intervals: {result['interval']}. Δ: paired per query, pooled over seeds.",
        "Leak check (structure only minus random, NDCG@10): "
        + ", ".join(f"{name} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" for name, d in leak.items()),
    ]
    for pair in result.get("comparisons", []):
        notes.append(
            f"{pair['method']} minus {pair['reference']} (paired): "
            + ", ".join(f"{m} {pair[m]['mean']:+.3f} [{pair[m]['low']:+.3f}, {pair[m]['high']:+.3f}]" for m in metrics)
        )
    if result.get("learned_runs"):
        notes.append("Feedback stage kept, per seed: " + ", ".join(f"{d['seed']} {d['kept']}" for d in result["learned_runs"]))
        notes.append(
            "Text/vote shares of the +text rows, chosen per seed: "
            + ", ".join(f"{d['seed']} {d['text_mix']:g}/{d.get('vote_mix', 0.0):g}" for d in result["learned_runs"])
        )
    return "\n".join(lines + [""] + notes)


def evaluate_protocol_directory(
    directory: Path,
    protocol: str = "cold-start",
    *,
    cache_dir: Path | None = None,
    encoder: TextEncoder | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`evaluate_protocol` on an ACKB interchange directory (features built once for the whole graph, cached under `cache_dir`)."""
    graph = graph_from_directory(Path(directory))
    features = build_features(graph, encoder or TextEncoder(), Path(cache_dir) if cache_dir is not None else None)
    return evaluate_protocol(graph, features, protocol, **options)
