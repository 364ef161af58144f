"""Every write an annotator makes in the curation app: validated first, attributed, audited, atomic.

Why: the ACKB is curated by several people; each change must be checked before it reaches the
graph, carry who made it, and leave an audit row (`kb.audit`) written in the SAME transaction as
the change, so there is never a change without its audit row nor an audit row without its change.

What: `Curator(store, actor, media_dir)` creates, updates and deletes Category, Product,
SellingPoint, CreativeClip and Motion nodes, links clips to selling points (`ILLUSTRATES`, whose
`status`/`annotator`/`updated_at` are what `retrieval.feedback` reads as annotators' judgements),
sets a clip's tags and uploads new clips (file checked to be a decodable video, motion measured
with `kb.motion`). It also relates selling points that make the same claim (`SAME_CLAIM`, judged
like ILLUSTRATES and stored once per pair, smaller id first: callers may name the pair in either
order, `claim_pair` puts it in stored order).

Validation (nothing is written when it fails; `RecordValidationError.field` names the field):
- the `kb.records` models: required fields, types, names and tags at most `MAX_NAME` (200)
  characters, ids/names/tags without control characters;
- every text value at most `MAX_TEXT` (10,000) characters, checked before anything else, so a
  10 MB caption is refused at once; long texts (caption, description, selling point text) may hold
  newlines and tabs but no other control characters;
- markup such as `<script>` is stored verbatim: it is inert text here, escaping is the UI's job.

Optimistic concurrency: a stale `expected_version` (or `expected_updated_at` for a link) raises
`StaleWriteError` (a `kb.store.ConflictError`) whose `.current` is the stored record, and an audit
event with action `conflict` is written in its own transaction, `before` = the stored record,
`after` = {"attempted_action", "expected_version" or "expected_updated_at", "values"}: both
values survive in the audit trail.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from kb import repository as repo
from kb.audit import record_audit
from kb.media import VIDEO_SUFFIXES, MediaError, MediaLimits, check_video
from kb.motion import MotionMeasurementError, measure_motion
from kb.records import MAX_NAME, MAX_TEXT
from kb.repository import RecordValidationError, StaleWriteError
from kb.schema import ILLUSTRATION_STATUSES, MOTION_DESCRIPTORS
from kb.store import ConflictError, GraphStore, NotFoundError, Row, Transaction

__all__ = ["CURATED_LABELS", "ConflictError", "Curator", "NotFoundError", "RecordValidationError", "StaleWriteError", "claim_pair"]

T = TypeVar("T")
R = TypeVar("R")

CURATED_LABELS: dict[str, repo.NodeRepository] = {
    r.label: r for r in (repo.categories, repo.products, repo.selling_points, repo.clips, repo.motions)
}
CURATED_RELATIONSHIPS: dict[str, repo.RelationshipRepository] = {
    r.spec.type: r for r in (repo.in_category, repo.has_selling_point, repo.illustrates, repo.features, repo.has_motion)
}
CLIP_DIR = "clips"  # uploaded clips go to media/clips/<id><suffix>, as the demo's (kb.demo.build.CLIP_DIR)
MEASURED_PROPERTIES: tuple[str, ...] = ("video_path", "duration_s", "fps", "width", "height", "num_frames", *MOTION_DESCRIPTORS)
_FILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")  # an uploaded clip's id, used as its file name
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # control characters except tab and newline


def _check_strings(what: str, values: Row) -> None:
    """Refuse over-long strings and control characters (tab/newline aside) before any other check."""
    for name, value in values.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str):
                continue
            if len(item) > MAX_TEXT:
                raise RecordValidationError.for_field(what, name, f"too long ({len(item):,} characters; at most {MAX_TEXT:,})")
            if _TEXT_CONTROL.search(item):
                raise RecordValidationError.for_field(what, name, "must not contain control characters (tabs and newlines aside)")


def _curated(table: dict[str, R], name: str, what: str, field: str) -> R:
    """The repository for `name` in `table`, or a RecordValidationError listing what can be curated."""
    try:
        return table[name]
    except KeyError:
        raise RecordValidationError(f"{name!r} cannot be curated; curated {what}: {', '.join(table)}", field=field) from None


def _node_repository(label: str) -> repo.NodeRepository:
    return _curated(CURATED_LABELS, label, "labels", "label")


def _relationship_repository(type_: str) -> repo.RelationshipRepository:
    return _curated(CURATED_RELATIONSHIPS, type_, "relationship types", "type")


def link_key(source: str, target: str) -> str:
    """The audit `entity_id` of a relationship: `from->to`."""
    return f"{source}->{target}"


def claim_pair(selling_point_a: str, selling_point_b: str) -> tuple[str, str]:
    """The stored order of a SAME_CLAIM pair (smaller id first); refuses a selling point paired with itself."""
    for field, value in (("from", selling_point_a), ("to", selling_point_b)):
        if not isinstance(value, str) or not value:
            raise RecordValidationError.for_field("SAME_CLAIM", field, f"must be a selling point id, got {value!r}")
    if selling_point_a == selling_point_b:
        raise RecordValidationError.for_field("SAME_CLAIM", "to", f"a selling point cannot make the same claim as itself ({selling_point_a!r})")
    return (selling_point_a, selling_point_b) if selling_point_a < selling_point_b else (selling_point_b, selling_point_a)


def _require_ends(tx: Transaction, rel: repo.RelationshipRepository, source: str, target: str) -> None:
    """Inside `tx`: NotFoundError naming an end of source->target that does not exist."""
    for label, id in ((rel.spec.source, source), (rel.spec.target, target)):
        if not tx.run(f"MATCH (n:{label} {{id: $id}}) RETURN n.id AS id", id=id):
            raise NotFoundError(f"no {label} with id {id!r}")


class Curator:
    """One annotator's writes to the ACKB (`actor` is recorded on every change); uploads go to `media_dir`."""

    def __init__(self, store: GraphStore, actor: str, media_dir: Path | None = None, *, media_limits: MediaLimits | None = None) -> None:
        if not isinstance(actor, str) or not actor.strip():
            raise RecordValidationError("the annotator's name (actor) must not be empty", field="actor")
        _check_strings("actor", {"actor": actor})
        if "\n" in actor or "\t" in actor or len(actor) > MAX_NAME:
            raise RecordValidationError("the annotator's name (actor) must be one short line", field="actor")
        self.store = store
        self.actor = actor.strip()
        self.media_dir = Path(media_dir) if media_dir is not None else None  # uploads need one
        self.media_limits = media_limits or MediaLimits()

    # ---- helpers -------------------------------------------------------------------------------

    def _audit(self, tx: Transaction, action: str, label: str, entity_id: str, before: Row | None, after: Row | None) -> None:
        record_audit(tx, actor=self.actor, action=action, entity_label=label, entity_id=entity_id, before=before, after=after)

    def _write(self, work: Callable[[Transaction], T], *, conflict: tuple[str, str, Row]) -> T:
        """Run `work` in one write transaction; on a stale write, audit the conflict (label, id, attempted) on its own."""
        try:
            return self.store.write(work)
        except StaleWriteError as exc:
            label, entity_id, attempted = conflict
            current = exc.current
            self.store.write(lambda tx: self._audit(tx, "conflict", label, entity_id, current, attempted))
            raise

    def _link_related(self, tx: Transaction, label: str, id: str, related: Sequence[tuple[str, str]]) -> None:
        """Inside `tx`: link node `id` to each (relationship type, other id), one `link` audit row each."""
        for type_, other in related:
            rel = _relationship_repository(type_)
            if label == rel.spec.source:
                source, target = id, other
            elif label == rel.spec.target:
                source, target = other, id
            else:
                raise RecordValidationError(f"{type_} does not connect {label}", field="related")
            row = rel.link_in(tx, rel.prepare(source, target, {"status": "proposed", "annotator": self.actor} if type_ == "ILLUSTRATES" else None))
            self._audit(tx, "link", type_, link_key(source, target), None, row)

    # ---- nodes ---------------------------------------------------------------------------------

    def create(self, label: str, record: Row, *, related: Sequence[tuple[str, str]] = ()) -> Row:
        """Create a node of `label` (validated; `id` required), optionally linked: related=[("IN_CATEGORY", "cat-1")]."""
        repository = _node_repository(label)
        _check_strings(label, record)
        row = repository.prepare_create(record)

        def work(tx: Transaction) -> Row:
            created = repository.create_in(tx, row)
            self._audit(tx, "create", label, created["id"], None, created)
            self._link_related(tx, label, created["id"], related)
            return created

        return self.store.write(work)

    def _update(self, label: str, id: str, changes: Row, expected_version: int, action: str) -> Row:
        repository = _node_repository(label)
        repository.check_changes(changes)
        _check_strings(label, changes)

        def work(tx: Transaction) -> Row:
            before, after = repository.update_in(tx, id, changes, expected_version=expected_version)
            self._audit(tx, action, label, id, before, after)
            return after

        attempted = {"attempted_action": action, "expected_version": expected_version, "values": changes}
        return self._write(work, conflict=(label, id, attempted))

    def update(self, label: str, id: str, changes: Row, *, expected_version: int) -> Row:
        """Change some properties of a node if its stored version is still `expected_version`; returns it."""
        return self._update(label, id, changes, expected_version, "update")

    def delete(self, label: str, id: str, *, expected_version: int) -> None:
        """Delete a node and its relationships if its stored version is still `expected_version` (media files are kept)."""
        repository = _node_repository(label)

        def work(tx: Transaction) -> None:
            before = repository.delete_in(tx, id, expected_version=expected_version)
            self._audit(tx, "delete", label, id, before, None)

        attempted = {"attempted_action": "delete", "expected_version": expected_version, "values": None}
        self._write(work, conflict=(label, id, attempted))

    def set_tags(self, clip_id: str, tags: list[str], *, expected_version: int) -> Row:
        """Replace a clip's tags (whitespace trimmed, repeats dropped, order kept); returns the clip."""
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RecordValidationError.for_field("CreativeClip", "tags", "must be a list of strings")
        _check_strings("CreativeClip", {"tags": tags})
        cleaned = list(dict.fromkeys(t.strip() for t in tags))
        if "" in cleaned:
            raise RecordValidationError.for_field("CreativeClip", "tags", "a tag must not be empty or only whitespace")
        return self._update("CreativeClip", clip_id, {"tags": cleaned}, expected_version, "set_tags")

    # ---- relationships -------------------------------------------------------------------------

    def unrelate(self, type_: str, source: str, target: str) -> None:
        """Remove one relationship of any curated type (NotFoundError if the pair is not linked)."""
        rel = _relationship_repository(type_)

        def work(tx: Transaction) -> None:
            before = rel.unlink_in(tx, source, target)
            self._audit(tx, "unlink", type_, link_key(source, target), before, None)

        self.store.write(work)

    def link_clip(self, clip_id: str, selling_point_id: str, *, status: str = "proposed", score: float | None = None) -> Row:
        """Link a clip to a selling point it illustrates (ConflictError if already linked: use set_link_status)."""
        return self._add_judged(repo.illustrates, clip_id, selling_point_id, status, score, f"clip {clip_id!r} already illustrates {selling_point_id!r}")

    def _add_judged(self, rel: repo.RelationshipRepository, source: str, target: str, status: str, score: float | None, exists: str) -> Row:
        """Write a new judged relationship (ILLUSTRATES, SAME_CLAIM) with the actor as annotator, audited; ConflictError if present."""
        row = rel.prepare(source, target, {"status": status, "score": score, "annotator": self.actor})

        def work(tx: Transaction) -> Row:
            existing = rel.lock_in(tx, source, target)
            if existing is not None:
                raise ConflictError(f"{exists} (status {existing['status']}); change its status instead")
            rel.link_in(tx, row)
            self._audit(tx, "link", rel.spec.type, link_key(source, target), None, row)
            return row

        return self.store.write(work)

    def _propose(self, rel: repo.RelationshipRepository, scored: dict[tuple[str, str], float]) -> int:
        """Write each (from, to) -> score not yet linked as `proposed`, in one transaction; existing links stay as they are."""
        rows = [
            rel.prepare(source, target, {"status": "proposed", "score": min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0, "annotator": self.actor})
            for (source, target), score in scored.items()
        ]

        def work(tx: Transaction) -> int:
            written = 0
            for row in rows:
                if rel.lock_in(tx, row["from"], row["to"]) is None:
                    rel.link_in(tx, row)
                    self._audit(tx, "link", rel.spec.type, link_key(row["from"], row["to"]), None, row)
                    written += 1
            return written

        return self.store.write(work) if rows else 0

    def propose_links(self, selling_point_id: str, scored_clips: Sequence[tuple[str, float]]) -> int:
        """Write retrieval results as `proposed` links to one selling point, in one transaction; returns how many.

        Only clips not yet linked to it get a link (score clamped to [0, 1]; not finite counts as 0);
        an existing link of any status is left exactly as it is, so annotators' judgements survive.
        Each new link is audited like any other. Unknown ids raise NotFoundError and write nothing.
        """
        scored: dict[tuple[str, str], float] = {}
        for clip_id, score in scored_clips:
            scored.setdefault((clip_id, selling_point_id), score)
        return self._propose(repo.illustrates, scored)

    def _set_status(self, rel: repo.RelationshipRepository, source: str, target: str, status: str, expected_updated_at: str | None, what: str) -> Row:
        """Judge the link source->target of a judged type (ILLUSTRATES, SAME_CLAIM); `what` names the pair in errors."""
        type_ = rel.spec.type
        if status not in ILLUSTRATION_STATUSES:
            raise RecordValidationError.for_field(type_, "status", f"must be one of {', '.join(ILLUSTRATION_STATUSES)}, got {status!r}")
        key = link_key(source, target)

        def work(tx: Transaction) -> Row:
            current = rel.lock_in(tx, source, target)
            if current is None:
                _require_ends(tx, rel, source, target)
                raise NotFoundError(f"{what} are not linked by {type_}")
            if expected_updated_at is not None and current["updated_at"] != expected_updated_at:
                raise StaleWriteError(
                    f"the link {key} was changed by {current['annotator'] or 'someone else'} at {current['updated_at']} "
                    f"(status {current['status']}); reload it and judge again",
                    current,
                )
            row = rel.prepare(source, target, {"status": status, "score": current["score"], "annotator": self.actor})
            rel.link_in(tx, row)
            self._audit(tx, "set_status", type_, key, current, row)
            return row

        attempted = {"attempted_action": "set_status", "expected_updated_at": expected_updated_at, "values": {"status": status}}
        return self._write(work, conflict=(type_, key, attempted))

    def set_link_status(self, clip_id: str, selling_point_id: str, status: str, *, expected_updated_at: str | None = None) -> Row:
        """Judge a link (proposed/approved/rejected) as this annotator; with `expected_updated_at`, only if unchanged since."""
        what = f"clip {clip_id!r} and selling point {selling_point_id!r}"
        return self._set_status(repo.illustrates, clip_id, selling_point_id, status, expected_updated_at, what)

    def unlink_clip(self, clip_id: str, selling_point_id: str) -> None:
        """Remove a clip's ILLUSTRATES link to a selling point (NotFoundError if there is none)."""
        self.unrelate("ILLUSTRATES", clip_id, selling_point_id)

    # ---- selling-point relations (SAME_CLAIM: one row per pair, smaller id first) ---------------

    def relate_claims(self, selling_point_a: str, selling_point_b: str, *, status: str = "proposed", score: float | None = None) -> Row:
        """Record that two selling points make the same claim, in either order (ConflictError if already related)."""
        source, target = claim_pair(selling_point_a, selling_point_b)
        return self._add_judged(repo.same_claim, source, target, status, score, f"selling points {source!r} and {target!r} are already related")

    def propose_claims(self, scored_pairs: Sequence[tuple[str, str, float]]) -> int:
        """Write (selling point, selling point, score) as `proposed` SAME_CLAIM relations, in one transaction; returns how many.

        Pairs may come in either order (a pair given twice keeps its best score); a pair already
        related keeps its relation exactly as it is, judged or not. Unknown ids raise NotFoundError
        and a selling point paired with itself RecordValidationError; either way nothing is written.
        """
        scored: dict[tuple[str, str], float] = {}
        for sp_a, sp_b, score in scored_pairs:
            pair = claim_pair(sp_a, sp_b)
            value = score if math.isfinite(score) else 0.0
            scored[pair] = max(scored.get(pair, value), value)
        return self._propose(repo.same_claim, scored)

    def set_claim_status(self, selling_point_a: str, selling_point_b: str, status: str, *, expected_updated_at: str | None = None) -> Row:
        """Judge a SAME_CLAIM relation (proposed/approved/rejected), either order; with `expected_updated_at`, only if unchanged since."""
        source, target = claim_pair(selling_point_a, selling_point_b)
        return self._set_status(repo.same_claim, source, target, status, expected_updated_at, f"selling points {source!r} and {target!r}")

    def unrelate_claims(self, selling_point_a: str, selling_point_b: str) -> None:
        """Remove the SAME_CLAIM relation of two selling points, either order (NotFoundError if there is none)."""
        source, target = claim_pair(selling_point_a, selling_point_b)

        def work(tx: Transaction) -> None:
            if repo.same_claim.lock_in(tx, source, target) is None:
                _require_ends(tx, repo.same_claim, source, target)
            before = repo.same_claim.unlink_in(tx, source, target)
            self._audit(tx, "unlink", "SAME_CLAIM", link_key(source, target), before, None)

        self.store.write(work)

    # ---- uploads -------------------------------------------------------------------------------

    def upload_clip(
        self,
        filename: str,
        data: bytes,
        record: Row,
        *,
        product_id: str | None = None,
        motion_id: str | None = None,
    ) -> Row:
        """Store an uploaded video under media_dir/clips/, measure its motion, create its CreativeClip.

        `record` holds the clip's own fields (`caption` required, `tags`, `id` optional: generated
        if absent); measured fields and `video_path` are set from the file. The bytes must be a
        decodable video with at least 2 frames in a container matching the file's suffix. With
        `product_id`/`motion_id` the clip is linked (FEATURES/HAS_MOTION) in the same transaction.
        If anything fails, no file is left behind and nothing is written.
        """
        suffix = Path(filename).suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise RecordValidationError(
                f"{filename!r} is not a video file: expected one of {', '.join(VIDEO_SUFFIXES)}", field="file"
            )
        if not data:
            raise RecordValidationError(f"{filename!r} is empty", field="file")
        if len(data) > self.media_limits.max_bytes:
            raise RecordValidationError(
                f"{filename!r} is too large ({len(data):,} bytes; at most {self.media_limits.max_bytes:,})", field="file"
            )
        own = {k: v for k, v in record.items() if k not in MEASURED_PROPERTIES}
        own.setdefault("id", f"clip-{secrets.token_hex(6)}")
        _check_strings("CreativeClip", own)
        if not isinstance(own["id"], str) or not _FILE_ID.match(own["id"]):
            raise RecordValidationError.for_field(
                "CreativeClip", "id", "an uploaded clip's id names its file: letters, digits, '.', '_' and '-' only, not starting with '.'"
            )
        repo.clips.prepare_create(own)  # refuse a bad caption/id before the slow measurement
        if self.media_dir is None:
            raise RecordValidationError("this Curator was given no media folder to upload into", field="file")
        folder = self.media_dir / CLIP_DIR
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{own['id']}{suffix}"
        if final.exists():
            raise ConflictError(f"a media file {CLIP_DIR}/{final.name} already exists; choose another clip id")
        staged = folder / f".upload-{secrets.token_hex(8)}{suffix}"
        staged.write_bytes(data)
        try:
            try:
                check_video(staged, self.media_limits)  # the same container, codec and cap checks as an import
            except MediaError as exc:
                raise RecordValidationError(f"{filename!r} {str(exc).removeprefix(f'{staged}: ')}", field="file") from None
            try:
                measured = measure_motion(staged)
            except MotionMeasurementError as exc:
                reason = str(exc).split(": ", 1)[-1]
                raise RecordValidationError(f"{filename!r} is not a decodable video: {reason}", field="file") from None
            row = repo.clips.prepare_create({**own, **measured, "video_path": f"{CLIP_DIR}/{final.name}"})
            os.replace(staged, final)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        related = [(t, i) for t, i in (("FEATURES", product_id), ("HAS_MOTION", motion_id)) if i is not None]

        def work(tx: Transaction) -> Row:
            created = repo.clips.create_in(tx, row)
            self._audit(tx, "upload", "CreativeClip", created["id"], None, created)
            self._link_related(tx, "CreativeClip", created["id"], related)
            return created

        try:
            return self.store.write(work)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
