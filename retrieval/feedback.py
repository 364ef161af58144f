"""The feedback stage: SAR learns annotators' judgements made since it trained, kept only when a validation gate says it helps.

Candidates, each tried against the current model (`FeedbackConfig.candidates`):
- retrain (the default): the same model trained again from scratch on the judged graph, tried only
  when judgements were added since the model trained (`trained_on`): approvals become positives
  (approved clips, approved SAME_CLAIM partners), rejections negatives, rejected links stop passing
  messages;
- update (opt-in): the model, warm-started, keeps learning from every judgement: the training
  objective (`retrieval.train.episode_loss`) on the approvals plus pairwise logistic learning to
  rank on the served score, approved clips above rejected ones (rejected ILLUSTRATES links and the
  clips of selling points annotators rejected as the same claim, weighted `rejected_weight`) and
  above random unlinked clips.
Measured on the evaluation ACKB (benchmarks/RESULTS.md): with judgements made after training the
gated retrain raises held-out ranking; the update passed the gate on small validation gains and
lowered it, so it is not tried unless asked for. Both replace a REINFORCE stage whose reward mixed
text alignment and motion share with the judgements, which raised its own reward and lowered
held-out ranking.

Gate: a candidate is kept only when it ranks better on training products that neither it nor the
current model has learned from. Two cases, by what the current model learnt:
- it was trained on every training product (`SarConfig.validation_fraction` 0, the default): the
  training products fall into `folds` groups; for each group a shadow of the current model is
  trained the same way, on the graph as the model learnt it, without that group, and the
  candidates are made the same way (the update on the shadow, the retrain on the judged graph
  without the group); all are measured on the group, and the metrics pooled over the groups (every
  training product validates once) decide; the winner is then refitted on every training product
  (validation costs the served model no supervision). One group of 20 % was too few queries: its
  noise let the update through where it hurt and held the retrain back where it helped;
- it left some products out of supervision (`validation`, kept in older checkpoints): the
  candidates leave them out too and are compared with the model itself on them.
Comparison as the cold-start evaluation does (the validation products' links and relations
removed from the graph; other products' clips ranked, relevant = their SAME_CLAIM partners'
approved clips; own approved clips on an ACKB without SAME_CLAIM judgements): a candidate passes
only when its NDCG@10 is higher by more than `min_gain` and no other metric drops by more than
`tolerance`; of those that pass, the higher NDCG@10 is kept. The returned history says which model
was kept and why.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kb.graph import AckbGraph
from kdcvg.errors import BadInputError
from retrieval.crossval import pooled, validation_folds, validation_metrics
from retrieval.hetero import CLIP, SP, approved_illustrates
from retrieval.model import SarGAT
from retrieval.split import Split
from retrieval.train import (
    Episode,
    SarConfig,
    TrainingGraph,
    episode_loss,
    fit,
    seeded,
    served_scores,
    torch_threads,
    train_sar,
    training_graph,
)

GATED_METRICS = ("Recall@1", "Recall@5", "Recall@10", "NDCG@10", "MRR")
CANDIDATES = ("update", "retrain")


@dataclass
class FeedbackConfig:
    """Hyper-parameters of the feedback update and its validation gate."""

    epochs: int = 30
    lr: float = 1e-3
    temperature: float = 0.1  # pairwise logistic: softplus(-(positive - negative) / temperature)
    pairs: int = 16  # (approved, negative) pairs sampled per query per epoch
    rejected_weight: float = 2.0  # weight of a pair whose negative an annotator rejected
    folds: int = 5  # the training products fall into this many groups; each is validated on by shadow models trained without it
    candidates: tuple[str, ...] = ("retrain",)  # what to try: "retrain" (only when judgements were added since) and/or "update"
    min_gain: float = 0.0  # the candidate's validation NDCG@10 must beat the current one's by more than this
    tolerance: float = 0.01  # ... and no other validation metric may drop by more than this
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        self.candidates = tuple(self.candidates)
        if self.folds < 2:
            raise BadInputError(f"feedback folds must be 2 or more, got {self.folds}")
        unknown = [name for name in self.candidates if name not in CANDIDATES]
        if unknown or not self.candidates:
            raise BadInputError(f"feedback candidates must be some of {', '.join(CANDIDATES)}, got {', '.join(self.candidates) or 'none'}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rejected_pairs(graph: AckbGraph, train: set[str]) -> torch.Tensor:
    """(2, E) (clip, selling point) an annotator rejected: rejected ILLUSTRATES, and approved clips of rejected SAME_CLAIM partners."""
    clip_index, sp_index = graph.index(CLIP), graph.index(SP)
    approved = graph.judgements("approved")
    pairs = {(clip_index[r["from"]], sp_index[r["to"]]) for r in graph.relationships["ILLUSTRATES"] if r.get("status") == "rejected" and r["to"] in train}
    for row in graph.relationships["SAME_CLAIM"]:
        if row.get("status") != "rejected":
            continue
        for sp, other in ((row["from"], row["to"]), (row["to"], row["from"])):
            if sp in train and other in train:
                pairs.update((clip_index[c], sp_index[sp]) for c in approved.get(other, ()) if c in clip_index)
    return torch.tensor(sorted(pairs), dtype=torch.long).reshape(-1, 2).T


def _sample(mask: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """(rows, count) column indices drawn with replacement from each row's True entries (rows with none: any column)."""
    weights = mask.float() + (~mask.any(dim=1, keepdim=True)).float()
    return torch.multinomial(weights, count, replacement=True, generator=gen)


