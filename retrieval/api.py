"""The Python entry point of SAR: ranked clips for a selling point, with scores and evidence.

    from retrieval.api import retrieve
    for clip in retrieve("leak-proof lid", product="prod-thermopeak-insulated-bottle", k=5):
        print(clip.clip_id, clip.score, clip.explanation)

Uses the latest checkpoint under `<data>/models/sar` (or the one given) on the ACKB as it is in
the store now; the checkpoint's ANN index is used while the ACKB is unchanged since training,
else the index is rebuilt in memory from the current graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kb.migrate import ensure_up_to_date
from kb.store import open_store
from kdcvg.config import Settings, load_settings
from retrieval.checkpoint import load_checkpoint
from retrieval.clip_image import clip_encoder_from_settings
from retrieval.features import TextEncoder, build_features
from retrieval.graph import AckbGraph, graph_from_store
from retrieval.index import ClipIndex
from retrieval.sar import SarRetriever
from retrieval.service import ClipFilter, RetrievedClip, rank

MAX_K = 100


@dataclass
class LoadedSar:
    """A checkpoint served on the current ACKB."""

    retriever: SarRetriever
    index: ClipIndex
    graph: AckbGraph
    meta: dict


def load_sar(settings: Settings | None = None, checkpoint: Path | None = None) -> LoadedSar:
    """Read the ACKB (read-only), its features, the checkpoint and its index."""
    settings = settings or load_settings()
    root = checkpoint or settings.models_dir / "sar"
    if not root.exists():
        raise FileNotFoundError(f"no SAR checkpoint at {root}: run `kdcvg retrieval train` first")
    with open_store(settings, read_only=True) as store:
        ensure_up_to_date(store)
        graph = graph_from_store(store, settings.media_dir)
    features = build_features(graph, TextEncoder(settings.text_encoder_path), settings.cache_dir, clip_encoder_from_settings(settings))
    _, _, meta = load_checkpoint(root)
    retriever = SarRetriever.from_checkpoint(Path(meta["path"]), graph, features, message_selling_points=None)
    index_dir = Path(meta["path"]) / "index"
    if meta.get("data_hash") == graph.content_hash and index_dir.is_dir():
        index = ClipIndex.load(index_dir)
    else:  # the ACKB changed since training: index the clips as they are now
        index = ClipIndex.build(graph.ids("CreativeClip"), retriever.index_vectors())
    return LoadedSar(retriever, index, graph, meta)


def _check(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")


def retrieve(
    text: str,
    *,
    product: str | None = None,
    k: int = 5,
    clip_filter: ClipFilter | None = None,
    loaded: LoadedSar | None = None,
) -> list[RetrievedClip]:
    """The k clips that best illustrate a selling point typed in fresh (linked to `product` if given)."""
    _check(k)
    if not text or not text.strip():
        raise ValueError("selling-point text is empty")
    loaded = loaded or load_sar()
    query = loaded.retriever.query_vector(text, product)
    return rank(loaded.index, loaded.graph, query, text, k, clip_filter or ClipFilter())


def retrieve_for_selling_point(
    selling_point: str, *, k: int = 5, clip_filter: ClipFilter | None = None, loaded: LoadedSar | None = None
) -> list[RetrievedClip]:
    """The k clips that best illustrate a selling point already in the ACKB."""
    _check(k)
    loaded = loaded or load_sar()
    if selling_point not in loaded.graph.index("SellingPoint"):
        raise KeyError(f"no SellingPoint with id {selling_point!r}")
    row = loaded.graph.nodes["SellingPoint"][loaded.graph.index("SellingPoint")[selling_point]]
    query = loaded.retriever.selling_point_query_vector(selling_point)
    return rank(loaded.index, loaded.graph, query, row["text"], k, clip_filter or ClipFilter())
