"""Serving SAR results, independent of the model that made the embeddings.

`allowed_clips` turns a `ClipFilter` (product, category, motion, approved only) into the set of
clips a search may return; `rank` searches a `ClipIndex` with a query embedding and dresses each
hit as a `RetrievedClip` with short, honest evidence (`explain`); `propose_links` writes hits back
to the ACKB as *proposed* ILLUSTRATES links for annotators to judge, never touching a link that
already exists (an annotator's approved/rejected judgement stays exactly as it is).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import ValidationError

from kb.audit import record_audit
from kb.records import REL_RECORDS
from kb.repository import RecordValidationError, validation_message
from kb.store import GraphStore, NotFoundError, Row, Transaction
from kb.timestamps import utc_now
from retrieval.graph import AckbGraph
from retrieval.index import ClipIndex

CLIP = "CreativeClip"
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
    """Write `results` as proposed ILLUSTRATES links to the selling point, in one transaction.

    Only clips not yet linked to that selling point get a link (status "proposed", the score clamped
    to [0, 1]); an existing link of any status is left exactly as it is. Each new link gets an audit row
    (actor `annotator`) in the same transaction. Returns how many were written.
    Unknown selling point or clip ids raise NotFoundError and write nothing.
    """
    from kb.curation import link_key  # here, not at the top: kb.curation loads OpenCV, which a search never needs

    now = utc_now()
    candidates: dict[str, Row] = {}
    for result in results:
        if result.clip_id in candidates:
            continue
        score = float(result.score)
        score = 0.0 if not np.isfinite(score) else min(1.0, max(0.0, score))
        properties = {"status": PROPOSED, "score": score, "annotator": annotator, "updated_at": now}
        try:
            REL_RECORDS["ILLUSTRATES"].model_validate({"from": result.clip_id, "to": selling_point_id, **properties})
        except ValidationError as exc:
            raise RecordValidationError(f"invalid ILLUSTRATES: {validation_message(exc)}") from None
        candidates[result.clip_id] = {"clip": result.clip_id, **properties}
    if not candidates:
        return 0

    def work(tx: Transaction) -> int:
        if not tx.run("MATCH (s:SellingPoint {id: $id}) RETURN s.id AS id", id=selling_point_id):
            raise NotFoundError(f"no SellingPoint with id {selling_point_id!r}")
        ids = list(candidates)
        present = {r["id"] for r in tx.run("UNWIND $ids AS i MATCH (c:CreativeClip {id: i}) RETURN c.id AS id", ids=ids)}
        unknown = [c for c in ids if c not in present]
        if unknown:
            raise NotFoundError(
                f"no CreativeClip with id {', '.join(map(repr, unknown[:5]))}" + (" ..." if len(unknown) > 5 else "")
            )
        linked = {
            r["id"]
            for r in tx.run(
                "MATCH (c:CreativeClip)-[:ILLUSTRATES]->(:SellingPoint {id: $sp}) RETURN c.id AS id", sp=selling_point_id
            )
        }
        written = 0
        for clip_id in ids:
            if clip_id in linked:
                continue
            row = candidates[clip_id]
            # MERGE + ON CREATE: even a link created concurrently after our read is never overwritten
            tx.run(
                "MATCH (c:CreativeClip {id: $clip}), (s:SellingPoint {id: $sp}) "
                "MERGE (c)-[r:ILLUSTRATES]->(s) "
                "ON CREATE SET r.status = $status, r.score = $score, r.annotator = $annotator, r.updated_at = $updated_at",
                sp=selling_point_id,
                **row,
            )
            after = {"from": clip_id, "to": selling_point_id, **{k: v for k, v in row.items() if k != "clip"}}
            record_audit(tx, actor=annotator, action="link", entity_label="ILLUSTRATES",
                         entity_id=link_key(clip_id, selling_point_id), before=None, after=after)  # fmt: skip
            written += 1
        return written

    return store.write(work)