def pairwise_loss(model: SarGAT, episode: Episode, config: SarConfig, rejected: torch.Tensor, feedback: FeedbackConfig, gen: torch.Generator) -> torch.Tensor:
    """Pairwise logistic loss: approved clips above rejected (weighted) and random unlinked clips."""
    out = model(episode.data)
    scores = served_scores(out, episode.queries, episode.illustrates, config.knn_mix)
    negatives = ~episode.positives & ~episode.hidden
    judged = rejected[episode.queries] & negatives
    half = feedback.pairs // 2
    positive = _sample(episode.positives, feedback.pairs, gen)
    negative = torch.cat([_sample(judged, half, gen), _sample(negatives, feedback.pairs - half, gen)], dim=1)
    weight = torch.ones_like(negative, dtype=scores.dtype)
    weight[:, :half] = torch.where(judged.any(dim=1, keepdim=True), feedback.rejected_weight, 0.0)  # no rejection: no judged pair
    margin = (scores.gather(1, positive) - scores.gather(1, negative)) / feedback.temperature
    return (weight * F.softplus(-margin)).sum() / weight.sum().clamp(min=1.0)


def gate(current: dict[str, float], candidate: dict[str, float], config: FeedbackConfig) -> tuple[bool, str]:
    """(keep the candidate?, why) from validation metrics of both models."""
    if not current or not candidate:
        return False, "no validation selling point with an approved clip: the current model is kept"
    gain = candidate["NDCG@10"] - current["NDCG@10"]
    drops = [m for m in GATED_METRICS if m != "NDCG@10" and candidate[m] < current[m] - config.tolerance]
    if gain <= config.min_gain:
        return False, f"validation NDCG@10 {candidate['NDCG@10']:.3f} vs {current['NDCG@10']:.3f}: no gain above {config.min_gain}"
    if drops:
        return False, f"validation NDCG@10 +{gain:.3f} but {', '.join(drops)} dropped by more than {config.tolerance}"
    return True, f"validation NDCG@10 {current['NDCG@10']:.3f} -> {candidate['NDCG@10']:.3f}"


