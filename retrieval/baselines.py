"""Baseline rankers for selling point -> clip retrieval (what SAR's GAT and GAT+RL must beat).

Every ranker has the same signature, the one `retrieval.evaluate` calls:

    ranker(graph, features, split, sp_ids) -> np.ndarray of shape (len(sp_ids), n_clips)

scores over ALL clips of `graph` in graph order (`graph.ids("CreativeClip")`), higher = better,
for the selling points `sp_ids` (usually the held-out `split.test`). `features` is what
`retrieval.features.build_features` returns. A ranker may learn only from `split.train`
selling points' judgements; the held-out ones' ILLUSTRATES links are what it is scored on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np

from kb.graph import AckbGraph
from retrieval.features import node_text
from retrieval.split import Split
from retrieval.vote import TEMPERATURE, K, unit_rows

Ranker: TypeAlias = Callable[[AckbGraph, dict[str, np.ndarray], Split, Sequence[str]], np.ndarray]


def _sp_rows(graph: AckbGraph, sp_ids: Sequence[str]) -> list[int]:
    index = graph.index("SellingPoint")
    missing = [sp for sp in sp_ids if sp not in index]
    if missing:
        raise ValueError(f"selling point(s) not in the graph: {', '.join(map(repr, missing[:5]))}")
    return [index[sp] for sp in sp_ids]


def random_scores(
    graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str], *, seed: int = 0
) -> np.ndarray:
    """Uniform random scores in [0, 1) from `seed`: the chance level (Recall@k ≈ k / n_clips).

    Uses no knowledge at all; the same seed, graph and queries give the same scores.
    """
    _sp_rows(graph, sp_ids)
    rng = np.random.default_rng(seed)
    return rng.random((len(sp_ids), len(graph.nodes["CreativeClip"])))


def popularity_scores(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str]) -> np.ndarray:
    """Each clip's number of approved ILLUSTRATES links to TRAINING selling points, for every query.

    Measures how far "show the clips that were approved most often" gets, ignoring the query;
    held-out selling points' links are never counted. Equal counts stay tied (the metrics then
    order them by clip index).
    """
    _sp_rows(graph, sp_ids)
    clip_index = graph.index("CreativeClip")
    train = set(split.train)
    counts = np.zeros(len(clip_index), dtype=np.float64)
    for sp, clips in graph.judgements("approved").items():
        if sp in train:
            for clip in clips:
                if clip in clip_index:
                    counts[clip_index[clip]] += 1
    return np.tile(counts, (len(sp_ids), 1))


def _bm25_tokens(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, lower=True, stopwords="english", return_ids=False, show_progress=False)


def bm25_scores(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str]) -> np.ndarray:
    """Okapi BM25 (bm25s, Lucene variant, k1=1.5, b=0.75) of each clip's caption + tags for the selling point's text.

    Lexical matching only: a clip scores above zero when its caption or tags share (lower-cased,
    non-stopword) words with the selling point text, more for rarer words. Uses no judgements.
    A query with no indexed word scores every clip 0.
    """
    import bm25s

    rows = _sp_rows(graph, sp_ids)
    clips = graph.nodes["CreativeClip"]
    result = np.zeros((len(sp_ids), len(clips)), dtype=np.float64)
    if not clips or not rows:
        return result
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([node_text("CreativeClip", row) for row in clips], lower=True, stopwords="english", show_progress=False),
        show_progress=False,
    )
    vocab = retriever.vocab_dict
    queries = _bm25_tokens([node_text("SellingPoint", graph.nodes["SellingPoint"][r]) for r in rows])
    for q, tokens in enumerate(queries):
        known = [vocab[t] for t in tokens if t in vocab and t != ""]
        if known:
            result[q] = retriever.get_scores(known)
    return result


def sentence_cosine_scores(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str]) -> np.ndarray:
    """Cosine similarity of the selling point's sentence embedding and each clip's (caption + tags) embedding.

    Zero-shot semantic matching with the text encoder behind `features` (all-MiniLM-L6-v2 by
    default); uses no judgements. Embeddings are re-normalised, so any row scaling is ignored.
    """
    rows = _sp_rows(graph, sp_ids)
    sp = np.asarray(features["SellingPoint"], dtype=np.float64)
    clip = np.asarray(features["CreativeClip"], dtype=np.float64)
    if sp.shape[0] != len(graph.nodes["SellingPoint"]) or clip.shape[0] != len(graph.nodes["CreativeClip"]):
        raise ValueError(
            f"features do not match the graph: {sp.shape[0]} selling point and {clip.shape[0]} clip rows for "
            f"{len(graph.nodes['SellingPoint'])} and {len(graph.nodes['CreativeClip'])} nodes"
        )
    sp = sp[rows]
    sp /= np.maximum(np.linalg.norm(sp, axis=1, keepdims=True), 1e-12)
    clip = clip / np.maximum(np.linalg.norm(clip, axis=1, keepdims=True), 1e-12)
    return sp @ clip.T


def _tie_breaks(rows: int, clips: int, seed: int) -> np.ndarray:
    """Seeded noise in [0, 0.5) that orders tied clips at random instead of by clip index."""
    return np.random.default_rng(seed).random((rows, clips)) * 0.5


def _linked_in_training(graph: AckbGraph, split: Split) -> np.ndarray:
    """(clips,) bool: the clip has an ILLUSTRATES link (any status) to a training selling point of `graph`."""
    clip_index = graph.index("CreativeClip")
    train = set(split.train)
    linked = np.zeros(len(clip_index), dtype=bool)
    for row in graph.relationships["ILLUSTRATES"]:
        if row["to"] in train and row["from"] in clip_index:
            linked[clip_index[row["from"]]] = True
    return linked


def same_product_scores(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    sp_ids: Sequence[str],
    *,
    seed: int = 0,
    unlinked_first: bool = False,
) -> np.ndarray:
    """Structure only, no text: the query's product's clips first (those unlinked in training before the others
    when `unlinked_first`), ties in random order. What an evaluation that leaks through the graph rewards.
    """
    rows = _sp_rows(graph, sp_ids)
    clips = graph.ids("CreativeClip")
    product_of_clip = graph.product_of_clip
    result = _tie_breaks(len(rows), len(clips), seed)
    unlinked = ~_linked_in_training(graph, split) if unlinked_first else np.zeros(len(clips), dtype=bool)
    for q, sp in enumerate(sp_ids):
        product = graph.product_of_selling_point.get(sp)
        mine = np.array([product is not None and product_of_clip.get(c) == product for c in clips], dtype=bool)
        result[q] += 2.0 * mine + 1.0 * (mine & unlinked)
    return result


def same_category_scores(
    graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str], *, seed: int = 0
) -> np.ndarray:
    """Structure only, no text: clips of products in the query's product's category first, ties in random order."""
    rows = _sp_rows(graph, sp_ids)
    clips = graph.ids("CreativeClip")
    category = graph.category_of_product
    clip_category = [category.get(graph.product_of_clip.get(c, ""), None) for c in clips]
    result = _tie_breaks(len(rows), len(clips), seed)
    for q, sp in enumerate(sp_ids):
        mine = category.get(graph.product_of_selling_point.get(sp, ""))
        result[q] += np.array([mine is not None and c == mine for c in clip_category], dtype=np.float64)
    return result


def sp_knn_scores(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    sp_ids: Sequence[str],
    *,
    k: int = K,
    temperature: float = TEMPERATURE,
) -> np.ndarray:
    """Selling-point kNN: the clips approved for the training selling points whose text is nearest the query's.

    The k training selling points (with approved clips) most similar to the query (sentence cosine)
    get softmax weights (temperature `temperature`); a clip scores the weighted sum, over those
    neighbours, of its highest caption cosine to one of the neighbour's approved clips, so an approved
    clip itself counts fully and a clip that looks like one counts partly. The strongest
    non-learned rival: it uses the judgements of similar claims, as SAR should.
    """
    rows = _sp_rows(graph, sp_ids)
    sp = unit_rows(features["SellingPoint"])
    clip = unit_rows(features["CreativeClip"])
    result = np.zeros((len(rows), clip.shape[0]), dtype=np.float64)
    approved = graph.judgements("approved")
    clip_index, sp_index = graph.index("CreativeClip"), graph.index("SellingPoint")
    labelled = [
        (sp_index[s], sorted(clip_index[c] for c in approved[s] if c in clip_index))
        for s in split.train
        if approved.get(s) and s in sp_index
    ]
    labelled = [(row, clips) for row, clips in labelled if clips]
    if not labelled or not rows:
        return result
    neighbour_rows = np.array([row for row, _ in labelled])
    similarity = sp[rows] @ sp[neighbour_rows].T
    for q in range(len(rows)):
        top = np.argsort(-similarity[q], kind="stable")[:k]
        weights = np.exp((similarity[q, top] - similarity[q, top].max()) / temperature)
        weights /= weights.sum()
        for neighbour, weight in zip(top, weights):
            result[q] += weight * (clip @ clip[labelled[neighbour][1]].T).max(axis=1)
    return result
