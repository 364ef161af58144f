"""Training SAR: InfoNCE between training selling points and their approved clips, with hard negatives.

Against leakage, each epoch splits the training ILLUSTRATES links in two (resampled every epoch):
message-passing edges go into the graph, supervision edges are scored — so the model cannot just
look up the link it is asked to predict. At inference every training link passes messages.
Also here: the evaluation metrics (Recall@k, MRR) and the text-cosine baseline they are compared to.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kb.graph import AckbGraph
from retrieval.hetero import CLIP, SP, approved_illustrates, edge_types, set_illustrates, to_heterodata
from retrieval.model import SarGAT
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
    negatives: int = 32  # per positive pair: half hard (same category), half random
    message_fraction: float = 0.5  # share of training links that pass messages each epoch
    seed: int = 0
    test_fraction: float = 0.2
    text_mix: float = 1.0  # serving score = GAT cosine + text_mix * text cosine (chosen on a validation split)
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


def hard_negative_pools(graph: AckbGraph, selling_points: list[str]) -> dict[int, torch.Tensor]:
    """selling point index -> clip indices of its category (other products, or same product) minus its approved clips."""
    clip_index, sp_index = graph.index(CLIP), graph.index(SP)
    approved = graph.judgements("approved")
    clips_by_category: dict[str, list[int]] = defaultdict(list)
    for clip in graph.ids(CLIP):
        product = graph.product_of_clip.get(clip)
        clips_by_category[graph.category_of_product.get(product, "")].append(clip_index[clip])
    pools = {}
    for sp in selling_points:
        category = graph.category_of_product.get(graph.product_of_selling_point.get(sp, ""), "")
        own = {clip_index[c] for c in approved.get(sp, ())}
        pools[sp_index[sp]] = torch.tensor([c for c in clips_by_category.get(category, []) if c not in own], dtype=torch.long)
    return pools


def _sample_negatives(
    sps: torch.Tensor, pools: dict[int, torch.Tensor], positives: dict[int, set[int]], n_clips: int, count: int, gen: torch.Generator
) -> torch.Tensor:
    """(P, count) negative clip indices per supervised pair: count//2 hard, rest random (never a positive)."""
    rows = []
    hard_n = count // 2
    for sp in sps.tolist():
        pool = pools.get(sp, torch.empty(0, dtype=torch.long))
        hard = pool[torch.randint(len(pool), (hard_n,), generator=gen)] if len(pool) else torch.empty(0, dtype=torch.long)
        rand = torch.randint(n_clips, (count - len(hard),), generator=gen)
        bad = torch.tensor([c in positives[sp] for c in rand.tolist()], dtype=torch.bool)
        if bad.any() and len(pool):  # replace accidental positives by hard negatives
            rand[bad] = pool[torch.randint(len(pool), (int(bad.sum()),), generator=gen)]
        rows.append(torch.cat([hard, rand]))
    return torch.stack(rows)


def info_nce(out: dict[str, torch.Tensor], pairs: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE: each (clip, selling point) pair against its negatives, cosine / temperature."""
    sp = out[SP][pairs[1]]  # (P, d)
    pos = (sp * out[CLIP][pairs[0]]).sum(-1, keepdim=True)  # (P, 1)
    neg = torch.einsum("pd,pkd->pk", sp, out[CLIP][negatives])  # (P, K)
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(pairs[0]), dtype=torch.long))


def train_sar(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    config: SarConfig | None = None,
    progress: bool = True,
) -> tuple[SarGAT, dict[str, Any]]:
    """Train SarGAT on the approved links of `split.train`; returns (model in eval mode, history).

    history: `loss` (per epoch), `seconds`, `train_pairs`.
    """
    config = config or SarConfig()
    with torch_threads(config.threads):
        return _train_sar(graph, features, split, config, progress)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` torch CPU threads, restoring the previous setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_sar(graph: AckbGraph, features: dict[str, np.ndarray], split: Split, config: SarConfig, progress: bool) -> tuple[SarGAT, dict[str, Any]]:
    with seeded(config.seed) as gen:  # the seed decides the initial weights, the link order and negatives, and dropout
        return _train_epochs(graph, features, split, config, progress, gen)


def _train_epochs(
    graph: AckbGraph, features: dict[str, np.ndarray], split: Split, config: SarConfig, progress: bool, gen: torch.Generator
) -> tuple[SarGAT, dict[str, Any]]:
    train = set(split.train)
    data = to_heterodata(graph, features, train)
    model = build_model(data, config, text_dim=features[SP].shape[1])
    all_edges = torch.from_numpy(approved_illustrates(graph, train))
    if all_edges.shape[1] == 0:
        raise ValueError("no approved ILLUSTRATES links among the training selling points: nothing to train on")
    positives: dict[int, set[int]] = defaultdict(set)
    for clip, sp in all_edges.T.tolist():
        positives[sp].add(clip)
    pools = hard_negative_pools(graph, sorted(train))
    n_clips = data[CLIP].num_nodes
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: dict[str, Any] = {"loss": [], "train_pairs": int(all_edges.shape[1])}
    started = time.perf_counter()
    bar = tqdm(range(config.epochs), desc="SAR train", disable=not progress, unit="epoch")
    model.train()
    for _ in bar:
        perm = torch.randperm(all_edges.shape[1], generator=gen)
        n_message = round(all_edges.shape[1] * config.message_fraction)
        message, supervise = all_edges[:, perm[:n_message]], all_edges[:, perm[n_message:]]
        if supervise.shape[1] == 0:
            message, supervise = all_edges[:, :0], all_edges
        negatives = _sample_negatives(supervise[1], pools, positives, n_clips, config.negatives, gen)
        out = model(set_illustrates(data, message))
        loss = info_nce(out, supervise, negatives, config.temperature)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history["loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    history["seconds"] = time.perf_counter() - started
    model.eval()
    return model, history


def held_out_metrics(graph: AckbGraph, scores: np.ndarray, sp_ids: list[str]) -> dict[str, float]:
    """Recall@1/5/10, NDCG@10 and MRR of `scores` against the approved clips of `sp_ids`."""
    from retrieval.evaluate import relevant_clips
    from retrieval.metrics import ranking_metrics

    return ranking_metrics(scores, relevant_clips(graph, sp_ids))


def random_recall(graph: AckbGraph, sp_ids: list[str], k: int) -> float:
    """Expected Recall@k of a uniformly random ranking: k / number of clips."""
    return min(1.0, k / max(1, len(graph.nodes[CLIP])))
