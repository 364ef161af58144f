"""An `AckbGraph` plus its features as a torch-geometric `HeteroData`, the SAR model's input.

Node types are the knowledge labels in graph row order; edge types are their relationships plus explicit
`rev_<TYPE>` reverses so messages flow both ways. ILLUSTRATES carries only approved links whose
selling point is in the training set: held-out selling points never see their clips; SAME_CLAIM carries
approved pairs of training selling points, in both directions.
"""

from __future__ import annotations

import numpy as np
import torch

from kb.graph import KNOWLEDGE_LABELS, KNOWLEDGE_RELATIONSHIPS, AckbGraph
from kb.schema import rel_type
from retrieval.pyg import HeteroData

CLIP = "CreativeClip"
SP = "SellingPoint"
ILLUSTRATES = (CLIP, "ILLUSTRATES", SP)
REV_ILLUSTRATES = (SP, "rev_ILLUSTRATES", CLIP)
SAME_CLAIM = (SP, "SAME_CLAIM", SP)
FEATURES = (CLIP, "FEATURES", "Product")


def edge_types() -> list[tuple[str, str, str]]:
    """Every (source, relation, target) the model knows: each relationship and its reverse."""
    result = []
    for spec in map(rel_type, KNOWLEDGE_RELATIONSHIPS):
        result.append((spec.source, spec.type, spec.target))
        result.append((spec.target, f"rev_{spec.type}", spec.source))
    return result


def node_inputs(features: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Per label the input matrix: its text embedding (clips: text ++ visual features)."""
    result = {}
    for label in KNOWLEDGE_LABELS:
        x = features[label]
        if label == CLIP and f"{CLIP}.visual" in features:
            x = np.concatenate([x, features[f"{CLIP}.visual"]], axis=1)
        result[label] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return result


def approved_illustrates(graph: AckbGraph, selling_points: set[str] | None) -> np.ndarray:
    """(2, E) (clip index, selling point index) of approved links into `selling_points` (None: all)."""
    clip_index, sp_index = graph.index(CLIP), graph.index(SP)
    pairs = [
        (clip_index[row["from"]], sp_index[row["to"]])
        for row in graph.relationships["ILLUSTRATES"]
        if row.get("status") == "approved" and (selling_points is None or row["to"] in selling_points)
    ]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2).T


def approved_same_claims(graph: AckbGraph, selling_points: set[str] | None) -> np.ndarray:
    """(2, E) approved SAME_CLAIM pairs with both ends in `selling_points` (None: all), both directions.

    Held-out selling points keep none, so a relation never tells the model what it is scored on.
    """
    index = graph.index(SP)
    pairs = [
        (index[row["from"]], index[row["to"]])
        for row in graph.relationships["SAME_CLAIM"]
        if row.get("status") == "approved" and (selling_points is None or {row["from"], row["to"]} <= selling_points)
    ]
    both = pairs + [(b, a) for a, b in pairs]
    return np.array(both, dtype=np.int64).reshape(-1, 2).T


def set_illustrates(data: HeteroData, edges: torch.Tensor | np.ndarray) -> HeteroData:
    """A shallow copy of `data` whose ILLUSTRATES (and reverse) edges are `edges` (2, E)."""
    edges = torch.as_tensor(edges, dtype=torch.long).reshape(2, -1)
    out = data.__copy__()
    out[ILLUSTRATES].edge_index = edges
    out[REV_ILLUSTRATES].edge_index = edges.flip(0)
    return out


def to_heterodata(
    graph: AckbGraph,
    features: dict[str, np.ndarray],
    train_selling_points: set[str] | None,
) -> HeteroData:
    """HeteroData with x per label and every edge type (+ rev_); ILLUSTRATES: approved, train only.

    `train_selling_points=None` keeps the approved links of every selling point (serving, no split).
    """
    data = HeteroData()
    for label, x in node_inputs(features).items():
        if x.shape[0] != len(graph.nodes[label]):
            raise ValueError(f"features for {label} have {x.shape[0]} rows, the graph has {len(graph.nodes[label])} nodes")
        data[label].x = x
        data[label].num_nodes = x.shape[0]
    for spec in map(rel_type, KNOWLEDGE_RELATIONSHIPS):
        if spec.type == "ILLUSTRATES":
            edges = approved_illustrates(graph, train_selling_points)
        elif spec.type == "SAME_CLAIM":
            edges = approved_same_claims(graph, train_selling_points)
        else:
            edges = graph.edges(spec.type)
        index = torch.from_numpy(edges).long().reshape(2, -1)
        data[spec.source, spec.type, spec.target].edge_index = index
        data[spec.target, f"rev_{spec.type}", spec.source].edge_index = index.flip(0)
    return data
