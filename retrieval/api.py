"""The Python entry point of SAR: ranked clips for a selling point, with scores and evidence.

    from retrieval.api import retrieve
    for clip in retrieve("leak-proof lid", product="prod-thermopeak-insulated-bottle", k=5):
        print(clip.clip_id, clip.score, clip.explanation)

Uses the latest checkpoint under `<data>/models/sar` (or the one given) on the ACKB as it is in
the store now; the checkpoint's ANN index is used while the knowledge is unchanged since training,
else the index is rebuilt from the current graph. What a call needs is kept in a serving bundle
keyed by the knowledge's fingerprint (retrieval.serving), so a warm call reads files and never
imports torch.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.backends import open_store
from kb.graph import AckbGraph
from kb.migrate import ensure_up_to_date
from kb.store import GraphStore
from kdcvg.config import Settings, load_settings
from kdcvg.errors import BadInputError, MissingFileError, NotFoundError
from retrieval.checkpoint import read_meta
from retrieval.features import TextEncoder
from retrieval.index import ClipIndex
from retrieval.service import ClipFilter, RetrievedClip, rank
from retrieval.serving import ServingSar, open_bundle

MAX_K = 100


@dataclass
class LoadedSar:
    """A checkpoint served on the current ACKB."""

    retriever: ServingSar
    index: ClipIndex
    graph: AckbGraph
    meta: dict[str, Any]


def load_sar(settings: Settings | None = None, checkpoint: Path | None = None, *, store: GraphStore | None = None) -> LoadedSar:
    """The checkpoint served on the store's knowledge, with the configured text encoder.

    `store`: an open store to read (the app passes its shared one); None opens the configured store read-only.
    """
    settings = settings or load_settings()
    root = checkpoint or settings.models_dir / "sar"
    if not root.exists():
        raise MissingFileError(f"no SAR checkpoint at {root}: run `kdcvg retrieval train` first")
    meta = read_meta(root)
    encoder = TextEncoder(settings.text_encoder_path)
    with nullcontext(store) if store is not None else open_store(settings, read_only=True) as source:
        ensure_up_to_date(source)
        bundle = open_bundle(settings, source, meta, encoder)
    return LoadedSar(bundle.sar, bundle.index, bundle.graph, bundle.meta)


def _check(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise BadInputError(f"k must be between 1 and {MAX_K}, got {k}")


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
        raise BadInputError("selling-point text is empty")
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
        raise NotFoundError(f"no SellingPoint with id {selling_point!r}")
    row = loaded.graph.nodes["SellingPoint"][loaded.graph.index("SellingPoint")[selling_point]]
    query = loaded.retriever.selling_point_query_vector(selling_point)
    return rank(loaded.index, loaded.graph, query, row["text"], k, clip_filter or ClipFilter())
