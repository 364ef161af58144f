"""Serving a SAR checkpoint from an on-disk bundle, so a warm `kdcvg retrieve` reads files instead of importing torch.

Why: one query needs the graph's rows (filters and evidence), the model's node inputs and
message-passing edges, the clip index and one forward pass; reading the knowledge, building
features and importing torch and torch-geometric cost seconds per call, the rest milliseconds.
What: `open_bundle` looks for a bundle under `<cache>/sar-serving/<key>`, where the key hashes
the knowledge's fingerprint (`knowledge_fingerprint`: per knowledge label and relationship type
the count, the newest `updated_at` and the sum of `version`s, and the curation audit trail's size
and newest entry, read in one transaction), the checkpoint version and the encoders' identities.
On a miss it builds one with torch (the features cache, the checkpoint's index when the knowledge
is the one it was trained on) and writes it to a staging folder renamed into place, so a crash
never leaves half a bundle. A hit loads numpy arrays and JSON, and `ServingSar` answers with the
numpy forward pass (retrieval.gat_numpy) and the numpy text encoder (retrieval.bert_numpy).

The fingerprint sees every change made through the store's repository, curation, import and
SAR's proposals (they set `updated_at`/`version` or add counts and audit rows); a raw Cypher write
that changes a property without touching `updated_at` or `version` is not seen: delete
`<cache>/sar-serving` after one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from kb.graph import KNOWLEDGE_LABELS, KNOWLEDGE_RELATIONSHIPS, AckbGraph, graph_from_store
from kb.schema import AUDIT_LABEL, rel_type
from kb.store import GraphStore, Transaction
from kdcvg.errors import BadInputError, NotFoundError
from retrieval.features import TextEncoder
from retrieval.gat_numpy import EdgeType, NumpySarGAT, edge_key
from retrieval.index import ClipIndex
from retrieval.vote import text_queries

if TYPE_CHECKING:
    from kdcvg.config import Settings

FORMAT = 3  # bump when a bundle's content changes meaning
FOLDER = "sar-serving"
KEEP = 4  # bundles kept per cache (newest first); older ones are removed when a new one is written
SP, CLIP, PRODUCT = "SellingPoint", "CreativeClip", "Product"
HAS_SELLING_POINT: EdgeType = (PRODUCT, "HAS_SELLING_POINT", SP)
REV_HAS_SELLING_POINT: EdgeType = (SP, "rev_HAS_SELLING_POINT", PRODUCT)


def knowledge_fingerprint(store: GraphStore) -> dict[str, list[Any]]:
    """Per knowledge label/relationship type [count, newest updated_at, sum of versions], and the audit trail's [count, newest id]."""

    def work(tx: Transaction) -> dict[str, list[Any]]:
        parts: dict[str, list[Any]] = {}
        for label in KNOWLEDGE_LABELS:
            row = tx.run(f"MATCH (n:{label}) RETURN count(n) AS total, max(n.updated_at) AS latest, sum(n.version) AS versions")[0]
            parts[label] = [row["total"], row["latest"], row["versions"]]
        for type_ in KNOWLEDGE_RELATIONSHIPS:
            spec = rel_type(type_)
            latest = "max(r.updated_at)" if "updated_at" in spec.properties else "''"
            row = tx.run(f"MATCH (:{spec.source})-[r:{type_}]->(:{spec.target}) RETURN count(r) AS total, {latest} AS latest")[0]
            parts[type_] = [row["total"], row["latest"]]
        row = tx.run(f"MATCH (a:{AUDIT_LABEL}) RETURN count(a) AS total, max(a.id) AS latest")[0]
        parts[AUDIT_LABEL] = [row["total"], row["latest"]]
        return parts

    return store.read(work)


def _clip_identity(settings: Settings) -> list[Any] | None:
    """The configured open_clip model as name, file, size and modification time (no hashing of the weights)."""
    if settings.clip_model_name is None or settings.clip_checkpoint is None:
        return None
    path = Path(settings.clip_checkpoint).expanduser()
    stat = path.stat() if path.is_file() else None
    return [settings.clip_model_name, str(path.resolve()), stat and stat.st_size, stat and stat.st_mtime_ns]


