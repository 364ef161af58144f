"""The feedback stage: annotators' approvals and rejections update SAR, and a validation gate keeps it only when it helps.

Update: the model, warm-started, keeps learning from every judgement as it stands now. Approvals
through the training objective (`retrieval.train.episode_loss`: a query's approved clips and its
approved SAME_CLAIM partners, in the same cold-start / link-completion episodes), and rejections
through pairwise logistic learning to rank on the served score: each query's approved clips must
outscore its rejected clips (rejected ILLUSTRATES links, and the clips of selling points annotators
rejected as the same claim), weighted `rejected_weight`, and random unlinked clips. The ranking
term alone left the model where it was, also when judgements had been added since training (see
benchmarks/RESULTS.md). It replaces a REINFORCE stage whose reward mixed text alignment and motion
share with the judgements, which raised its own reward and lowered held-out ranking.

Gate: the candidate is kept only when it ranks better on training products that neither it nor
the current model has learned from. Two cases, by what the current model learnt:
- it was trained on every training product (`SarConfig.validation_fraction` 0, the default): a
  shadow model is trained the same way on all but `validation_fraction` of the products, the
  update is tried on the shadow, and the shadow before and after are compared on the products left
  out; if the update helps there, it is applied to the current model with every training product's
  judgements (the refit: validation costs no supervision of the served model);
- it left some products out of supervision (`validation`, kept in older checkpoints): the update is
  tried on it directly and compared on those.
Comparison as the cold-start evaluation does (the validation products' links and relations
removed from the graph; other products' clips ranked, relevant = their SAME_CLAIM partners'
approved clips; own approved clips on an ACKB without SAME_CLAIM judgements): the candidate wins
only when its NDCG@10 is higher by more than `min_gain` and no other metric drops by more than
`tolerance`. The returned history says which model was kept and why.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kb.graph import AckbGraph
from retrieval.hetero import CLIP, SP
from retrieval.metrics import ranking_metrics
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
    validation_selling_points,
)

GATED_METRICS = ("Recall@1", "Recall@5", "Recall@10", "NDCG@10", "MRR")


@dataclass
class FeedbackConfig:
    """Hyper-parameters of the feedback update and its validation gate."""

    epochs: int = 30
    lr: float = 1e-3
    temperature: float = 0.1  # pairwise logistic: softplus(-(positive - negative) / temperature)
    pairs: int = 16  # (approved, negative) pairs sampled per query per epoch
    rejected_weight: float = 2.0  # weight of a pair whose negative an annotator rejected
    validation_fraction: float = 0.2  # share of training products a shadow model leaves out, to validate the update on
    min_gain: float = 0.0  # the candidate's validation NDCG@10 must beat the current one's by more than this
    tolerance: float = 0.01  # ... and no other validation metric may drop by more than this
    seed: int = 0
    threads: int = 1

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


def validation_metrics(model: SarGAT, graph: AckbGraph, features: dict[str, np.ndarray], seen: set[str], queries: list[str], config: SarConfig) -> dict[str, float]:
    """Metrics of `model` ranking clips for `queries`, selling points of products new to the graph (no links or relations of theirs).

    As the cold-start evaluation: a query with approved SAME_CLAIM partners on other products ranks
    those products' clips, relevant = the partners' approved clips; a query without any (an ACKB
    with no SAME_CLAIM judged) ranks all clips, relevant = its own approved clips.
    """
    from retrieval.sar import SarRetriever

    tg = training_graph(graph, features, set(queries) | seen)
    rows = torch.tensor([graph.index(SP)[s] for s in queries], dtype=torch.long)
    partners = tg.claim_matrix(rows)
    partners[:, rows] = False  # partners on the other held-out products are new too
    all_links = tg.link_matrix(torch.arange(tg.n_sps)).float()
    partner_clips = (partners.float() @ all_links) > 0
    new_clip = torch.isin(tg.clip_product, torch.unique(tg.sp_product[rows]))
    own_clips = tg.link_matrix(rows)
    cold = partner_clips.any(dim=1, keepdim=True)
    relevant_mask = torch.where(cold, partner_clips & ~new_clip, own_clips)
    candidates = torch.where(cold, ~new_clip.unsqueeze(0).expand_as(own_clips), torch.ones_like(own_clips))
    keep = torch.nonzero(relevant_mask.any(dim=1)).flatten().tolist()
    if not keep:
        return {}
    retriever = SarRetriever(model, graph, features, seen, text_mix=config.text_mix, knn_mix=config.knn_mix)
    scores = retriever.score_matrix([queries[i] for i in keep])
    scores = np.where(candidates[keep].numpy(), scores, -np.inf)
    return ranking_metrics(scores, [set(torch.nonzero(relevant_mask[i]).flatten().tolist()) for i in keep])


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
    """Fine-tune the model on the judgements of `split.train` if a validation gate on unseen products says it helps.

    `trained_on`: the graph as the model learnt it, when judgements were added since (default `graph`);
    the shadow model learns from it too, so the gate sees what the new judgements add.
    `validation`: training selling points the model was not supervised on (older checkpoints keep
    them); the update is then tried on the model itself. Empty or None (a model trained on every
    training product): the update is tried on a shadow model trained without `validation_fraction`
    of the products, and applied to the served model only if the shadow improved on them.
    Returns (the kept model: the updated one or the input model itself, history). history: `loss`
    per epoch, `kept` ("candidate" or "current"), `reason`, `validation` {"current", "candidate"}
    metrics, `validation_queries`, `judgements` {"approved", "rejected"}, `gate` ("refit" or
    "held-out"), `shadow` {"approved": links it trained on} and `refit` when refitted, `seconds`.
    """
    config = config or FeedbackConfig()
    sar_config = replace(sar_config or SarConfig(), seed=config.seed)
    base = getattr(retriever_or_model, "model", retriever_or_model)
    if not isinstance(base, SarGAT):
        raise TypeError(f"expected a SarGAT or a SarRetriever, got {type(retriever_or_model).__name__}")
    if validation:
        candidate, keep, history = _tried_update(base, graph, features, split.train, list(validation), config, sar_config, progress)
        return (candidate if keep else base), history | {"gate": "held-out"}
    with seeded(config.seed) as gen:
        queries = validation_selling_points(graph, split.train, config.validation_fraction, gen)
    fit_ids = [sp for sp in split.train if sp not in set(queries)]
    shadow, shadow_pairs = base, 0  # fewer than 3 products: nothing to validate on, the gate keeps the current model
    if queries:
        earlier = graph if trained_on is None else trained_on
        shadow, trained = train_sar(earlier, features, Split(fit_ids, split.test), replace(sar_config, validation_fraction=0.0), progress=progress)
        shadow_pairs = trained["train_pairs"]
    _, keep, history = _tried_update(shadow, graph, features, split.train, queries, config, sar_config, progress)
    history.update(gate="refit", shadow={"approved": shadow_pairs})
    if not keep:
        return base, history
    refit = copy.deepcopy(base)
    with torch_threads(config.threads), seeded(config.seed) as gen:
        tg = training_graph(graph, features, set(split.train))
        rejected = rejected_pairs(graph, set(split.train))
        history["refit"] = {"approved": int(tg.links.shape[1]), "rejected": int(rejected.shape[1])}
        history["refit"] |= _update(refit, tg, rejected, sar_config, config, gen, progress)
    return refit, history


def _tried_update(
    model: SarGAT, graph: AckbGraph, features: dict[str, np.ndarray], train: list[str], queries: list[str],
    config: FeedbackConfig, sar_config: SarConfig, progress: bool,
) -> tuple[SarGAT, bool, dict[str, Any]]:  # fmt: skip
    """(updated copy of `model`, keep it?, history): fine-tuned on `train` minus `queries`, both models compared on `queries`."""
    fit_ids = set(train) - set(queries)
    with torch_threads(config.threads), seeded(config.seed) as gen:
        tg = training_graph(graph, features, fit_ids)
        rejected = rejected_pairs(graph, fit_ids)
        history: dict[str, Any] = {"judgements": {"approved": int(tg.links.shape[1]), "rejected": int(rejected.shape[1])}}
        if tg.links.shape[1] == 0:
            raise ValueError("no approved ILLUSTRATES links among the training selling points: no feedback to learn from")
        candidate = copy.deepcopy(model)
        history |= _update(candidate, tg, rejected, sar_config, config, gen, progress)
    current_metrics = validation_metrics(model, graph, features, fit_ids, queries, sar_config)
    candidate_metrics = validation_metrics(candidate, graph, features, fit_ids, queries, sar_config)
    keep, reason = gate(current_metrics, candidate_metrics, config)
    history.update(
        kept="candidate" if keep else "current",
        reason=reason,
        validation={"current": current_metrics, "candidate": candidate_metrics},
        validation_queries=len(queries),
    )
    return candidate, keep, history


def _update(model: SarGAT, tg: TrainingGraph, rejected: torch.Tensor, sar_config: SarConfig, config: FeedbackConfig, gen: torch.Generator, progress: bool) -> dict[str, Any]:
    """Epochs of the training objective plus pairwise learning to rank on `model`, in place; returns {"loss", "seconds"}."""
    matrix = torch.zeros(tg.n_sps, tg.n_clips, dtype=torch.bool)
    matrix[rejected[1], rejected[0]] = True
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss = lambda m, episode, c: episode_loss(m, episode, c) + pairwise_loss(m, episode, c, matrix, config, gen)
    return fit(model, tg, sar_config, optimiser, loss, config.epochs, gen, progress, "SAR feedback")
