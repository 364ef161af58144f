"""Serving SAR results, independent of the model that made the embeddings.

`allowed_clips` turns a `ClipFilter` (product, category, motion, approved only) into the set of
clips a search may return; `rank` searches a `ClipIndex` with a query embedding and dresses each
hit as a `RetrievedClip` with short, honest evidence (`explain`); `propose_links` writes hits back
to the ACKB as *proposed* ILLUSTRATES links for annotators to judge, never touching a link that
already exists (an annotator's approved/rejected judgement stays exactly as it is).
`claim_candidates` and `propose_claims` do the same for selling-point relations: a selling point's
text-nearest selling points of other products become *proposed* SAME_CLAIM relations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kb.graph import AckbGraph
from kb.store import GraphStore, NotFoundError, Row
from kdcvg.errors import BadInputError
from retrieval.features import TextEncoder, node_text
from retrieval.index import ClipIndex

CLIP = "CreativeClip"
SP = "SellingPoint"
PROPOSED = "proposed"
MAX_LISTED = 3  # selling points named per explanation line

# fmt: off
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "in", "into", "is", "it",
    "its", "of", "on", "or", "our", "so", "than", "that", "the", "their", "them", "then", "there", "these", "this",
    "those", "to", "up", "was", "we", "were", "which", "while", "will", "with", "you", "your", "shot", "clip", "video",
))
# fmt: on


@dataclass(frozen=True)
class ClipFilter:
    """Restrictions on the clips a search may return; all None/False means every clip."""

    product: str | None = None
    category: str | None = None
    motion: str | None = None  # a Motion id, e.g. "motion-zoom_in"
    approved_only: bool = False  # only clips approved by annotators for at least one selling point

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.product, self.category, self.motion)) or self.approved_only


@dataclass
class RetrievedClip:
    """One ranked clip as a client sees it."""

    clip_id: str
    score: float  # cosine similarity of query and clip embeddings
    caption: str | None
    tags: list[str]
    motion: str | None  # the Motion's name (its id when it has no name)
    product: str | None  # Product id the clip features
    video_path: str | None
    explanation: list[str] = field(default_factory=list)


def _require(graph: AckbGraph, label: str, id: str) -> None:
    if id not in graph.index(label):
        raise NotFoundError(f"no {label} with id {id!r} in the graph")


def allowed_clips(graph: AckbGraph, clip_filter: ClipFilter | None) -> set[str] | None:
    """Clip ids passing every restriction of `clip_filter`, or None when it restricts nothing.

    Unknown product, category or motion ids raise `NotFoundError` (a KeyError).
    """
    if clip_filter is None or not clip_filter.active:
        return None
    allowed = set(graph.ids(CLIP))
    if clip_filter.product is not None:
        _require(graph, "Product", clip_filter.product)
        allowed &= {c for c, p in graph.product_of_clip.items() if p == clip_filter.product}
    if clip_filter.category is not None:
        _require(graph, "Category", clip_filter.category)
        category_of = graph.category_of_product
        allowed &= {c for c, p in graph.product_of_clip.items() if category_of.get(p) == clip_filter.category}
    if clip_filter.motion is not None:
        _require(graph, "Motion", clip_filter.motion)
        allowed &= {c for c, m in graph.motion_of_clip.items() if m == clip_filter.motion}
    if clip_filter.approved_only:
        allowed &= set(graph.judgements_by_clip["approved"])
    return allowed


def words(text: str | None) -> list[str]:
    """Lower-case word tokens of `text` without stopwords, in order, without repeats."""
    seen: dict[str, None] = {}
    for token in re.findall(r"[a-z0-9]+", (text or "").lower()):
        if token not in STOPWORDS:
            seen.setdefault(token, None)
    return list(seen)


def _motion_name(graph: AckbGraph, motion_id: str | None) -> str | None:
    if motion_id is None:
        return None
    position = graph.index("Motion").get(motion_id)
    if position is None:
        return motion_id
    return graph.nodes["Motion"][position].get("name") or motion_id


def _selling_points(graph: AckbGraph, ids: list[str]) -> str:
    index, rows = graph.index("SellingPoint"), graph.nodes["SellingPoint"]
    named = []
    for sp in sorted(ids)[:MAX_LISTED]:
        text = rows[index[sp]].get("text") if sp in index else None
        named.append(f"{sp} ({text!r})" if text else sp)
    more = len(ids) - MAX_LISTED
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def explain(query_text: str, clip_row: Row, graph: AckbGraph) -> list[str]:
    """Short evidence for showing this clip for this query: shared words, motion, annotators' verdicts.

    Only facts: tags and caption words the query also uses (lower-cased, stopwords dropped), the
    clip's motion in the ACKB, and which selling points annotators approved (or rejected) it for.
    """
    query = set(words(query_text))
    lines = []
    tags = [str(t) for t in clip_row.get("tags") or []]
    shared_tags = [t for t in tags if query & set(words(t.replace("_", " ")))]
    if shared_tags:
        lines.append(f"tags shared with the query: {', '.join(shared_tags)}")
    tag_words = {w for t in shared_tags for w in words(t.replace("_", " "))}
    shared_caption = [w for w in words(clip_row.get("caption")) if w in query and w not in tag_words]
    if shared_caption:
        lines.append(f"caption words shared with the query: {', '.join(shared_caption)}")
    if not shared_tags and not shared_caption:
        lines.append("no words shared with the query: ranked by embedding similarity alone")
    clip_id = clip_row["id"]
    motion = _motion_name(graph, graph.motion_of_clip.get(clip_id))
    if motion:
        lines.append(f"motion: {motion}")
    judgements = graph.judgements_by_clip
    approved = judgements["approved"].get(clip_id, [])
    rejected = judgements["rejected"].get(clip_id, [])
    if approved:
        lines.append(f"approved by annotators for selling point {_selling_points(graph, approved)}")
    else:
        lines.append("not approved by annotators for any selling point yet")
    if rejected:
        lines.append(f"rejected by annotators for selling point {_selling_points(graph, rejected)}")
    return lines


def _retrieved(graph: AckbGraph, query_text: str, clip_id: str, score: float) -> RetrievedClip:
    row = graph.nodes[CLIP][graph.index(CLIP)[clip_id]]
    return RetrievedClip(
        clip_id=clip_id,
        score=score,
        caption=row.get("caption"),
        tags=list(row.get("tags") or []),
        motion=_motion_name(graph, graph.motion_of_clip.get(clip_id)),
        product=graph.product_of_clip.get(clip_id),
        video_path=row.get("video_path"),
        explanation=explain(query_text, row, graph),
    )


def rank(
    index: ClipIndex,
    graph: AckbGraph,
    query_embedding: np.ndarray,
    query_text: str,
    k: int,
    clip_filter: ClipFilter | None = None,
) -> list[RetrievedClip]:
    """The `k` clips of `graph` nearest the query that pass `clip_filter`, best first, explained.

    Indexed clips that are not in `graph` (an index built from another snapshot) are never returned.
    """
    allowed = allowed_clips(graph, clip_filter)
    if allowed is not None and not allowed:
        return []
    hits = index.search(query_embedding, k, allowed)
    known = graph.index(CLIP)
    if any(clip_id not in known for clip_id, _ in hits):
        hits = index.search(query_embedding, k, set(known) if allowed is None else allowed & set(known))
    return [_retrieved(graph, query_text, clip_id, score) for clip_id, score in hits if clip_id in known]


def propose_links(
    store: GraphStore,
    selling_point_id: str,
    results: Sequence[RetrievedClip],
    annotator: str = "sar-model",
) -> int:
    """Write `results` as proposed ILLUSTRATES links to the selling point (through the Curator, audited as
    `annotator`); existing links keep their status. Returns how many were written."""
    from kb.curation import Curator  # here, not at the top: kb.curation loads OpenCV, which a search never needs

    return Curator(store, annotator).propose_links(selling_point_id, [(r.clip_id, float(r.score)) for r in results])


@dataclass(frozen=True)
class ClaimCandidate:
    """A selling point of another product that may make the same claim as `selling_point`."""

    selling_point: str
    other: str
    score: float  # cosine similarity of the two texts' embeddings mapped to [0, 1]: (cos + 1) / 2
    existing: str | None  # the status of the pair's SAME_CLAIM relation already in the graph, None when there is none


def selling_point_embeddings(graph: AckbGraph, encoder: TextEncoder) -> np.ndarray:
    """(selling points, dim) L2-normalised text embeddings in graph order, as `retrieval.features` computes them."""
    return encoder.encode([node_text(SP, row) for row in graph.nodes[SP]])


def claim_candidates(
    graph: AckbGraph, embeddings: np.ndarray, selling_points: Sequence[str], top: int, min_score: float
) -> list[ClaimCandidate]:
    """For each of `selling_points`, its `top` text-nearest selling points of OTHER products scoring at least `min_score`.

    Best first per selling point, each pair once (the first selling point to reach it names it); a
    selling point without a product is compared with every other one. Unknown ids raise NotFoundError; `top` < 1 or `min_score` outside [0, 1] BadInputError.
    """
    if top < 1:
        raise BadInputError(f"top must be at least 1, got {top}")
    if not 0.0 <= min_score <= 1.0:
        raise BadInputError(f"min-score must lie in [0, 1], got {min_score}")
    index = graph.index(SP)
    unknown = [sp for sp in selling_points if sp not in index]
    if unknown:
        raise NotFoundError(f"no SellingPoint with id {', '.join(map(repr, unknown))}")
    if embeddings.shape[0] != len(index):
        raise BadInputError(f"{embeddings.shape[0]} selling-point embeddings for {len(index)} selling points")
    ids = graph.ids(SP)
    owner = graph.product_of_selling_point
    related = {(row["from"], row["to"]): row.get("status") for row in graph.relationships["SAME_CLAIM"]}
    candidates: list[ClaimCandidate] = []
    seen: set[tuple[str, str]] = set()
    for sp in selling_points:
        scores = (embeddings @ embeddings[index[sp]] + 1.0) / 2.0  # one row at a time: never a (n, n) matrix
        mine = owner.get(sp)
        order = np.argsort(-scores, kind="stable")
        chosen = 0
        for other in order:
            if chosen == top or scores[other] < min_score:
                break
            other_id = ids[other]
            if other_id == sp or (mine is not None and owner.get(other_id) == mine):
                continue
            pair = (sp, other_id) if sp < other_id else (other_id, sp)
            chosen += 1
            if pair in seen:
                continue
            seen.add(pair)
            candidates.append(ClaimCandidate(sp, other_id, float(min(1.0, max(0.0, scores[other]))), related.get(pair)))
    return candidates


def propose_claims(store: GraphStore, candidates: Sequence[ClaimCandidate], annotator: str = "sar-model") -> int:
    """Write `candidates` as proposed SAME_CLAIM relations (through the Curator, audited as `annotator`);
    a pair already related keeps its relation and status. Returns how many were written."""
    from kb.curation import Curator  # here, not at the top: kb.curation loads OpenCV, which a search never needs

    return Curator(store, annotator).propose_claims([(c.selling_point, c.other, c.score) for c in candidates])
