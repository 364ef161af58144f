"""Training SAR for its task: rank clips for a selling point the graph has no links or relations for yet.

Every epoch is an episode of two kinds of queries over the training selling points:
- cold start: a random `cold_fraction` of the training products lose their clips' links, their
  selling points' ILLUSTRATES and SAME_CLAIM relations and their clips' FEATURES edges, as a new
  product has none; their selling points must then find, from text and product alone, their own
  approved clips and those of the selling points that make the same claim (approved SAME_CLAIM);
- link completion: the other training selling points pass half their approved links (resampled each
  epoch) as messages and are asked for the other half, so the model never looks up the link it is
  scored on.
The clip score is the served one (`served_scores`): GAT cosine plus `knn_mix` times the cosine to
the clip's prototype (mean of the selling points it illustrates), a learned nearest-neighbour vote.
A second InfoNCE pulls each cold-start selling point towards its SAME_CLAIM partners among the
selling points that kept their links; every other one, rejected pairs included, is a negative.
Both losses are multi-positive InfoNCE over all clips (all selling points), so annotators'
rejections are negatives like any unlinked clip.
Also here: the evaluation metrics (Recall@k, MRR) and the chance level they are compared to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from kb.graph import AckbGraph
from retrieval.hetero import (
    CLIP,
    FEATURES,
    ILLUSTRATES,
    SAME_CLAIM,
    SP,
    approved_illustrates,
    approved_same_claims,
    edge_types,
    to_heterodata,
)
from retrieval.model import SarGAT, clip_prototypes
from retrieval.pyg import HeteroData
from retrieval.split import Split


@dataclass
class SarConfig:
    """Hyper-parameters of the SAR model and its training (stored with every checkpoint)."""

    hidden: int = 128
    out_dim: int = 128
    layers: int = 2
    heads: int = 2
    dropout: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 60
    temperature: float = 0.07
    message_fraction: float = 0.5  # share of a link-completion query's links that pass messages each epoch
    cold_fraction: float = 0.25  # share of training products masked as new (cold start) each epoch
    claim_weight: float = 1.0  # weight of the selling point <-> SAME_CLAIM partner loss
    knn_mix: float = 1.0  # score += knn_mix * cosine to the clip's prototype (learned nearest-neighbour vote)
    validation_fraction: float = 0.0  # share of training products left out of supervision (0: the feedback gate refits instead)
    seed: int = 0
    test_fraction: float = 0.2
    text_mix: float = 1.0  # served score also adds text_mix * text cosine (chosen by cross-validation)
    vote_mix: float = 0.0  # ... and vote_mix * the judged-neighbour vote (retrieval.vote; chosen with text_mix)
    threads: int = 1  # torch CPU threads while training (1 is fastest for graphs this small, esp. on busy CPUs)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SarConfig:
        """A config from a dict, ignoring keys it does not know (older/newer checkpoints)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """A block whose torch randomness (weight init, dropout) follows `seed`; yields a generator for sampling.

    torch's global generator is seeded inside the block and restored after it, so a seed decides a
    whole run and nothing leaks to the caller (or to the next run in the same process).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` torch CPU threads, restoring the previous setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def build_model(data: Any, config: SarConfig, text_dim: int) -> SarGAT:
    """A fresh SarGAT sized for `data` and `config`, its initial weights drawn from `config.seed`."""
    with seeded(config.seed):
        return SarGAT(
            list(data.node_types),
            edge_types(),
            {t: int(data[t].x.shape[1]) for t in data.node_types},
            text_dim=text_dim,
            hidden=config.hidden,
            out_dim=config.out_dim,
            layers=config.layers,
            heads=config.heads,
            dropout=config.dropout,
        )


def served_scores(out: dict[str, torch.Tensor], queries: torch.Tensor, illustrates: torch.Tensor, knn_mix: float) -> torch.Tensor:
    """(queries, clips) GAT cosine + knn_mix x cosine to each clip's prototype over the `illustrates` links."""
    clips = out[CLIP]
    if knn_mix:
        clips = clips + knn_mix * clip_prototypes(out[SP], illustrates, clips.shape[0])
    return out[SP][queries] @ clips.T


