"""The learned rankers of the evaluation table: SAR's GAT and GAT after the feedback stage, each alone and mixed with text cosine.

Each is a `retrieval.baselines.Ranker` (graph, features, split, sp_ids) -> scores. They train on the
split's training selling points inside the call; training is memoised per (graph, split) so the
four rankers share one GAT, one feedback stage and one text-share choice. "GAT" is the served score without text
(GAT cosine + the learned nearest-neighbour vote); "+text" adds text cosine and the judged-neighbour
vote (`retrieval.vote`) at the shares that cross-validation over the training products chooses
(`retrieval.crossval.choose_mixes`), as the served model does;
"+FB" is the model the feedback stage's validation gate kept (updated, trained again, or the GAT
itself).

`feedback_share` > 0 simulates judgements that arrive after training, as in use (SAR proposes,
annotators judge, `kdcvg retrieval feedback` learns): that share of the training selling points'
judged links and relations is still `proposed` when the GAT trains, and judged when feedback runs;
both models are then served on the judged graph. "GAT-all" (trained on every judgement from the
start) is the sceptic's row: is the feedback stage as good as training again?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from kb.graph import AckbGraph
from kdcvg.errors import BadInputError
from retrieval.baselines import Ranker
from retrieval.crossval import choose_mixes
from retrieval.feedback import FeedbackConfig, refine_with_feedback
from retrieval.judgements import pending_judgements
from retrieval.sar import SarRetriever
from retrieval.split import Split
from retrieval.train import SarConfig, train_sar

FEEDBACK_COMPARISONS = (("GAT+FB", "GAT"), ("GAT+FB+text", "GAT+text"), ("GAT+FB", "GAT-all"), ("GAT-all", "GAT"))  # paired per query
def learned_rankers(
    config: SarConfig | None = None,
    feedback: FeedbackConfig | None = None,
    *,
    seed: int | None = None,
    progress: bool = False,
    feedback_share: float = 0.0,
    decisions: list[dict[str, Any]] | None = None,
    mixes: tuple[float, float] | None = None,
) -> dict[str, Ranker]:
    """{"GAT", "GAT+text", "GAT+FB", "GAT+FB+text"} rankers sharing their training (and "GAT-all" when `feedback_share` > 0).

    `seed` (when given) replaces both configs' seeds, so one evaluation seed varies the split (the
    caller's), the GAT's initial weights and training episodes, and the feedback stage's together.
    `mixes`: the "+text" rows' (text share, vote share); None (default) chooses them per training split by
    cross-validation over the training products, as `kdcvg retrieval train` does for the served model.
    `decisions`, when given, receives {"seed", "kept", "reason", "text_mix", "vote_mix"} for each training.
    """
    if not 0.0 <= feedback_share < 1.0:
        raise BadInputError(f"feedback_share must be in [0, 1), got {feedback_share}")
    config = config or SarConfig()
    feedback = feedback or FeedbackConfig()
    if seed is not None:
        config, feedback = replace(config, seed=seed), replace(feedback, seed=seed)
    trained: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}

    def models(graph: AckbGraph, features: dict[str, np.ndarray], split: Split) -> dict[str, Any]:
        key = (graph.content_hash, tuple(split.train))
        if key not in trained:
            earlier = pending_judgements(graph, split.train, feedback_share, config.seed) if feedback_share else graph
            gat, history = train_sar(earlier, features, split, config, progress=progress)
            validation = history["validation_selling_points"]
            refined, history = refine_with_feedback(
                gat, graph, features, split, feedback, progress=progress, sar_config=config, validation=validation, trained_on=earlier
            )
            mix, vote = choose_mixes(earlier, features, split, config)[0] if mixes is None else mixes
            trained[key] = {"GAT": gat, "GAT+FB": refined, "text_mix": mix, "vote_mix": vote}
            if decisions is not None:
                decisions.append(
                    {"seed": config.seed, "kept": history["kept"], "reason": history["reason"], "text_mix": mix, "vote_mix": vote}
                )
            if feedback_share:  # a kept retrain is this very training (same graph, split and seed): not run twice
                retrained = history["kept"] == "retrain" and not config.validation_fraction
                trained[key]["GAT-all"] = refined if retrained else train_sar(graph, features, split, config, progress=progress)[0]
        return trained[key]

    def ranker(stage: str, with_text: bool) -> Ranker:
        def scores(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, sp_ids: Sequence[str]) -> np.ndarray:
            trained_here = models(graph, features, split)
            shares = {name: trained_here[name] if with_text else 0.0 for name in ("text_mix", "vote_mix")}
            retriever = SarRetriever.for_config(trained_here[stage], graph, features, set(split.train), config, **shares)
            return retriever.score_matrix(list(sp_ids))

        return scores

    rankers = {
        "GAT": ranker("GAT", False),
        "GAT+text": ranker("GAT", True),
        "GAT+FB": ranker("GAT+FB", False),
        "GAT+FB+text": ranker("GAT+FB", True),
    }
    if feedback_share:
        rankers["GAT-all"] = ranker("GAT-all", False)
    return rankers
