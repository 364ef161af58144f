"""SarGAT's forward pass in numpy, on weights exported from a trained model: serving without torch.

Why: a one-shot `kdcvg retrieve` embeds one new selling point with the trained GAT; importing torch
and torch-geometric for that takes longer than the rest of the call. What: `export_weights(model)`
(run where torch is loaded anyway: training, or the first call on new knowledge) turns the model's
parameters into named float32 arrays; `NumpySarGAT(weights, spec).forward(x, edges)` computes what
`SarGAT.forward` computes in eval mode (GATv2 attention per edge type, summed per node type,
residual LayerNorm + ReLU, output heads plus the shared text projection, L2-normalised).
`tests/test_sar_model.py` holds the two to the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrieval import EMBEDDED_LABELS

EdgeType = tuple[str, str, str]
GAT_PARAMETERS = frozenset({"att", "bias", "lin_l.weight", "lin_l.bias", "lin_r.weight", "lin_r.bias"})
NEGATIVE_SLOPE = 0.2  # GATv2Conv's default, which SarGAT uses
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which SarGAT uses


def edge_key(edge_type: EdgeType) -> str:
    """An edge type as one name: `source__relation__target`."""
    return "__".join(edge_type)


def export_weights(model: Any) -> dict[str, np.ndarray]:
    """A SarGAT's parameters as float32 arrays named `inputs/<type>/weight`, `convs/<layer>/<edge>/att`, ..."""
    weights: dict[str, np.ndarray] = {}

    def add(prefix: str, module: Any) -> None:
        for name, tensor in module.state_dict().items():
            weights[f"{prefix}/{name.replace('.', '/')}"] = tensor.detach().cpu().numpy().astype(np.float32)

    for node_type, linear in model.inputs.items():
        add(f"inputs/{node_type}", linear)
    for layer, conv in enumerate(model.convs):
        for edge_type, gat in conv.convs.items():
            unknown = set(gat.state_dict()) - GAT_PARAMETERS
            if unknown:
                raise ValueError(f"cannot export {type(gat).__name__} with parameters {sorted(unknown)} (residual or edge features)")
            add(f"convs/{layer}/{edge_key(tuple(edge_type))}", gat)
    for layer, norms in enumerate(model.norms):
        for node_type, norm in norms.items():
            add(f"norms/{layer}/{node_type}", norm)
    for node_type, head in model.heads.items():
        add(f"heads/{node_type}", head)
    add("text_skip", model.text_skip)
    return weights


def _linear(x: np.ndarray, weights: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    out = x @ weights[f"{prefix}/weight"].T
    bias = weights.get(f"{prefix}/bias")
    return out if bias is None else out + bias


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


class NumpySarGAT:
    """SarGAT in eval mode on numpy arrays; `spec` is the model's `spec` (checkpoints store it)."""

    def __init__(self, weights: dict[str, np.ndarray], spec: dict[str, Any]) -> None:
        self.w = weights
        self.spec = spec
        self.node_types: list[str] = list(spec["node_types"])
        self.edge_types: list[EdgeType] = [tuple(t) for t in spec["edge_types"]]  # type: ignore[misc]
        self.heads: int = spec["heads"]

    def _gatv2(self, prefix: str, source: np.ndarray, target: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """GATv2Conv((hidden, hidden), hidden, heads, concat=False, add_self_loops=False) from `source` to `target` nodes."""
        w, heads = self.w, self.heads
        x_l = _linear(source, w, f"{prefix}/lin_l").reshape(len(source), heads, -1)
        x_r = _linear(target, w, f"{prefix}/lin_r").reshape(len(target), heads, -1)
        src, dst = edges[0], edges[1]
        e = x_l[src] + x_r[dst]
        e = np.where(e > 0, e, NEGATIVE_SLOPE * e)
        logits = (e * w[f"{prefix}/att"][0]).sum(-1)  # (E, heads)
        highest = np.full((len(target), heads), -np.inf, dtype=np.float32)
        np.maximum.at(highest, dst, logits)
        weight = np.exp(logits - highest[dst])
        total = np.zeros((len(target), heads), dtype=np.float32)
        np.add.at(total, dst, weight)
        alpha = weight / (total[dst] + 1e-16)  # torch_geometric.utils.softmax
        out = np.zeros((len(target), heads, x_l.shape[2]), dtype=np.float32)
        np.add.at(out, dst, x_l[src] * alpha[..., None])
        return out.mean(axis=1) + w[f"{prefix}/bias"]

    def forward(self, x: dict[str, np.ndarray], edges: dict[EdgeType, np.ndarray]) -> dict[str, np.ndarray]:
        """L2-normalised embeddings per output type, as `SarGAT.forward` on the same inputs and (2, E) edge arrays."""
        w = self.w
        h = {t: np.maximum(_linear(x[t], w, f"inputs/{t}"), 0) for t in self.node_types}
        for layer in range(self.spec["layers"]):
            messages: dict[str, np.ndarray] = {}
            for edge_type in self.edge_types:
                if edge_type not in edges:
                    continue
                source, _, target = edge_type
                out = self._gatv2(f"convs/{layer}/{edge_key(edge_type)}", h[source], h[target], edges[edge_type])
                messages[target] = messages[target] + out if target in messages else out
            h = {
                t: np.maximum(_layer_norm(h[t] + messages[t], w[f"norms/{layer}/{t}/weight"], w[f"norms/{layer}/{t}/bias"]), 0) if t in messages else h[t]
                for t in h
            }
        result = {}
        for t in EMBEDDED_LABELS:
            z = _linear(h[t], w, f"heads/{t}") + _linear(x[t][:, : self.spec["text_dim"]], w, "text_skip")
            result[t] = (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return result
