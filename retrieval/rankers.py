"""The learned rankers of the evaluation table: GAT and GAT+RL, each alone and mixed with text cosine.

Each is a `retrieval.baselines.Ranker` (graph, features, split, sp_ids) -> scores. They train on the
split's training selling points inside the call; training is memoised per (graph, split) so the
four rankers share one GAT and one RL refinement.
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


def learned_rankers(
    config: SarConfig | None = None, feedback: FeedbackConfig | None = None, *, seed: int | None = None, progress: bool = False
) -> dict[str, Ranker]:
    """{"GAT", "GAT+text", "GAT+RL", "GAT+RL+text"} rankers sharing their training.

    `seed` (when given) replaces both configs' seeds, so one evaluation seed varies the split (the
    caller's), the GAT's initial weights and training order, and the RL stage's samples together.
    """
    config = config or SarConfig()
    feedback = feedback or FeedbackConfig(text_mix=config.text_mix)
    if seed is not None:
        config, feedback = replace(config, seed=seed), replace(feedback, seed=seed)
    trained: dict[tuple[str, tuple[str, ...]], dict[str, SarGAT]] = {}

    def models(graph: AckbGraph, features: dict[str, np.ndarray], split: Split) -> dict[str, SarGAT]:
        key = (graph.content_hash, tuple(split.train))
        if key not in trained:
            gat, _ = train_sar(graph, features, split, config, progress=progress)
            refined, _ = refine_with_feedback(gat, graph, features, split, feedback, progress=progress)
            trained[key] = {"GAT": gat, "GAT+RL": refined}
        return trained[key]

    def ranker(stage: str, text_mix: float) -> Ranker:
        def scores(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str]) -> np.ndarray:
            model = models(graph, features, split)[stage]
            return SarRetriever(model, graph, features, set(split.train), text_mix=text_mix).score_matrix(list(sp_ids))

        return scores

    return {
        "GAT": ranker("GAT", 0.0),
        "GAT+text": ranker("GAT", config.text_mix),
        "GAT+RL": ranker("GAT+RL", 0.0),
        "GAT+RL+text": ranker("GAT+RL", config.text_mix),
    }
