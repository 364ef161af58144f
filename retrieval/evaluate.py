"""Offline evaluation of selling point -> clip retrieval on a held-out split of an ACKB.

The task: for each held-out (TEST) selling point, rank all clips of the graph; its relevant clips
are those with an approved ILLUSTRATES link to it. Rankers (baselines here; the GAT and GAT+RL
rankers are passed in by callers) are callables

    ranker(graph, features, split, sp_ids) -> (len(sp_ids), n_clips) scores, clips in graph order

that may learn from `split.train` only. `evaluate` scores every ranker with
`retrieval.metrics.ranking_metrics`; `evaluate_directory` does it all from an interchange directory.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kb.graph import AckbGraph, graph_from_directory
from kdcvg.errors import BadInputError
from retrieval.baselines import Ranker, bm25_scores, popularity_scores, random_scores, sentence_cosine_scores
from retrieval.features import TextEncoder, build_features
from retrieval.metrics import DEFAULT_KS, NDCG_K, ranking_metrics
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
            raise ValueError(f"ranker {name!r} returned scores of shape {scores.shape}, expected {(len(split.test), n_clips)} "
                             "(test selling points, all clips in graph order)")
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
        graph_from_directory(Path(directory)), extra_rankers, test_fraction, seed, cache_dir, ks=ks, encoder=encoder, source=str(directory)
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
    print(format_table(evaluate_directory(args.directory, test_fraction=args.test_fraction, seed=args.seed, cache_dir=args.cache_dir)))


if __name__ == "__main__":
    main()
