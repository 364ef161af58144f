"""RL refinement of SAR with annotator feedback: REINFORCE over each selling point's top-K clips.

Policy: softmax(score / temperature) over the current model's top-K clips of each TRAIN selling
point (score = GAT cosine + text_mix × text cosine, as served). Reward of choosing clip c:
w_align·alignment(sp, c) + w_motion·(share of the category's approved clips with c's Motion)
+ w_judge·(+1 approved / −1 rejected / 0 otherwise, ILLUSTRATES c→sp). alignment is
cos(text(sp), text(c)); when the features hold CLIP embeddings (`SellingPoint.clip_text` and
`CreativeClip.clip_image`, see retrieval.features) it is the mean of that text cosine and the CLIP
image-text cosine cos(clip_text(sp), clip_image(c)) — for clips with a video; a clip without one
(zero image embedding) keeps the text cosine alone. Baseline: the reward of the
greedy (top) choice — self-critical. Judgements are read from the graph on every call, so ratings
recorded since the last run shape the next one.
"""

from __future__ import annotations

import copy
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from kb.graph import AckbGraph
from retrieval.hetero import CLIP, SP, to_heterodata
from retrieval.model import SarGAT
from retrieval.split import Split
from retrieval.train import seeded, torch_threads


@dataclass
class FeedbackConfig:
    """Hyper-parameters of the REINFORCE stage and its reward weights."""

    epochs: int = 5
    lr: float = 3e-4
    top_k: int = 20
    samples: int = 8  # actions sampled per selling point per epoch
    temperature: float = 0.1  # policy softmax temperature over scores
    text_mix: float = 1.0  # as SarConfig.text_mix: the score the policy (and serving) uses
    w_align: float = 1.0
    w_motion: float = 0.5
    w_judge: float = 1.0
    seed: int = 0
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judgement_matrix(graph: AckbGraph) -> np.ndarray:
    """(selling points, clips): +1 approved, −1 rejected, 0 proposed/none — read from the graph now."""
    sp_index, clip_index = graph.index(SP), graph.index(CLIP)
    judge = np.zeros((len(sp_index), len(clip_index)), dtype=np.float32)
    for row in graph.relationships["ILLUSTRATES"]:
        value = {"approved": 1.0, "rejected": -1.0}.get(row.get("status"), 0.0)
        judge[sp_index[row["to"]], clip_index[row["from"]]] = value
    return judge


def motion_suitability(graph: AckbGraph) -> np.ndarray:
    """(clips,): share of approved clips in the clip's category that have the clip's Motion."""
    approved_clips = {c for clips in graph.judgements("approved").values() for c in clips}
    category = lambda clip: graph.category_of_product.get(graph.product_of_clip.get(clip, ""), "")
    per_category: dict[str, Counter] = defaultdict(Counter)
    for clip in approved_clips:
        per_category[category(clip)][graph.motion_of_clip.get(clip)] += 1
    result = np.zeros(len(graph.nodes[CLIP]), dtype=np.float32)
    for i, clip in enumerate(graph.ids(CLIP)):
        counts = per_category.get(category(clip))
        if counts:
            result[i] = counts[graph.motion_of_clip.get(clip)] / sum(counts.values())
    return result


def alignment_matrix(features: dict[str, np.ndarray]) -> np.ndarray:
    """(selling points, clips): text cosine, averaged with the CLIP image-text cosine when available."""
    align = features[SP] @ features[CLIP].T
    clip_text, clip_image = features.get(f"{SP}.clip_text"), features.get(f"{CLIP}.clip_image")
    if clip_text is None or clip_image is None:
        return align
    has_image = np.linalg.norm(clip_image, axis=1) > 0  # clips without a video have a zero row
    return np.where(has_image[None, :], 0.5 * (align + clip_text @ clip_image.T), align)


def reward_matrix(graph: AckbGraph, features: dict[str, np.ndarray], config: FeedbackConfig) -> np.ndarray:
    """(selling points, clips) reward of retrieving each clip for each selling point."""
    align = alignment_matrix(features)
    return (config.w_align * align + config.w_motion * motion_suitability(graph)[None, :] + config.w_judge * judgement_matrix(graph)).astype(np.float32)


def refine_with_feedback(
    retriever_or_model: Any,
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    split: Split,
    config: FeedbackConfig | None = None,
    progress: bool = True,
) -> tuple[SarGAT, dict[str, Any]]:
    """REINFORCE (self-critical) on a copy of the model; returns (refined model, history).

    history: `mean_reward` (sampled, per epoch), `greedy_reward` (top choice, per epoch), `seconds`.
    """
    config = config or FeedbackConfig()
    base = getattr(retriever_or_model, "model", retriever_or_model)
    if not isinstance(base, SarGAT):
        raise TypeError(f"expected a SarGAT or a SarRetriever, got {type(retriever_or_model).__name__}")
    model = copy.deepcopy(base)
    with torch_threads(config.threads), seeded(config.seed) as gen:
        return model, _reinforce(model, graph, features, split, config, progress, gen)


def _reinforce(
    model: SarGAT, graph: AckbGraph, features: dict[str, np.ndarray], split: Split, config: FeedbackConfig, progress: bool, gen: torch.Generator
) -> dict[str, Any]:
    data = to_heterodata(graph, features, set(split.train))
    sp_index = graph.index(SP)
    rows = torch.tensor([sp_index[s] for s in split.train], dtype=torch.long)
    rewards = torch.from_numpy(reward_matrix(graph, features, config))[rows]  # (S, clips)
    text = torch.from_numpy(features[SP][rows.numpy()] @ features[CLIP].T) * config.text_mix
    k = min(config.top_k, data[CLIP].num_nodes)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    history: dict[str, Any] = {"mean_reward": [], "greedy_reward": []}
    started = time.perf_counter()
    model.eval()  # no dropout: the greedy baseline and the samples see the same policy
    for _ in tqdm(range(config.epochs), desc="SAR feedback", disable=not progress, unit="epoch"):
        out = model(data)
        scores = out[SP][rows] @ out[CLIP].T + text  # (S, clips)
        top = scores.detach().topk(k, dim=1).indices  # (S, K) candidates, best first
        logits = scores.gather(1, top) / config.temperature
        log_probs = torch.log_softmax(logits, dim=1)
        actions = torch.multinomial(log_probs.detach().exp(), config.samples, replacement=True, generator=gen)  # (S, M)
        chosen = top.gather(1, actions)
        reward = rewards.gather(1, chosen)  # (S, M)
        baseline = rewards.gather(1, top[:, :1])  # greedy choice's reward
        loss = -((reward - baseline) * log_probs.gather(1, actions)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history["mean_reward"].append(reward.mean().item())
        history["greedy_reward"].append(baseline.mean().item())
    history["seconds"] = time.perf_counter() - started
    model.eval()
    return history