@dataclass
class TrainingGraph:
    """The training side of a graph as tensors: its HeteroData and the approved judgements of the training selling points."""

    data: HeteroData
    links: torch.Tensor  # (2, E) approved ILLUSTRATES (clip, selling point) of training selling points
    claims: torch.Tensor  # (2, P) approved SAME_CLAIM pairs among them, both directions
    sp_product: torch.Tensor  # (selling points,) product index, -1 for none
    clip_product: torch.Tensor  # (clips,) product index, -1 for none
    train: torch.Tensor  # (selling points,) bool: a training selling point

    @property
    def n_clips(self) -> int:
        return int(self.data[CLIP].num_nodes)

    @property
    def n_sps(self) -> int:
        return int(self.data[SP].num_nodes)

    def link_matrix(self, rows: torch.Tensor, links: torch.Tensor | None = None) -> torch.Tensor:
        """(len(rows), clips) bool: which clips `links` (default: all approved training links) tie to each selling point in `rows`."""
        links = self.links if links is None else links
        position = torch.full((self.n_sps,), -1, dtype=torch.long)
        position[rows] = torch.arange(len(rows))
        result = torch.zeros(len(rows), self.n_clips, dtype=torch.bool)
        keep = position[links[1]] >= 0
        result[position[links[1][keep]], links[0][keep]] = True
        return result

    def claim_matrix(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), selling points) bool: approved SAME_CLAIM partners of each selling point in `rows`."""
        position = torch.full((self.n_sps,), -1, dtype=torch.long)
        position[rows] = torch.arange(len(rows))
        result = torch.zeros(len(rows), self.n_sps, dtype=torch.bool)
        keep = position[self.claims[0]] >= 0
        result[position[self.claims[0][keep]], self.claims[1][keep]] = True
        return result

    def claim_clips(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), clips) bool: approved clips of each selling point and of its SAME_CLAIM partners."""
        partners = self.claim_matrix(rows).float()
        all_links = self.link_matrix(torch.arange(self.n_sps)).float()
        return self.link_matrix(rows) | ((partners @ all_links) > 0)


def training_graph(graph: AckbGraph, features: dict[str, np.ndarray], train: set[str]) -> TrainingGraph:
    """The tensors every training (and feedback) episode samples from."""
    data = to_heterodata(graph, features, train)
    products = graph.index("Product")
    sp_product = torch.tensor([products.get(graph.product_of_selling_point.get(s, ""), -1) for s in graph.ids(SP)], dtype=torch.long)
    clip_product = torch.tensor([products.get(graph.product_of_clip.get(c, ""), -1) for c in graph.ids(CLIP)], dtype=torch.long)
    is_train = torch.tensor([s in train for s in graph.ids(SP)], dtype=torch.bool)
    links = torch.from_numpy(approved_illustrates(graph, train)).long().reshape(2, -1)
    claims = torch.from_numpy(approved_same_claims(graph, train)).long().reshape(2, -1)
    return TrainingGraph(data, links, claims, sp_product, clip_product, is_train)


@dataclass
class Episode:
    """One epoch's view of the training graph and the queries it is supervised on."""

    data: HeteroData  # the graph the model sees: cold-start products' links, relations and FEATURES removed
    illustrates: torch.Tensor  # (2, E) the ILLUSTRATES links in `data` (what prototypes average over)
    queries: torch.Tensor  # (Q,) selling point indices
    positives: torch.Tensor  # (Q, clips) bool
    hidden: torch.Tensor  # (Q, clips) bool: the query's own message links, neither positive nor negative
    claim_queries: torch.Tensor  # (C,) cold-start selling points with a SAME_CLAIM partner among the keys
    claim_positives: torch.Tensor  # (C, selling points) bool
    claim_keys: torch.Tensor  # (selling points,) bool: training selling points that kept their links


def sample_episode(tg: TrainingGraph, cold_fraction: float, message_fraction: float, gen: torch.Generator) -> Episode:
    """Mask a random share of training products as new and split the others' links into messages and targets."""
    train_products = torch.unique(tg.sp_product[tg.train & (tg.sp_product >= 0)])
    n_cold = round(len(train_products) * cold_fraction)
    if cold_fraction > 0 and len(train_products) > 1:
        n_cold = min(max(1, n_cold), len(train_products) - 1)
    cold_products = train_products[torch.randperm(len(train_products), generator=gen)[:n_cold]]
    cold_product = torch.zeros(int(max(tg.sp_product.max(), tg.clip_product.max(), 0)) + 1, dtype=torch.bool)
    cold_product[cold_products] = True
    is_cold = lambda products: (products >= 0) & cold_product[products.clamp(min=0)]
    cold_sp, cold_clip = is_cold(tg.sp_product), is_cold(tg.clip_product)

    links = tg.links
    warm = ~cold_sp[links[1]] & ~cold_clip[links[0]]
    warm_links = links[:, warm]
    perm = torch.randperm(warm_links.shape[1], generator=gen)
    n_message = round(warm_links.shape[1] * message_fraction)
    message, target = warm_links[:, perm[:n_message]], warm_links[:, perm[n_message:]]

    cold_queries = torch.nonzero(tg.train & cold_sp).flatten()
    warm_queries = torch.unique(target[1])
    queries = torch.cat([cold_queries, warm_queries])
    positives = torch.cat([tg.claim_clips(cold_queries), tg.link_matrix(warm_queries, target)])
    hidden = torch.cat([torch.zeros(len(cold_queries), tg.n_clips, dtype=torch.bool), tg.link_matrix(warm_queries, message)])
    keep = positives.any(dim=1)

    claims = tg.claims[:, ~cold_sp[tg.claims[0]] & ~cold_sp[tg.claims[1]]]
    features = tg.data[FEATURES].edge_index
    features = features[:, ~cold_clip[features[0]]]
    data = tg.data.__copy__()
    for key, edges in ((ILLUSTRATES, message), (SAME_CLAIM, claims), (FEATURES, features)):
        data[key].edge_index = edges
        data[key[2], f"rev_{key[1]}", key[0]].edge_index = edges.flip(0)

    claim_keys = tg.train & ~cold_sp
    claim_positives = tg.claim_matrix(cold_queries) & claim_keys
    has_partner = claim_positives.any(dim=1)
    return Episode(data, message, queries[keep], positives[keep], hidden[keep], cold_queries[has_partner], claim_positives[has_partner], claim_keys)