def bundle_key(fingerprint: dict[str, list[Any]], checkpoint: dict[str, Any], settings: Settings, encoder: TextEncoder) -> str:
    """What a bundle depends on, hashed: knowledge, checkpoint version, encoders, media folder."""
    identity = {
        "format": FORMAT,
        "knowledge": fingerprint,
        "checkpoint": [checkpoint["path"], checkpoint.get("created_at")],
        "text_encoder": encoder.identity,
        "clip_encoder": _clip_identity(settings),
        "media": str(settings.media_dir),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class ServingSar:
    """Query vectors for a served checkpoint, computed in numpy; same numbers as `SarRetriever` (serving: every approved link passes messages)."""

    model: NumpySarGAT
    inputs: dict[str, np.ndarray]
    edges: dict[EdgeType, np.ndarray]
    selling_point_queries: np.ndarray  # (selling points, 1 + 2d), graph order: [0, GAT embedding, text query]
    text_mix: float
    vote_mix: float
    vote_texts: np.ndarray  # (labelled selling points, d) unit texts, for the judged-neighbour vote (retrieval.vote)
    vote_prototypes: np.ndarray  # (labelled selling points, d) unit mean texts of their approved clips
    encoder: TextEncoder
    graph: AckbGraph

    def query_vector(self, text: str, product_id: str | None = None) -> np.ndarray:
        """(1 + 2d,) query for the clip index of a selling point typed in fresh, linked to `product_id` if given."""
        if not text or not text.strip():
            raise BadInputError("selling-point text is empty")
        products = self.graph.index(PRODUCT)
        if product_id is not None and product_id not in products:
            raise NotFoundError(f"unknown Product id {product_id!r} (not in this graph of {len(products)} products)")
        # one BLAS thread: these products are small, and on a busy machine extra threads cost more than they give
        with threadpool_limits(1, user_api="blas"):
            return self._query_vector(text.strip(), product_id)

    def _query_vector(self, text: str, product_id: str | None) -> np.ndarray:
        """The forward pass with one selling-point node added (and linked to its product): as `SarRetriever._fresh`."""
        products = self.graph.index(PRODUCT)
        vector = self.encoder.encode_query(text)
        if vector.shape[0] != self.inputs[SP].shape[1]:
            raise BadInputError(
                f"the configured text encoder {self.encoder.model_path} gives {vector.shape[0]}-d embeddings, the checkpoint "
                f"reads {self.inputs[SP].shape[1]}-d ones: retrain with `kdcvg retrieval train`"
            )
        n = self.inputs[SP].shape[0]
        x = {**self.inputs, SP: np.concatenate([self.inputs[SP], vector[None, :]])}
        edges = dict(self.edges)
        if product_id is not None:
            link = np.array([[products[product_id]], [n]], dtype=np.int64)
            edges[HAS_SELLING_POINT] = np.concatenate([edges[HAS_SELLING_POINT], link], axis=1)
            edges[REV_HAS_SELLING_POINT] = edges[HAS_SELLING_POINT][::-1]
        # a full forward: tens of ms at demo scale; a large graph would take the new node's L-hop neighbourhood
        embedding = self.model.forward(x, edges)[SP][n]
        text = text_queries(vector, self.text_mix, self.vote_mix, self.vote_texts, self.vote_prototypes)[0]
        return np.concatenate([[0.0], embedding, text]).astype(np.float32)  # as SarRetriever.query_vector

    def selling_point_query_vector(self, sp_id: str) -> np.ndarray:
        """(1 + 2d,) query for the clip index of a selling point already in the graph."""
        row = self.graph.index(SP).get(sp_id)
        if row is None:
            raise NotFoundError(f"unknown SellingPoint id(s): {sp_id!r}")
        return self.selling_point_queries[row]


@dataclass
class Bundle:
    """An opened bundle: the server, its index, the graph and the checkpoint's meta."""

    sar: ServingSar
    index: ClipIndex
    graph: AckbGraph
    meta: dict[str, Any]


def _write(staging: Path, settings: Settings, store: GraphStore, checkpoint: dict[str, Any], encoder: TextEncoder) -> None:
    """Build a bundle's files in `staging` with torch: read the knowledge, features, model, index."""
    from retrieval.checkpoint import load_checkpoint
    from retrieval.clip_image import clip_encoder_from_settings
    from retrieval.features import build_features
    from retrieval.gat_numpy import export_weights
    from retrieval.sar import SarRetriever

    graph = graph_from_store(store, settings.media_dir)
    features = build_features(graph, encoder, settings.cache_dir, clip_encoder_from_settings(settings))
    model, config, _ = load_checkpoint(Path(checkpoint["path"]))
    retriever = SarRetriever.for_config(model, graph, features, None, config)  # every approved link passes messages
    trained_index = Path(checkpoint["path"]) / "index"
    queries = retriever.selling_point_queries()
    if checkpoint.get("data_hash") == graph.content_hash and trained_index.is_dir() and ClipIndex.load(trained_index).dim == queries.shape[1]:
        index_dir = str(trained_index)
    else:  # the knowledge changed since training: index the clips as they are now
        ClipIndex.build(graph.ids(CLIP), retriever.index_vectors()).save(staging / "index")
        index_dir = "index"
    arrays = {f"x/{t}": retriever.data[t].x.numpy() for t in retriever.data.node_types}
    arrays |= {f"edges/{edge_key(t)}": retriever.data[t].edge_index.numpy() for t in retriever.data.edge_types}
    arrays |= {f"w/{name}": value for name, value in export_weights(model).items()}
    arrays["selling_point_queries"] = queries
    arrays["vote/texts"], arrays["vote/prototypes"] = retriever.vote_texts, retriever.vote_prototypes
    np.savez(staging / "arrays.npz", **arrays)
    rows = {"nodes": graph.nodes, "relationships": graph.relationships, "content_hash": graph.content_hash}
    (staging / "graph.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    meta = {"checkpoint": checkpoint, "spec": model.spec, "text_mix": config.text_mix, "vote_mix": config.vote_mix, "index": index_dir, "format": FORMAT}
    (staging / "meta.json").write_text(json.dumps(meta, default=str), encoding="utf-8")


def _load(directory: Path, settings: Settings, encoder: TextEncoder) -> Bundle:
    """Open a complete bundle: JSON and numpy only."""
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    rows = json.loads((directory / "graph.json").read_text(encoding="utf-8"))
    graph = AckbGraph(rows["nodes"], rows["relationships"], settings.media_dir)
    with np.load(directory / "arrays.npz") as stored:
        arrays = {name: stored[name] for name in stored.files}
    model = NumpySarGAT({k[2:]: v for k, v in arrays.items() if k.startswith("w/")}, meta["spec"])
    inputs = {k[2:]: v for k, v in arrays.items() if k.startswith("x/")}
    edges = {tuple(k[len("edges/") :].split("__")): v for k, v in arrays.items() if k.startswith("edges/")}
    sar = ServingSar(
        model, inputs, edges, arrays["selling_point_queries"], meta["text_mix"], meta["vote_mix"],  # type: ignore[arg-type]
        arrays["vote/texts"], arrays["vote/prototypes"], encoder, graph,
    )
    return Bundle(sar, ClipIndex.load(directory / meta["index"]), graph, meta["checkpoint"])


def _prune(folder: Path, keep: Path) -> None:
    """Remove all but the KEEP newest bundles, never `keep`."""
    bundles = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in bundles if p != keep][KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def open_bundle(settings: Settings, store: GraphStore, checkpoint: dict[str, Any], encoder: TextEncoder) -> Bundle:
    """The bundle for the store's knowledge as it is now and `checkpoint` (its meta): loaded, or built then loaded."""
    folder = settings.cache_dir / FOLDER
    final = folder / bundle_key(knowledge_fingerprint(store), checkpoint, settings, encoder)
    if not (final / "meta.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".{final.name}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            _write(staging, settings, store, checkpoint, encoder)
            os.replace(staging, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a concurrent writer's bundle: a real failure
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _prune(folder, final)
    return _load(final, settings, encoder)
