"""SarRetriever: a trained SarGAT over one graph, serving clip rankings for selling points.

Scores are GAT cosine + `knn_mix` × cosine to the clip's prototype (the mean embedding of the
selling points it illustrates: a learned nearest-neighbour vote) + clip text · (`text_mix` × the
selling point's text + `vote_mix` × its judged-neighbour vote, `retrieval.vote`), in the same
sentence embeddings the model reads; all three mixes 0 give the pure GAT score. Message passing,
prototypes and the vote's labelled selling points use the approved ILLUSTRATES links of
`message_selling_points` (None: every selling point).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from kb.graph import AckbGraph
from kdcvg.errors import BadInputError, NotFoundError
from retrieval.features import TextEncoder
from retrieval.hetero import CLIP, ILLUSTRATES, SP, to_heterodata
from retrieval.model import SarGAT, clip_prototypes
from retrieval.pyg import HeteroData
from retrieval.train import SarConfig
from retrieval.vote import labelled_prototypes, text_queries


class SarRetriever:
    """Embeddings and score matrices of a trained model on `graph`; embeds fresh selling-point texts."""

    def __init__(
        self,
        model: SarGAT,
        graph: AckbGraph,
        features: dict[str, np.ndarray],
        message_selling_points: set[str] | None = None,
        *,
        text_mix: float = 1.0,
        knn_mix: float = 0.0,
        vote_mix: float = 0.0,
        encoder: TextEncoder | None = None,
    ) -> None:
        self.model = model.eval()
        self.graph = graph
        self.features = features
        self.text_mix = text_mix
        self.knn_mix = knn_mix
        self.vote_mix = vote_mix
        self._encoder = encoder
        self.data: HeteroData = to_heterodata(graph, features, message_selling_points)
        self.vote_texts, self.vote_prototypes = labelled_prototypes(graph, features, message_selling_points)
        expected = model.spec["in_dims"]
        if set(expected) != set(self.data.node_types):
            raise BadInputError(
                f"this checkpoint was trained on other node types ({', '.join(sorted(expected))}; SAR now reads "
                f"{', '.join(sorted(self.data.node_types))}): retrain with `kdcvg retrieval train`"
            )
        found = {label: int(self.data[label].x.shape[1]) for label in expected}
        if found != expected:
            changed = ", ".join(f"{label} {expected[label]} -> {found[label]}" for label in expected if found[label] != expected[label])
            raise BadInputError(
                f"this checkpoint was trained on other node features ({changed} inputs; e.g. open_clip features "
                "switched on or off since): retrain with `kdcvg retrieval train`"
            )
        self._out: dict[str, np.ndarray] | None = None

    @classmethod
    def for_config(
        cls, model: SarGAT, graph: AckbGraph, features: dict[str, np.ndarray], message_selling_points: set[str] | None, config: SarConfig, **kwargs
    ) -> SarRetriever:
        """Serve `model` with the mixes of `config` (`text_mix`, `knn_mix`, `vote_mix`) unless given."""
        mixes = {"text_mix": config.text_mix, "knn_mix": config.knn_mix, "vote_mix": config.vote_mix}
        return cls(model, graph, features, message_selling_points, **(mixes | kwargs))

    @classmethod
    def from_checkpoint(cls, path: Path, graph: AckbGraph, features: dict[str, np.ndarray], **kwargs) -> SarRetriever:
        """Load a checkpoint (a version folder or a root with `latest`) and serve it on `graph`.

        Uses the checkpoint's training selling points for message passing and its mixes unless
        given; note a graph other than the training one changes the embeddings.
        """
        from retrieval.checkpoint import load_checkpoint

        model, config, meta = load_checkpoint(path)
        train = meta.get("train_selling_points")
        message = kwargs.pop("message_selling_points", set(train) if train is not None else None)
        return cls.for_config(model, graph, features, message, config, **kwargs)

    @property
    def encoder(self) -> TextEncoder:
        """The encoder that embedded `features`' texts: a fresh text must be embedded by the same one, never a default."""
        if self._encoder is None:
            raise BadInputError("this SarRetriever has no text encoder: pass encoder= (the TextEncoder that embedded the features) to embed new texts")
        return self._encoder

    def _forward(self, data: HeteroData) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {t: v.numpy() for t, v in self.model(data).items()}

    @cached_property
    def clip_keys(self) -> np.ndarray:
        """(clips, d) what a query embedding is scored against: clip embedding + knn_mix × clip prototype."""
        if not self.knn_mix:
            return self.clip_embeddings()
        with torch.no_grad():
            prototypes = clip_prototypes(torch.from_numpy(self.outputs[SP]), self.data[ILLUSTRATES].edge_index, self.outputs[CLIP].shape[0])
        return self.clip_embeddings() + self.knn_mix * prototypes.numpy()

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        if self._out is None:
            self._out = self._forward(self.data)
        return self._out

    def clip_embeddings(self) -> np.ndarray:
        """(clips, d) L2-normalised clip embeddings in graph order."""
        return self.outputs[CLIP]

    def _sp_rows(self, sp_ids: list[str]) -> list[int]:
        index = self.graph.index(SP)
        unknown = [s for s in sp_ids if s not in index]
        if unknown:
            raise NotFoundError(f"unknown SellingPoint id(s): {', '.join(map(repr, unknown[:5]))}")
        return [index[s] for s in sp_ids]

    def selling_point_embeddings(self, sp_ids: list[str]) -> np.ndarray:
        """(len(sp_ids), d) embeddings of known selling points; KeyError for an unknown id."""
        return self.outputs[SP][self._sp_rows(sp_ids)]

    def text_queries(self, texts: np.ndarray) -> np.ndarray:
        """(Q, d) the text part of queries for text embeddings (Q, d): text_mix × text + vote_mix × judged-neighbour vote."""
        return text_queries(texts, self.text_mix, self.vote_mix, self.vote_texts, self.vote_prototypes)

    def score_matrix(self, sp_ids: list[str]) -> np.ndarray:
        """(len(sp_ids), clips): GAT cosine + knn_mix × prototype cosine + clip text · text query (higher is better)."""
        rows = self._sp_rows(sp_ids)
        scores = self.outputs[SP][rows] @ self.clip_keys.T
        if self.text_mix or self.vote_mix:
            scores = scores + self.text_queries(self.features[SP][rows]) @ self.features[CLIP].T
        return scores

    def _fresh(self, text: str, product_id: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(GAT embedding, text embedding) of a new selling point: a full forward with one node added."""
        if not text or not text.strip():
            raise BadInputError("selling-point text is empty")
        products = self.graph.index("Product")
        if product_id is not None and product_id not in products:
            raise NotFoundError(f"unknown Product id {product_id!r} (not in this graph of {len(products)} products)")
        vector = self.encoder.encode([text.strip()])
        data = self.data.__copy__()
        n = self.data[SP].num_nodes
        data[SP].x = torch.cat([self.data[SP].x, torch.from_numpy(vector)])
        data[SP].num_nodes = n + 1
        if product_id is not None:
            edge = torch.tensor([[products[product_id]], [n]], dtype=torch.long)
            key = ("Product", "HAS_SELLING_POINT", SP)
            data[key].edge_index = torch.cat([self.data[key].edge_index, edge], dim=1)
            data[SP, "rev_HAS_SELLING_POINT", "Product"].edge_index = data[key].edge_index.flip(0)
        # at demo scale a full forward is cheap (tens of ms); a large graph would take the node's 2-hop subgraph
        return self._forward(data)[SP][n], vector[0]

    def embed_text(self, text: str, product_id: str | None = None) -> np.ndarray:
        """(d,) embedding of a selling point typed in fresh, linked to `product_id` if given."""
        return self._fresh(text, product_id)[0]

    def score_text(self, text: str, product_id: str | None = None) -> np.ndarray:
        """(clips,) scores of every clip for a fresh selling-point text (same mix as score_matrix)."""
        embedding, vector = self._fresh(text, product_id)
        return self.clip_keys @ embedding + self.features[CLIP] @ self.text_queries(vector[None, :])[0]

    def top_clips(self, scores: np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """The k best (clip id, score) of one score row."""
        ids = self.graph.ids(CLIP)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(ids[i], float(scores[i])) for i in order]

    def index_vectors(self) -> np.ndarray:
        """(clips, 1 + 2d) vectors for an ANN index: [pad, clip key, text embedding] per clip.

        The pad entry gives every row the same norm (a clip key's norm varies with its prototype),
        and queries have 0 there, so cosine ranking over the rows equals ranking by
        `query_vector(...) · row` = the same score as `score_text` / `score_matrix`.
        """
        keys = self.clip_keys
        ceiling = (1.0 + abs(self.knn_mix)) ** 2
        pad = np.sqrt(np.maximum(ceiling - (keys**2).sum(axis=1), 0.0))[:, None]
        return np.concatenate([pad, keys, self.features[CLIP]], axis=1).astype(np.float32)

    def query_vector(self, text: str, product_id: str | None = None) -> np.ndarray:
        """(1 + 2d,) query for `index_vectors`: [0, GAT embedding, text query] of a fresh text."""
        embedding, vector = self._fresh(text, product_id)
        return np.concatenate([[0.0], embedding, self.text_queries(vector[None, :])[0]]).astype(np.float32)

    def selling_point_queries(self) -> np.ndarray:
        """(selling points, 1 + 2d) queries for `index_vectors` of every selling point in the graph, graph order."""
        zeros = np.zeros((self.outputs[SP].shape[0], 1), dtype=np.float32)
        return np.concatenate([zeros, self.outputs[SP], self.text_queries(self.features[SP])], axis=1).astype(np.float32)

    def selling_point_query_vector(self, sp_id: str) -> np.ndarray:
        """(1 + 2d,) query for `index_vectors` of a selling point already in the graph."""
        return self.selling_point_queries()[self._sp_rows([sp_id])[0]]