def multi_positive_nce(logits: torch.Tensor, positives: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rows of -log(sum of softmax over the positives); `excluded` entries leave the softmax."""
    if excluded is not None:
        logits = logits.masked_fill(excluded & ~positives, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=1)).mean()


def episode_loss(model: SarGAT, episode: Episode, config: SarConfig) -> torch.Tensor:
    """Clip InfoNCE on the served score, plus claim_weight x the SAME_CLAIM InfoNCE."""
    out = model(episode.data)
    loss = multi_positive_nce(served_scores(out, episode.queries, episode.illustrates, config.knn_mix) / config.temperature, episode.positives, episode.hidden)
    if config.claim_weight and len(episode.claim_queries):
        logits = out[SP][episode.claim_queries] @ out[SP].T / config.temperature
        not_key = ~episode.claim_keys.unsqueeze(0).expand_as(logits)
        loss = loss + config.claim_weight * multi_positive_nce(logits, episode.claim_positives, not_key)
    return loss


def train_sar(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    config: SarConfig | None = None,
    progress: bool = True,
) -> tuple[SarGAT, dict[str, Any]]:
    """Train SarGAT on the approved links and relations of `split.train`; returns (model in eval mode, history).

    A `validation_fraction` of the training products (default none) can be left out of supervision
    (their links still pass messages when served), for a feedback gate on products the model has not
    learned from; by default the feedback stage validates on a shadow model instead. history: `loss` (per epoch), `seconds`, `train_pairs`, `claim_pairs`,
    `validation_selling_points`.
    """
    config = config or SarConfig()
    with torch_threads(config.threads), seeded(config.seed) as gen:  # the seed decides init, episodes and dropout
        validation = validation_selling_points(graph, split.train, config.validation_fraction, gen)
        tg = training_graph(graph, features, set(split.train) - set(validation))
        if tg.links.shape[1] == 0:
            raise ValueError("no approved ILLUSTRATES links among the training selling points: nothing to train on")
        model = build_model(tg.data, config, text_dim=features[SP].shape[1])
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        history = fit(model, tg, config, optimiser, episode_loss, config.epochs, gen, progress, "SAR train")
    history.update(train_pairs=int(tg.links.shape[1]), claim_pairs=int(tg.claims.shape[1] // 2), validation_selling_points=validation)
    return model, history


def validation_selling_points(graph: AckbGraph, train: list[str], fraction: float, gen: torch.Generator) -> list[str]:
    """The training selling points of a random `fraction` of their products (none below 3 products, never all)."""
    products = sorted({graph.product_of_selling_point[s] for s in train if s in graph.product_of_selling_point})
    if fraction <= 0 or len(products) < 3:
        return []
    count = min(max(1, round(len(products) * fraction)), len(products) - 2)
    held = {products[i] for i in torch.randperm(len(products), generator=gen)[:count].tolist()}
    return [s for s in train if graph.product_of_selling_point.get(s) in held]


def fit(model: SarGAT, tg: TrainingGraph, config: SarConfig, optimiser: Any, loss_fn: Any, epochs: int, gen: torch.Generator, progress: bool, desc: str) -> dict[str, Any]:
    """`epochs` optimiser steps, one sampled episode each; returns {"loss": per epoch, "seconds"}. Leaves the model in eval mode."""
    history: dict[str, Any] = {"loss": []}
    started = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, unit="epoch")
    model.train()
    for _ in bar:
        episode = sample_episode(tg, config.cold_fraction, config.message_fraction, gen)
        loss = loss_fn(model, episode, config)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history["loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    history["seconds"] = time.perf_counter() - started
    model.eval()
    return history


def held_out_metrics(graph: AckbGraph, scores: np.ndarray, sp_ids: list[str]) -> dict[str, float]:
    """Recall@1/5/10, NDCG@10 and MRR of `scores` against the approved clips of `sp_ids`."""
    from retrieval.evaluate import relevant_clips
    from retrieval.metrics import ranking_metrics

    return ranking_metrics(scores, relevant_clips(graph, sp_ids))


def random_recall(graph: AckbGraph, sp_ids: list[str], k: int) -> float:
    """Expected Recall@k of a uniformly random ranking: k / number of clips."""
    return min(1.0, k / max(1, len(graph.nodes[CLIP])))