def refine_with_feedback(
    retriever_or_model: Any,
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    config: FeedbackConfig | None = None,
    progress: bool = True,
    sar_config: SarConfig | None = None,
    validation: list[str] | None = None,
    trained_on: AckbGraph | None = None,
) -> tuple[SarGAT, dict[str, Any]]:
    """The model the validation gate prefers among the current one and the candidates of `config.candidates`, refined on `split.train`.

    `trained_on`: the graph as the model learnt it, when judgements were added since (default `graph`:
    none added, so training again would learn nothing new and is not tried); the shadow models learn
    from it too, so the gate sees what the new judgements add.
    `validation`: training selling points the model was not supervised on (older checkpoints keep
    them); the candidates then leave them out too and are compared with the model itself. Empty or
    None (a model trained on every training product): the training products fall into `config.folds`
    groups; for each, a shadow of the current model and the candidates are trained without it and
    measured on it; the metrics pooled over the groups decide, and the winner is refitted on every
    training product.
    Returns (the kept model: the input model itself when "current" is kept, history). history: `kept`
    ("current", "update" or "retrain"), `reason`, `validation` {"current", and each candidate tried}
    metrics, `validation_queries`, `folds`, `judgements` {"approved", "rejected"} learnt from,
    `judged_since`, `gate` ("refit" or "held-out"), `update` {"loss", "seconds"} of the last update
    tried, `shadow` {"approved": links a shadow trained on, on average} and `refit` when refitted.
    """
    config = config or FeedbackConfig()
    sar_config = replace(sar_config or SarConfig(), seed=config.seed)
    shadow_config = replace(sar_config, validation_fraction=0.0)
    base = getattr(retriever_or_model, "model", retriever_or_model)
    if not isinstance(base, SarGAT):
        raise TypeError(f"expected a SarGAT or a SarRetriever, got {type(retriever_or_model).__name__}")
    earlier = graph if trained_on is None else trained_on
    if validation:
        folds = [list(validation)]
    else:
        with seeded(config.seed) as gen:
            folds = validation_folds(graph, split.train, config.folds, gen)
    learnt = [sp for sp in split.train if not validation or sp not in set(validation)]
    approved = int(approved_illustrates(graph, set(learnt)).size // 2)
    if approved == 0:
        raise ValueError("no approved ILLUSTRATES links among the training selling points: no feedback to learn from")
    history: dict[str, Any] = {
        "gate": "held-out" if validation else "refit",
        "folds": len(folds),
        "validation_queries": sum(map(len, folds)),
        "judgements": {"approved": approved, "rejected": int(rejected_pairs(graph, set(learnt)).shape[1])},
        "judged_since": earlier.content_hash != graph.content_hash,
    }
    tryable = [name for name in config.candidates if name == "update" or history["judged_since"]]
    if not tryable or not folds:  # nothing to weigh: no shadow is trained
        return base, _choose(history | {"validation": {"current": {}}}, config)
    tried: dict[str, list[dict[str, float]]] = {"current": []}
    shadow_links: list[int] = []
    for queries in folds:
        fit_ids = [sp for sp in split.train if sp not in set(queries)]
        measured = partial(validation_metrics, graph=graph, features=features, seen=set(fit_ids), queries=queries, config=sar_config)
        current, candidates = base, {}
        if not validation:  # the shadow: the current model's training without this fold's products
            current, trained = train_sar(earlier, features, Split(fit_ids, split.test), shadow_config, progress=progress)
            shadow_links.append(trained["train_pairs"])
        tried["current"].append(measured(current))
        if "update" in config.candidates:
            candidates["update"] = copy.deepcopy(current)
            history["update"] = _learn_judgements(candidates["update"], graph, features, fit_ids, sar_config, config, progress)
            tried.setdefault("update", []).append(measured(candidates["update"]))
        if "retrain" in config.candidates and history["judged_since"]:
            candidates["retrain"], _ = train_sar(graph, features, Split(fit_ids, split.test), shadow_config, progress=progress)
            tried.setdefault("retrain", []).append(measured(candidates["retrain"]))
    if shadow_links:
        history["shadow"] = {"approved": round(sum(shadow_links) / len(shadow_links))}
    history = _choose(history | {"validation": {name: pooled(values) for name, values in tried.items()}}, config)
    kept = history["kept"]
    if kept == "current":
        return base, history
    if validation:  # one fold, tried on the served model's own terms: the candidate is the served model
        return candidates[kept], history
    if kept == "retrain":
        refit, trained = train_sar(graph, features, split, shadow_config, progress=progress)
        history["refit"] = {"approved": trained["train_pairs"], "loss": trained["loss"], "seconds": trained["seconds"]}
        return refit, history
    refit = copy.deepcopy(base)
    history["refit"] = _learn_judgements(refit, graph, features, split.train, sar_config, config, progress)
    return refit, history


def _choose(history: dict[str, Any], config: FeedbackConfig) -> dict[str, Any]:
    """`history` with `kept` and `reason`: the candidate with the best validation NDCG@10 among those the gate passes, else "current"."""
    validation = history["validation"]
    verdicts = {name: gate(validation["current"], metrics, config) for name, metrics in validation.items() if name != "current"}
    passed = [name for name, (ok, _) in verdicts.items() if ok]
    if not verdicts:
        why = "a retrain needs judgements made since the model trained" if history["validation_queries"] else "no products to validate on"
        return history | {"kept": "current", "reason": f"nothing to try: {why}"}
    if not passed:
        return history | {"kept": "current", "reason": "; ".join(f"{name}: {why}" for name, (_, why) in verdicts.items())}
    best = max(passed, key=lambda name: validation[name]["NDCG@10"])
    return history | {"kept": best, "reason": f"{best}: {verdicts[best][1]}"}


def _learn_judgements(
    model: SarGAT, graph: AckbGraph, features: dict[str, np.ndarray], train: list[str], sar_config: SarConfig, config: FeedbackConfig, progress: bool
) -> dict[str, Any]:
    """The update, in place on `model`, from the judgements of `train`; returns {"approved", "rejected", "loss", "seconds"}."""
    with torch_threads(config.threads), seeded(config.seed) as gen:
        tg = training_graph(graph, features, set(train))
        rejected = rejected_pairs(graph, set(train))
        return {"approved": int(tg.links.shape[1]), "rejected": int(rejected.shape[1])} | _update(model, tg, rejected, sar_config, config, gen, progress)


def _update(model: SarGAT, tg: TrainingGraph, rejected: torch.Tensor, sar_config: SarConfig, config: FeedbackConfig, gen: torch.Generator, progress: bool) -> dict[str, Any]:
    """Epochs of the training objective plus pairwise learning to rank on `model`, in place; returns {"loss", "seconds"}."""
    matrix = torch.zeros(tg.n_sps, tg.n_clips, dtype=torch.bool)
    matrix[rejected[1], rejected[0]] = True
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss = lambda m, episode, c: episode_loss(m, episode, c) + pairwise_loss(m, episode, c, matrix, config, gen)
    return fit(model, tg, sar_config, optimiser, loss, config.epochs, gen, progress, "SAR feedback")
