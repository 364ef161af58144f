"""The learned rankers of the evaluation table: SAR's GAT and GAT after the feedback stage, each alone and mixed with text cosine.

Each is a `retrieval.baselines.Ranker` (graph, features, split, sp_ids) -> scores. They train on the
split's training selling points inside the call; training is memoised per (graph, split) so the
four rankers share one GAT and one feedback update. "GAT" is the served score without text
(GAT cosine + the learned nearest-neighbour vote); "+text" adds `text_mix` × text cosine;
"+FB" is the model the feedback stage's validation gate kept (the candidate or the GAT itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from kb.graph import AckbGraph
from retrieval.baselines import Ranker
from retrieval.feedback import FeedbackConfig, refine_with_feedback
from retrieval.model import SarGAT
from retrieval.sar import SarRetriever
from retrieval.split import Split
from retrieval.train import SarConfig, train_sar

FEEDBACK_COMPARISONS = (("GAT+FB", "GAT"), ("GAT+FB+text", "GAT+text"))  # what feedback changed, paired per query


def learned_rankers(
    config: SarConfig | None = None, feedback: FeedbackConfig | None = None, *, seed: int | None = None, progress: bool = False
) -> dict[str, Ranker]:
    """{"GAT", "GAT+text", "GAT+FB", "GAT+FB+text"} rankers sharing their training.

    `seed` (when given) replaces both configs' seeds, so one evaluation seed varies the split (the
    caller's), the GAT's initial weights and training episodes, and the feedback stage's together.
    """
    config = config or SarConfig()
    feedback = feedback or FeedbackConfig()
    if seed is not None:
        config, feedback = replace(config, seed=seed), replace(feedback, seed=seed)
    trained: dict[tuple[str, tuple[str, ...]], dict[str, SarGAT]] = {}

    def models(graph: AckbGraph, features: dict[str, np.ndarray], split: Split) -> dict[str, SarGAT]:
        key = (graph.content_hash, tuple(split.train))
        if key not in trained:
            gat, history = train_sar(graph, features, split, config, progress=progress)
            validation = history["validation_selling_points"]
            refined, _ = refine_with_feedback(gat, graph, features, split, feedback, progress=progress, sar_config=config, validation=validation)
            trained[key] = {"GAT": gat, "GAT+FB": refined}
        return trained[key]

    def ranker(stage: str, text_mix: float) -> Ranker:
        def scores(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str]) -> np.ndarray:
            model = models(graph, features, split)[stage]
            retriever = SarRetriever(model, graph, features, set(split.train), text_mix=text_mix, knn_mix=config.knn_mix)
            return retriever.score_matrix(list(sp_ids))

        return scores

    return {
        "GAT": ranker("GAT", 0.0),
        "GAT+text": ranker("GAT", config.text_mix),
        "GAT+FB": ranker("GAT+FB", 0.0),
        "GAT+FB+text": ranker("GAT+FB", config.text_mix),
    }
