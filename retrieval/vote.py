"""The judged-neighbour vote: what the clips approved for the nearest labelled selling points look like.

Why: a selling point new to the ACKB makes, most often, a claim that annotators have already judged
for another product. Its K nearest labelled selling points (sentence cosine of their texts; a
selling point is labelled when it has approved clips) weigh in by a softmax of their similarity
(temperature TEMPERATURE), and each contributes the mean text embedding of its approved clips (its
PROTOTYPE). The result is one vector in the clip-text space, so `clip text · vote` ranks clips the
way `retrieval.baselines.sp_knn_scores` does (which takes each neighbour's best-matching clip
instead of the mean) while staying an inner product, which the clip index can serve.
SAR adds `vote_mix` × this score to its served score (`retrieval.sar.SarRetriever`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from kb.graph import AckbGraph

K = 10  # neighbours per query (as the kNN baseline)
TEMPERATURE = 0.05  # softmax temperature over the neighbours' cosines (as the kNN baseline)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (all-zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def labelled_prototypes(
    graph: AckbGraph, features: dict[str, np.ndarray], selling_points: Iterable[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(unit texts (L, d), unit prototypes (L, d)) of the selling points among `selling_points` (None: all) that have approved clips."""
    approved = graph.judgements("approved")
    clip_index, sp_index = graph.index("CreativeClip"), graph.index("SellingPoint")
    allowed = set(sp_index) if selling_points is None else set(selling_points)
    sp_text, clip_text = unit_rows(features["SellingPoint"]), unit_rows(features["CreativeClip"])
    rows, prototypes = [], []
    for sp in sorted(allowed & set(approved), key=sp_index.get):
        if sp not in sp_index:
            continue
        clips = [clip_index[c] for c in approved[sp] if c in clip_index]
        if clips:
            rows.append(sp_index[sp])
            prototypes.append(clip_text[clips].mean(axis=0))
    if not rows:
        width = sp_text.shape[1]
        return np.zeros((0, width)), np.zeros((0, width))
    return sp_text[rows], unit_rows(np.stack(prototypes))


def vote_vectors(queries: np.ndarray, texts: np.ndarray, prototypes: np.ndarray, *, k: int = K, temperature: float = TEMPERATURE) -> np.ndarray:
    """(Q, d) votes of text queries (Q, d): the softmax-weighted prototypes of each query's k nearest labelled texts (zero when none)."""
    queries = unit_rows(np.atleast_2d(queries))
    votes = np.zeros((queries.shape[0], prototypes.shape[1] if prototypes.size else queries.shape[1]))
    if not len(texts):
        return votes
    similarity = queries @ texts.T
    for q in range(queries.shape[0]):
        top = np.argsort(-similarity[q], kind="stable")[:k]
        weights = np.exp((similarity[q, top] - similarity[q, top].max()) / temperature)
        votes[q] = (weights / weights.sum()) @ prototypes[top]
    return votes


def text_queries(texts: np.ndarray, text_mix: float, vote_mix: float, labelled_texts: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """(Q, d) the text part of SAR's queries for text embeddings (Q, d): text_mix × text + vote_mix × vote."""
    texts = np.atleast_2d(np.asarray(texts, dtype=np.float64))
    queries = text_mix * texts
    if vote_mix:
        queries = queries + vote_mix * vote_vectors(texts, labelled_texts, prototypes)
    return queries
