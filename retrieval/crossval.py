"""Cross-validation over training products: how a model ranks for products it never learnt from, and what it chooses.

The training products fall into groups (`validation_folds`); a model trained without one group
ranks clips for that group's selling points as the cold-start evaluation does
(`validation_metrics`), and the metrics pooled over the groups (`pooled`) judge it on every
training product. The feedback gate and the choice of the served text shares (`choose_mixes`:
text cosine and the judged-neighbour vote) both decide this way, never on the held-out selling points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from kb.graph import AckbGraph
from retrieval.hetero import SP
from retrieval.metrics import ranking_metrics
from retrieval.model import SarGAT
from retrieval.sar import SarRetriever
from retrieval.split import Split
from retrieval.train import SarConfig, seeded, train_sar, training_graph

TEXT_MIXES = (0.0, 0.25, 0.5, 1.0)  # the served text-cosine shares `choose_mixes` weighs
VOTE_MIXES = (0.0, 0.5, 1.0)  # the judged-neighbour vote's shares, weighed with each text share


def validation_folds(graph: AckbGraph, train: list[str], folds: int, gen: torch.Generator) -> list[list[str]]:
    """The training selling points in up to `folds` groups by product, products shuffled (none below 3 products; each leaves 2+ to train on)."""
    products = sorted({graph.product_of_selling_point[s] for s in train if s in graph.product_of_selling_point})
    if len(products) < 3:
        return []
    count = min(folds, len(products))
    if len(products) - math.ceil(len(products) / count) < 2:  # a group too big to leave two products: one product a group
        count = len(products)
    order = [products[i] for i in torch.randperm(len(products), generator=gen).tolist()]
    group = {product: index % count for index, product in enumerate(order)}
    result = [[s for s in train if group.get(graph.product_of_selling_point.get(s)) == g] for g in range(count)]
    return [fold for fold in result if fold]


def validation_metrics(model: SarGAT, graph: AckbGraph, features: dict[str, np.ndarray], seen: set[str], queries: list[str], config: SarConfig) -> dict[str, float]:
    """Metrics of `model` ranking clips for `queries`, selling points of products new to the graph (no links or relations of theirs).

    As the cold-start evaluation: a query ranks the clips of the other products, relevant = the
    approved clips of its approved SAME_CLAIM partners there (a query whose partners have none, e.g.
    products with a brief but no footage, is not scored, as in the evaluation). Only an ACKB with
    no approved SAME_CLAIM among these selling points falls back to link completion: every clip
    ranked, relevant = the query's own approved clips. Served with `config`'s mixes.
    """
    tg = training_graph(graph, features, set(queries) | seen)
    rows = torch.tensor([graph.index(SP)[s] for s in queries], dtype=torch.long)
    partners = tg.claim_matrix(rows)
    partners[:, rows] = False  # partners on the other held-out products are new too
    all_links = tg.link_matrix(torch.arange(tg.n_sps)).float()
    partner_clips = (partners.float() @ all_links) > 0
    new_clip = torch.isin(tg.clip_product, torch.unique(tg.sp_product[rows]))
    own_clips = tg.link_matrix(rows)
    if tg.claims.numel():  # relations are judged here: every query is a new product's, as in the cold-start evaluation
        relevant_mask = partner_clips & ~new_clip
        candidates = ~new_clip.unsqueeze(0).expand_as(own_clips)
    else:
        relevant_mask, candidates = own_clips, torch.ones_like(own_clips)
    keep = torch.nonzero(relevant_mask.any(dim=1)).flatten().tolist()
    if not keep:
        return {}
    retriever = SarRetriever.for_config(model, graph, features, seen, config)
    scores = retriever.score_matrix([queries[i] for i in keep])
    scores = np.where(candidates[keep].numpy(), scores, -np.inf)
    return ranking_metrics(scores, [set(torch.nonzero(relevant_mask[i]).flatten().tolist()) for i in keep])


def pooled(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Metrics over all folds' queries: each fold's means weighted by its scored queries (folds with none left out)."""
    scored = [m for m in per_fold if m and m.get("queries")]
    total = sum(m["queries"] for m in scored)
    if not total:
        return {}
    names = [name for name in scored[0] if name not in ("queries", "excluded")]
    return {name: sum(m[name] * m["queries"] for m in scored) / total for name in names} | {"queries": total}


def choose_mixes(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    config: SarConfig,
    *,
    folds: int = 5,
    mixes: Sequence[float] = TEXT_MIXES,
    votes: Sequence[float] = VOTE_MIXES,
    progress: bool = False,
) -> tuple[tuple[float, float], dict[str, Any]]:
    """((text share, vote share) with the best pooled NDCG@10 over `folds` product groups, {"mixes": {"text/vote": metrics}, "folds"}).

    Text cosine helps where captions repeat their selling points' words and hurts where they do
    not, and the judged-neighbour vote helps as far as claims recur in similar words, so both are
    measured per ACKB: one shadow model per group (trained as `config` says, without the group)
    ranks the group's clips at every pair of `mixes` x `votes`. Ties go to the smaller total, then
    the smaller text share. Fewer than 3 training products: `config`'s shares, unmeasured.
    """
    unmeasured = (config.text_mix, config.vote_mix)
    with seeded(config.seed) as gen:
        groups = validation_folds(graph, split.train, folds, gen)
    if not groups:
        return unmeasured, {"mixes": {}, "folds": 0}
    shadow_config = replace(config, validation_fraction=0.0)
    pairs = [(mix, vote) for mix in sorted(mixes) for vote in sorted(votes)]
    measured: dict[tuple[float, float], list[dict[str, float]]] = {pair: [] for pair in pairs}
    for queries in groups:
        fit_ids = [sp for sp in split.train if sp not in set(queries)]
        shadow, _ = train_sar(graph, features, Split(fit_ids, split.test), shadow_config, progress=progress)
        for mix, vote in pairs:
            served = replace(config, text_mix=mix, vote_mix=vote)
            measured[(mix, vote)].append(validation_metrics(shadow, graph, features, set(fit_ids), queries, served))
    table = {pair: pooled(values) for pair, values in measured.items()}
    report = {"mixes": {f"{mix:g}/{vote:g}": metrics for (mix, vote), metrics in table.items()}, "folds": len(groups)}
    scored = [pair for pair in pairs if table[pair]]
    if not scored:
        return unmeasured, report
    best = max(scored, key=lambda pair: (round(table[pair]["NDCG@10"], 9), -(pair[0] + pair[1]), -pair[0]))
    return best, report
