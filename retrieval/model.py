"""SarGAT: a heterogeneous graph attention network that embeds selling points and clips together.

Per-type input projections, `layers` rounds of HeteroConv(GATv2Conv) message passing (residual,
LayerNorm, ReLU, dropout), then SellingPoint/CreativeClip output heads into one L2-normalised
d-space. Both heads add a projection of the node's own text embedding (one Linear shared by the
two types), so a node with few or no neighbours still embeds by its text (inductive), and an
untrained model already ranks roughly like text cosine.

`clip_prototypes` places each clip in the selling-point space too: the mean embedding of the
selling points it illustrates (approved, message-passing links). Scoring a query against it is a
learned nearest-neighbour vote: clips of the labelled selling points nearest the query score high,
which is how a new product's claims find footage made for the same claim in other words.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retrieval import EMBEDDED_LABELS
from retrieval.pyg import GATv2Conv, HeteroConv, HeteroData

OUTPUT_TYPES = EMBEDDED_LABELS


class SarGAT(nn.Module):
    """Selling-point/clip encoder over the ACKB heterograph; `forward(data)` -> embeddings per output type."""

    def __init__(
        self,
        node_types: list[str],
        edge_types: list[tuple[str, str, str]],
        in_dims: dict[str, int],
        *,
        text_dim: int = 384,
        hidden: int = 128,
        out_dim: int = 128,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.spec: dict[str, Any] = {
            "node_types": list(node_types),
            "edge_types": [list(t) for t in edge_types],
            "in_dims": dict(in_dims),
            "text_dim": text_dim,
            "hidden": hidden,
            "out_dim": out_dim,
            "layers": layers,
            "heads": heads,
            "dropout": dropout,
        }
        self.text_dim = text_dim
        self.dropout = dropout
        self.inputs = nn.ModuleDict({t: nn.Linear(in_dims[t], hidden) for t in node_types})
        # explicit (hidden, hidden) in-channels (not lazy -1): parameters exist before the first forward,
        # so optimisers and load_state_dict work on a freshly built model.
        self.convs = nn.ModuleList(
            HeteroConv(
                {tuple(t): GATv2Conv((hidden, hidden), hidden, heads=heads, concat=False, add_self_loops=False) for t in edge_types},
                aggr="sum",
            )
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.ModuleDict({t: nn.LayerNorm(hidden) for t in node_types}) for _ in range(layers))
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, out_dim) for t in OUTPUT_TYPES})
        self.text_skip = nn.Linear(text_dim, out_dim, bias=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SarGAT:
        """Rebuild an (untrained) model from `model.spec` (checkpoints store it)."""
        return cls(
            spec["node_types"],
            [tuple(t) for t in spec["edge_types"]],
            spec["in_dims"],
            text_dim=spec["text_dim"],
            hidden=spec["hidden"],
            out_dim=spec["out_dim"],
            layers=spec["layers"],
            heads=spec["heads"],
            dropout=spec["dropout"],
        )

    def forward(self, data: HeteroData) -> dict[str, Tensor]:
        """L2-normalised (N, out_dim) embeddings for SellingPoint and CreativeClip."""
        x_dict = {t: data[t].x for t in self.inputs}
        h = {t: F.relu(self.inputs[t](x)) for t, x in x_dict.items()}
        edge_index = {t: data[t].edge_index for t in data.edge_types if t in self._edge_set}
        for conv, norms in zip(self.convs, self.norms):
            messages = conv(h, edge_index)
            h = {
                t: F.dropout(F.relu(norms[t](h[t] + messages[t])) if t in messages else h[t], self.dropout, self.training)
                for t in h
            }
        out = {}
        for t in OUTPUT_TYPES:
            z = self.heads[t](h[t]) + self.text_skip(x_dict[t][:, : self.text_dim])
            out[t] = F.normalize(z, dim=-1)
        return out

    @property
    def _edge_set(self) -> set[tuple[str, str, str]]:
        return {tuple(t) for t in self.spec["edge_types"]}


def clip_prototypes(sp_embeddings: Tensor, illustrates: Tensor, n_clips: int) -> Tensor:
    """(clips, d) mean embedding of the selling points each clip illustrates (zeros for a clip with none).

    `illustrates` is (2, E) (clip index, selling point index): the links the model may see.
    """
    total = torch.zeros(n_clips, sp_embeddings.shape[1], dtype=sp_embeddings.dtype)
    total = total.index_add(0, illustrates[0], sp_embeddings[illustrates[1]])
    count = torch.zeros(n_clips, dtype=sp_embeddings.dtype).index_add(0, illustrates[0], torch.ones(illustrates.shape[1], dtype=sp_embeddings.dtype))
    return total / count.clamp(min=1.0).unsqueeze(1)
