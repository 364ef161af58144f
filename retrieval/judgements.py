"""Judgements over time: which ones a model learnt from, and the graph as it stood before later ones.

The feedback stage weighs a model trained on the graph as it was against one trained on the graph
as annotators have judged it since. A checkpoint therefore keeps a record of the judged
relationships it learnt from (`judgement_record`), and `as_judged` rebuilds the earlier graph from
today's graph and that record. `pending_judgements` makes such an earlier graph on purpose, for the
evaluation of judgements that arrive after training.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from kb.graph import AckbGraph

JUDGED = ("approved", "rejected")
JUDGED_TYPES = ("ILLUSTRATES", "SAME_CLAIM")


def judgement_record(graph: AckbGraph) -> list[list[str]]:
    """[type, from, to, status] of every judged ILLUSTRATES link and SAME_CLAIM relation, sorted."""
    return sorted(
        [type_, row["from"], row["to"], row["status"]]
        for type_ in JUDGED_TYPES
        for row in graph.relationships.get(type_, [])
        if row.get("status") in JUDGED
    )


def as_judged(graph: AckbGraph, record: Sequence[Sequence[str]]) -> AckbGraph:
    """`graph` as it stood when `record` was taken: a judgement made since is `proposed` again, a changed one takes its recorded status.

    Nodes and relationships added since stay (unjudged, they teach nothing); relationships the
    record names that are gone stay gone.
    """
    recorded = {(type_, source, target): status for type_, source, target, status in record}
    relationships = dict(graph.relationships)
    for type_ in JUDGED_TYPES:
        rows = []
        for row in graph.relationships.get(type_, []):
            then = recorded.get((type_, row["from"], row["to"]), "proposed" if row.get("status") in JUDGED else row.get("status"))
            rows.append(row if then == row.get("status") else {**row, "status": then})
        relationships[type_] = rows
    return AckbGraph(graph.nodes, relationships, graph.media_root)


def pending_judgements(graph: AckbGraph, selling_points: Sequence[str], share: float, seed: int) -> AckbGraph:
    """The graph with `share` of the judged ILLUSTRATES links and SAME_CLAIM relations of `selling_points` back to `proposed`.

    Judgements made after training: a SAME_CLAIM relation counts when both its selling points are
    in `selling_points`. Deterministic for a seed; nodes and unjudged rows are unchanged.
    """
    chosen = set(selling_points)
    rng = random.Random(seed)
    relationships = dict(graph.relationships)
    for type_, counts in (("ILLUSTRATES", lambda r: r["to"] in chosen), ("SAME_CLAIM", lambda r: r["from"] in chosen and r["to"] in chosen)):
        rows = []
        for row in graph.relationships[type_]:
            if row.get("status") in JUDGED and counts(row) and rng.random() < share:
                row = {**row, "status": "proposed"}
            rows.append(row)
        relationships[type_] = rows
    return AckbGraph(graph.nodes, relationships, graph.media_root)
