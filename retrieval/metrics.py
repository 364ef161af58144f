"""Ranking metrics for selling-point -> clip retrieval, computed from a score matrix.

`scores[q, c]` is how well clip `c` illustrates query (selling point) `q`; higher is better.
Each query's clips are ranked by descending score; ties are broken deterministically by the
lower clip index first (a stable sort of the negated scores), so equal scores never depend on
the sort algorithm. Ranks are 1-based. For one query with relevant set R (binary relevance):

    Recall@k = |R ∩ top_k| / |R|
    DCG@k    = Σ_{i=1..k} rel_i / log2(i + 1)          (rel_i = 1 if the clip at rank i is in R)
    IDCG@k   = Σ_{i=1..min(|R|, k)} 1 / log2(i + 1)     (all relevant clips ranked first)
    NDCG@k   = DCG@k / IDCG@k
    RR       = 1 / rank of the first relevant clip       (MRR is its mean)

Every metric is the mean over the queries that have at least one relevant clip; queries with
none are excluded (they cannot be scored) and their number is reported as `excluded`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)
NDCG_K = 10


def rank_order(scores: np.ndarray) -> np.ndarray:
    """(queries, clips) clip indices per query, best first: descending score, ties by clip index."""
    scores = np.asarray(scores)
    return np.argsort(-scores, axis=1, kind="stable")


def _check(scores: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int], ndcg_k: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (queries, clips) array, got shape {scores.shape}")
    if len(relevant) != scores.shape[0]:
        raise ValueError(f"relevant has {len(relevant)} sets but scores has {scores.shape[0]} query rows (shape {scores.shape})")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; every clip needs a comparable score")
    for k in (*ks, ndcg_k):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"cut-offs must be positive integers, got {k!r}")
    n_clips = scores.shape[1]
    for q, items in enumerate(relevant):
        for item in items:
            if not 0 <= item < n_clips:
                raise ValueError(
                    f"relevant clip index {item} of query {q} is outside 0..{n_clips - 1} (scores has {n_clips} clip columns)"
                )
    return scores


def query_metrics(
    order: np.ndarray, relevant: set[int], ks: Sequence[int] = DEFAULT_KS, ndcg_k: int = NDCG_K
) -> dict[str, float]:
    """Recall@k for each k, NDCG@ndcg_k and reciprocal rank for one query's ranking `order`.

    `order` is the query's clip indices best first (see `rank_order`); `relevant` must be non-empty.
    """
    if not relevant:
        raise ValueError("a query needs at least one relevant clip to be scored")
    hits = np.isin(order, np.fromiter(relevant, dtype=np.int64, count=len(relevant)))
    result = {f"Recall@{k}": float(hits[:k].sum()) / len(relevant) for k in ks}
    discounts = 1.0 / np.log2(np.arange(2, ndcg_k + 2))
    dcg = float((hits[:ndcg_k] * discounts[: len(hits[:ndcg_k])]).sum())
    idcg = float(discounts[: min(len(relevant), ndcg_k)].sum())
    result[f"NDCG@{ndcg_k}"] = dcg / idcg
    first = int(np.argmax(hits))  # relevant is non-empty and in range, so some hit exists
    result["MRR"] = 1.0 / (first + 1)
    return result


def ranking_metrics(
    scores: np.ndarray,
    relevant: Sequence[Iterable[int]],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ndcg_k: int = NDCG_K,
) -> dict[str, float | int]:
    """Mean Recall@k (each k in `ks`), NDCG@ndcg_k and MRR over queries with a relevant clip.

    `scores` is (queries, clips); `relevant[q]` holds the clip column indices relevant to query q.
    Returns {"Recall@k": ..., "NDCG@10": ..., "MRR": ..., "queries": scored, "excluded": without
    relevant clips}. Raises ValueError on a shape mismatch, NaN scores, out-of-range clip indices,
    bad cut-offs, or when no query has a relevant clip (nothing to average).
    """
    ks = tuple(ks)
    try:
        sets = [{operator.index(item) for item in items} for items in relevant]
    except TypeError as exc:
        raise ValueError(f"relevant must hold sets of integer clip indices: {exc}") from None
    scores = _check(scores, sets, ks, ndcg_k)
    order = rank_order(scores)
    per_query = [query_metrics(order[q], items, ks, ndcg_k) for q, items in enumerate(sets) if items]
    excluded = len(relevant) - len(per_query)
    if not per_query:
        raise ValueError(f"no query has a relevant clip ({excluded} queries, all excluded): nothing to evaluate")
    result: dict[str, float | int] = {name: float(np.mean([m[name] for m in per_query])) for name in per_query[0]}
    result["queries"] = len(per_query)
    result["excluded"] = excluded
    return result


def per_query_metrics(
    scores: np.ndarray, relevant: Sequence[Iterable[int]], ks: Sequence[int] = DEFAULT_KS, *, ndcg_k: int = NDCG_K
) -> list[dict[str, float] | None]:
    """Each query's metrics (as `query_metrics`), None for a query without a relevant clip; same checks as `ranking_metrics`."""
    ks = tuple(ks)
    try:
        sets = [{operator.index(item) for item in items} for items in relevant]
    except TypeError as exc:
        raise ValueError(f"relevant must hold sets of integer clip indices: {exc}") from None
    order = rank_order(_check(scores, sets, ks, ndcg_k))
    return [query_metrics(order[q], items, ks, ndcg_k) if items else None for q, items in enumerate(sets)]


BOOTSTRAP_RESAMPLES = 2000
INTERVAL_LEVEL = 0.95


def bootstrap_interval(
    values: Sequence[float] | np.ndarray, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95 % percentile-bootstrap interval (resampling `values` with replacement).

    Deterministic for a seed. One value gives a zero-width interval; no value is an error.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"bootstrap needs a non-empty 1-D sequence of values, got shape {data.shape}")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - INTERVAL_LEVEL) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    mean = float(data.mean())
    return mean, float(min(low, mean)), float(max(high, mean))
