"""The judged-neighbour vote (retrieval.vote) on hand-made embeddings: who votes, with what, and how it ranks clips."""

from __future__ import annotations

import numpy as np

from kb.graph import AckbGraph
from retrieval.baselines import sp_knn_scores
from retrieval.split import Split
from retrieval.vote import labelled_prototypes, text_queries, vote_vectors

E = np.eye(4)


def _graph() -> tuple[AckbGraph, dict[str, np.ndarray]]:
    """Three selling points (texts along axes 0, 1, 2) and four clips (texts along axes 0..3).

    sp-a has approved clips c0 and c3, sp-b approved c1 and a rejected c2, sp-c nothing approved.
    """
    nodes = {
        "SellingPoint": [{"id": "sp-a", "text": "a"}, {"id": "sp-b", "text": "b"}, {"id": "sp-c", "text": "c"}],
        "CreativeClip": [{"id": f"c{i}", "caption": str(i)} for i in range(4)],
    }
    links = [("c0", "sp-a", "approved"), ("c3", "sp-a", "approved"), ("c1", "sp-b", "approved"), ("c2", "sp-b", "rejected")]
    relationships = {"ILLUSTRATES": [{"from": c, "to": s, "status": status} for c, s, status in links]}
    features = {"SellingPoint": E[:3].copy(), "CreativeClip": E.copy()}
    return AckbGraph(nodes, relationships), features


def test_only_approved_clips_of_allowed_selling_points_make_prototypes() -> None:
    graph, features = _graph()
    texts, prototypes = labelled_prototypes(graph, features, None)
    np.testing.assert_allclose(texts, E[:2])  # sp-c has no approved clip: not labelled
    np.testing.assert_allclose(prototypes, [(E[0] + E[3]) / np.sqrt(2), E[1]])  # the rejected c2 is not in sp-b's
    texts, prototypes = labelled_prototypes(graph, features, {"sp-b", "sp-c"})
    np.testing.assert_allclose(texts, E[1:2])
    np.testing.assert_allclose(prototypes, E[1:2])
    assert labelled_prototypes(graph, features, set())[0].shape == (0, 4)


def test_the_vote_follows_the_nearest_labelled_text() -> None:
    graph, features = _graph()
    texts, prototypes = labelled_prototypes(graph, features, None)
    near_a = np.array([0.9, 0.1, 0.0, 0.0])
    vote = vote_vectors(near_a, texts, prototypes)[0]
    scores = features["CreativeClip"] @ vote
    assert np.argsort(-scores)[:2].tolist() in ([0, 3], [3, 0]) and scores[1] < 0.01 and scores[2] == 0
    even = vote_vectors(np.array([1.0, 1.0, 0.0, 0.0]), texts, prototypes)[0]
    np.testing.assert_allclose(even, (prototypes[0] + prototypes[1]) / 2)  # equal similarity, equal weight
    np.testing.assert_array_equal(vote_vectors(near_a, texts[:0], prototypes[:0]), np.zeros((1, 4)))


def test_text_queries_mix_the_text_and_the_vote() -> None:
    graph, features = _graph()
    texts, prototypes = labelled_prototypes(graph, features, None)
    query = np.array([[0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_allclose(text_queries(query, 0.5, 0.0, texts, prototypes), 0.5 * query)
    mixed = text_queries(query, 0.5, 2.0, texts, prototypes)
    np.testing.assert_allclose(mixed, 0.5 * query + 2.0 * vote_vectors(query, texts, prototypes))


def test_the_vote_ranks_as_the_knn_baseline_when_every_neighbour_has_one_clip() -> None:
    """With one approved clip per labelled selling point, the mean and the best match are the same clip: same ranking."""
    graph, features = _graph()
    graph.relationships["ILLUSTRATES"] = [row for row in graph.relationships["ILLUSTRATES"] if row["from"] != "c3"]
    rng = np.random.default_rng(0)
    features = {"SellingPoint": E[:3] + 0.3 * rng.random((3, 4)), "CreativeClip": E + 0.3 * rng.random((4, 4))}
    knn = sp_knn_scores(graph, features, Split(["sp-a", "sp-b"], ["sp-c"]), ["sp-c"])
    texts, prototypes = labelled_prototypes(graph, features, {"sp-a", "sp-b"})
    clip_text = features["CreativeClip"] / np.linalg.norm(features["CreativeClip"], axis=1, keepdims=True)
    sp_text = features["SellingPoint"][2:3]
    np.testing.assert_allclose(clip_text @ vote_vectors(sp_text, texts, prototypes)[0], knn[0], atol=1e-9)
