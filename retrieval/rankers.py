"""The learned rankers of the evaluation table: SAR's GAT and GAT after the feedback stage, each alone and mixed with text cosine.

Each is a `retrieval.baselines.Ranker` (graph, features, split, sp_ids) -> scores. They train on the
split's training selling points inside the call; training is memoised per (graph, split) so the
four rankers share one GAT and one feedback update. "GAT" is the served score without text
(GAT cosine + the learned nearest-neighbour vote); "+text" adds `text_mix` × text cosine;
"+FB" is the model the feedback stage's validation gate kept (the candidate or the GAT itself).

`feedback_share` > 0 simulates judgements that arrive after training, as in use (SAR proposes,
annotators judge, `kdcvg retrieval feedback` learns): that share of the training selling points'
judged links and relations is still `proposed` when the GAT trains, and judged when feedback runs;
both models are then served on the judged graph. "GAT-all" (trained on every judgement from the
start) is the sceptic's row: is the update as good as training again?
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from kb.graph import AckbGraph
from kdcvg.errors import BadInputError
from retrieval.baselines import Ranker
from retrieval.feedback import FeedbackConfig, refine_with_feedback
from retrieval.model import SarGAT
from retrieval.sar import SarRetriever
from retrieval.split import Split
from retrieval.train import SarConfig, train_sar

FEEDBACK_COMPARISONS = (("GAT+FB", "GAT"), ("GAT+FB+text", "GAT+text"), ("GAT+FB", "GAT-all"))  # paired per query
JUDGED = ("approved", "rejected")


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


def learned_rankers(
    config: SarConfig | None = None,
    feedback: FeedbackConfig | None = None,
    *,
    seed: int | None = None,
    progress: bool = False,
    feedback_share: float = 0.0,
) -> dict[str, Ranker]:
    """{"GAT", "GAT+text", "GAT+FB", "GAT+FB+text"} rankers sharing their training (and "GAT-all" when `feedback_share` > 0).

    `seed` (when given) replaces both configs' seeds, so one evaluation seed varies the split (the
    caller's), the GAT's initial weights and training episodes, and the feedback stage's together.
    """
    if not 0.0 <= feedback_share < 1.0:
        raise BadInputError(f"feedback_share must be in [0, 1), got {feedback_share}")
    config = config or SarConfig()
    feedback = feedback or FeedbackConfig()
    if seed is not None:
        config, feedback = replace(config, seed=seed), replace(feedback, seed=seed)
    trained: dict[tuple[str, tuple[str, ...]], dict[str, SarGAT]] = {}

    def models(graph: AckbGraph, features: dict[str, np.ndarray], split: Split) -> dict[str, SarGAT]:
        key = (graph.content_hash, tuple(split.train))
        if key not in trained:
            earlier = pending_judgements(graph, split.train, feedback_share, config.seed) if feedback_share else graph
            gat, history = train_sar(earlier, features, split, config, progress=progress)
            validation = history["validation_selling_points"]
            refined, _ = refine_with_feedback(
                gat, graph, features, split, feedback, progress=progress, sar_config=config, validation=validation, trained_on=earlier
            )
            trained[key] = {"GAT": gat, "GAT+FB": refined}
            if feedback_share:
                trained[key]["GAT-all"] = train_sar(graph, features, split, config, progress=progress)[0]
        return trained[key]

    def ranker(stage: str, text_mix: float) -> Ranker:
        def scores(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str]) -> np.ndarray:
            model = models(graph, features, split)[stage]
            retriever = SarRetriever(model, graph, features, set(split.train), text_mix=text_mix, knn_mix=config.knn_mix)
            return retriever.score_matrix(list(sp_ids))

        return scores

    rankers = {
        "GAT": ranker("GAT", 0.0),
        "GAT+text": ranker("GAT", config.text_mix),
        "GAT+FB": ranker("GAT+FB", 0.0),
        "GAT+FB+text": ranker("GAT+FB", config.text_mix),
    }
    if feedback_share:
        rankers["GAT-all"] = ranker("GAT-all", 0.0)
    return rankers
