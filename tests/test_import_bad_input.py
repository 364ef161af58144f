"""Bad import input: every kind is refused, named at its place, and leaves the store exactly as it was.

Each case starts from a store holding the small synthetic ACKB (content to protect) and a private
copy of that ACKB plus a "canary" (a new Category and a new CreativeClip whose video file differs
from the one already in the store's media folder), so an import that wrote anything at all would
change the store's export or the media folder. The case then breaks the copy in one way and
re-seals the manifest (`count`/`sha256`) of every file it edits, so that the only problem is the one
the case is about; separate cases break the checksum and the count themselves.

Problems have the form FILE:LINE:FIELD: reason (docs/ackb-format.md); each case names the exact
place it expects, as a prefix of one reported problem, and the exact number of problems.

The last part checks that unicode text (CJK, emoji, RTL, combining characters) and values at the
limits import and export back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kb.interchange import ImportValidationError, import_ackb
from kb.records import MAX_ID, MAX_NAME, MAX_TAGS, MAX_TEXT
from kb.store import GraphStore
from tests.conftest import snapshot
from tests.videos import write_video

CAT = "nodes/Category.jsonl"
PROD = "nodes/Product.jsonl"
SP = "nodes/SellingPoint.jsonl"
CLIP = "nodes/CreativeClip.jsonl"
MOTION = "nodes/Motion.jsonl"
IN_CATEGORY = "relationships/IN_CATEGORY.jsonl"
HAS_SP = "relationships/HAS_SELLING_POINT.jsonl"
ILLUSTRATES = "relationships/ILLUSTRATES.jsonl"
FEATURES = "relationships/FEATURES.jsonl"
HAS_MOTION = "relationships/HAS_MOTION.jsonl"
MANIFEST = "manifest.json"

STAMP = "2026-01-01T00:00:00.000000Z"
CANARY_MEDIA = "clips/canary.mp4"
STORE_OWN_MEDIA = "clips/store-own.mp4"


# ---------------------------------------------------------------------------------------------
# Helpers that edit an ACKB directory (and keep its manifest consistent with the edited files)
# ---------------------------------------------------------------------------------------------


def _dump(row: dict[str, Any]) -> bytes:
    """A row as export writes it (keys sorted, no spaces, UTF-8); NaN/Infinity become JSON literals."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def read_manifest(d: Path) -> dict[str, Any]:
    return json.loads((d / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(d: Path, manifest: dict[str, Any]) -> None:
    (d / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _entry(manifest: dict[str, Any], relative: str) -> dict[str, Any]:
    for section in ("nodes", "relationships"):
        for entry in manifest.get(section, {}).values():
            if entry.get("file") == relative:
                return entry
    raise KeyError(relative)


def reseal(d: Path, relative: str) -> None:
    """Make the manifest's `count` and `sha256` of `relative` match the file as it now is."""
    data = (d / relative).read_bytes()
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    manifest = read_manifest(d)
    entry = _entry(manifest, relative)
    entry["count"] = len(lines)
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    write_manifest(d, manifest)


def unseal(d: Path, relative: str, *keys: str) -> None:
    """Drop `keys` (default both `count` and `sha256`) from the manifest entry of `relative`."""
    manifest = read_manifest(d)
    entry = _entry(manifest, relative)
    for key in keys or ("count", "sha256"):
        entry.pop(key, None)
    write_manifest(d, manifest)


def get_lines(d: Path, relative: str) -> list[bytes]:
    return (d / relative).read_bytes().split(b"\n")[:-1]  # files end with one newline


def put_lines(d: Path, relative: str, lines: list[bytes], *, final_newline: bool = True) -> None:
    (d / relative).write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    reseal(d, relative)


def get_row(d: Path, relative: str, line: int) -> dict[str, Any]:
    return json.loads(get_lines(d, relative)[line - 1])


def set_line(d: Path, relative: str, line: int, raw: bytes | str) -> None:
    """Replace line `line` (1-based) with raw bytes."""
    lines = get_lines(d, relative)
    lines[line - 1] = raw.encode("utf-8") if isinstance(raw, str) else raw
    put_lines(d, relative, lines)


def insert_line(d: Path, relative: str, line: int, raw: bytes | str) -> None:
    """Insert raw bytes so that they become line `line` (1-based)."""
    lines = get_lines(d, relative)
    lines.insert(line - 1, raw.encode("utf-8") if isinstance(raw, str) else raw)
    put_lines(d, relative, lines)


def edit_row(d: Path, relative: str, line: int, *, drop: tuple[str, ...] = (), **changes: Any) -> None:
    """Change fields of the row on `line` (`from_`/`to` spelled `from_` because of Python)."""
    row = get_row(d, relative, line)
    for key in drop:
        del row[key]
    row.update({("from" if k == "from_" else k): v for k, v in changes.items()})
    set_line(d, relative, line, _dump(row))


def insert_row(d: Path, relative: str, line: int, row: dict[str, Any]) -> None:
    insert_line(d, relative, line, _dump(row))


def edit_manifest(d: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = read_manifest(d)
    change(manifest)
    write_manifest(d, manifest)


def new_category(**fields: Any) -> dict[str, Any]:
    return {"id": "cat-new", "name": "New category", **fields}


def media_files(media_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(media_dir)): p.read_bytes() for p in sorted(media_dir.rglob("*")) if p.is_file()}


def add_canary(d: Path) -> None:
    """Valid new content: if a refused import wrote anything, the store or media folder would change."""
    lines = get_lines(d, CAT)
    put_lines(
        d,
        CAT,
        [*lines, _dump({"id": "cat-zcanary", "name": "Canary category", "created_at": STAMP, "updated_at": STAMP, "version": 1})],
    )
    lines = get_lines(d, CLIP)
    canary_clip = {
        "id": "clip-zcanary",
        "caption": "canary clip",
        "tags": ["canary"],
        "video_path": CANARY_MEDIA,
        "width": 64,
        "height": 64,
    }
    put_lines(d, CLIP, [*lines, _dump({**canary_clip, "created_at": STAMP, "updated_at": STAMP, "version": 1})])
    write_video(d / "media" / CANARY_MEDIA, shade=200)
    # and one changed existing row, so an update would show too
    edit_row(d, PROD, 1, name="Product 0, renamed by the canary")


# ---------------------------------------------------------------------------------------------
# The cases. Line numbers refer to the small ACKB: Category 3 rows + canary (line 4), Product 6,
# SellingPoint 30, CreativeClip 24 + canary (line 25), Motion 10; IN_CATEGORY 6, HAS_SELLING_POINT
# 30, ILLUSTRATES/FEATURES/HAS_MOTION 24 each.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    mutate: Callable[[Path], Path | None]  # returns the path to import, or None for the edited copy
    expect: tuple[str, ...]  # each must be the start of a reported problem; "{dir}" is the import path
    count: int | None = None  # exact number of problems (default: one per expected prefix)


CASES: list[Bad] = []


def case(case_id: str, *expect: str, count: int | None = None) -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    def register(mutate: Callable[[Path], Any]) -> Callable[[Path], Any]:
        CASES.append(Bad(case_id, mutate, expect, count))
        return mutate

    return register


def simple(case_id: str, mutate: Callable[[Path], Any], *expect: str, count: int | None = None) -> None:
    CASES.append(Bad(case_id, mutate, expect, count))


# --- missing required fields, per label ------------------------------------------------------
simple("missing-Category.name", lambda d: edit_row(d, CAT, 2, drop=("name",)), f"{CAT}:2:name: Field required")
simple("missing-Product.name", lambda d: edit_row(d, PROD, 3, drop=("name",)), f"{PROD}:3:name: Field required")
simple("missing-SellingPoint.text", lambda d: edit_row(d, SP, 7, drop=("text",)), f"{SP}:7:text: Field required")
simple("missing-CreativeClip.caption", lambda d: edit_row(d, CLIP, 5, drop=("caption",)), f"{CLIP}:5:caption: Field required")
simple("missing-Motion.name", lambda d: edit_row(d, MOTION, 10, drop=("name",)), f"{MOTION}:10:name: Field required")
simple("missing-node-id", lambda d: insert_row(d, CAT, 2, {"name": "no id"}), f"{CAT}:2:id: Field required")
simple(
    "missing-ILLUSTRATES.status",
    lambda d: edit_row(d, ILLUSTRATES, 4, drop=("status",)),
    f"{ILLUSTRATES}:4:status: Field required",
)
simple("missing-HAS_MOTION.from", lambda d: edit_row(d, HAS_MOTION, 1, drop=("from",)), f"{HAS_MOTION}:1:from: Field required")
simple("missing-IN_CATEGORY.to", lambda d: edit_row(d, IN_CATEGORY, 6, drop=("to",)), f"{IN_CATEGORY}:6:to: Field required")
simple(
    "missing-FEATURES.from-and-to",
    lambda d: set_line(d, FEATURES, 9, "{}"),
    f"{FEATURES}:9:from: Field required",
    f"{FEATURES}:9:to: Field required",
)

# --- wrong types ---------------------------------------------------------------------------------
simple("string-for-int-width", lambda d: edit_row(d, CLIP, 2, width="640"), f"{CLIP}:2:width: Input should be a valid integer")
simple(
    "string-for-int-version", lambda d: edit_row(d, PROD, 2, version="1"), f"{PROD}:2:version: Input should be a valid integer"
)
simple(
    "string-for-number-score",
    lambda d: edit_row(d, ILLUSTRATES, 2, score="0.5"),
    f"{ILLUSTRATES}:2:score: Input should be a valid number",
)
simple("int-for-string-name", lambda d: edit_row(d, PROD, 4, name=42), f"{PROD}:4:name: Input should be a valid string")
simple("int-for-string-id", lambda d: insert_row(d, CAT, 1, new_category(id=7)), f"{CAT}:1:id: Input should be a valid string")
simple(
    "int-for-string-relationship-to", lambda d: edit_row(d, FEATURES, 5, to=5), f"{FEATURES}:5:to: Input should be a valid string"
)
simple(
    "list-for-string-caption",
    lambda d: edit_row(d, CLIP, 3, caption=["a", "b"]),
    f"{CLIP}:3:caption: Input should be a valid string",
)
simple("string-for-list-tags", lambda d: edit_row(d, CLIP, 6, tags="orbit,p1"), f"{CLIP}:6:tags: Input should be a valid list")
simple("int-inside-tags", lambda d: edit_row(d, CLIP, 6, tags=["ok", 3]), f"{CLIP}:6:tags.1: Input should be a valid string")
simple(
    "bool-for-number-score",
    lambda d: edit_row(d, ILLUSTRATES, 3, score=True),
    f"{ILLUSTRATES}:3:score: Input should be a valid number",
)
simple("bool-for-number-fps", lambda d: edit_row(d, CLIP, 7, fps=False), f"{CLIP}:7:fps: Input should be a valid number")
simple(
    "bool-for-int-num_frames",
    lambda d: edit_row(d, CLIP, 7, num_frames=True),
    f"{CLIP}:7:num_frames: Input should be a valid integer",
)
simple("null-for-required-name", lambda d: edit_row(d, PROD, 5, name=None), f"{PROD}:5:name: Input should be a valid string")
simple(
    "null-for-required-status",
    lambda d: edit_row(d, ILLUSTRATES, 5, status=None),
    f"{ILLUSTRATES}:5:status: Input should be 'proposed', 'approved' or 'rejected'",
)
simple("null-for-id", lambda d: insert_row(d, CAT, 3, new_category(id=None)), f"{CAT}:3:id: Input should be a valid string")
simple(
    "object-for-string-brand",
    lambda d: edit_row(d, PROD, 6, brand={"name": "Acme"}),
    f"{PROD}:6:brand: Input should be a valid string",
)
simple(
    "object-for-string-text", lambda d: edit_row(d, SP, 11, text={"en": "light"}), f"{SP}:11:text: Input should be a valid string"
)
simple("float-for-int-width", lambda d: edit_row(d, CLIP, 8, width=640.5), f"{CLIP}:8:width: Input should be a valid integer")
simple(
    "integral-float-for-int-height",
    lambda d: edit_row(d, CLIP, 8, height=480.0),
    f"{CLIP}:8:height: Input should be a valid integer",
)

# --- unknown fields ------------------------------------------------------------------------------
simple("unknown-node-field", lambda d: edit_row(d, PROD, 2, colour="red"), f"{PROD}:2:colour: Extra inputs are not permitted")
simple(
    "unknown-relationship-field",
    lambda d: edit_row(d, FEATURES, 2, score=0.5),
    f"{FEATURES}:2:score: Extra inputs are not permitted",
)
simple(
    "audit-field-on-plain-relationship",
    lambda d: edit_row(d, HAS_MOTION, 2, created_at=STAMP),
    f"{HAS_MOTION}:2:created_at: Extra inputs are not permitted",
)

# --- ids, names, lengths -------------------------------------------------------------------------
simple("empty-id", lambda d: insert_row(d, CAT, 2, new_category(id="")), f"{CAT}:2:id: String should have at least 1 character")
simple(
    "whitespace-only-id",
    lambda d: insert_row(d, CAT, 2, new_category(id="   ")),
    f"{CAT}:2:id: Value error, must not be empty or only whitespace",
)
simple(
    "whitespace-only-name",
    lambda d: edit_row(d, MOTION, 3, name="    "),
    f"{MOTION}:3:name: Value error, must not be empty or only whitespace",
)
simple("empty-caption", lambda d: edit_row(d, CLIP, 9, caption=""), f"{CLIP}:9:caption: String should have at least 1 character")
simple(
    "id-with-newline",
    lambda d: insert_row(d, PROD, 3, {"id": "prod-new\nline", "name": "x"}),
    f"{PROD}:3:id: Value error, must not contain control characters",
)
simple(
    "id-with-NUL",
    lambda d: insert_row(d, PROD, 3, {"id": "prod-\x00", "name": "x"}),
    f"{PROD}:3:id: Value error, must not contain control characters",
)
simple(
    "id-with-bell",
    lambda d: insert_row(d, PROD, 3, {"id": "prod-\x07", "name": "x"}),
    f"{PROD}:3:id: Value error, must not contain control characters",
)
simple(
    "id-with-DEL",
    lambda d: insert_row(d, PROD, 3, {"id": "prod-\x7f", "name": "x"}),
    f"{PROD}:3:id: Value error, must not contain control characters",
)
simple(
    "relationship-end-with-tab",
    lambda d: edit_row(d, HAS_SP, 4, to="sp-0000000-3\t"),
    f"{HAS_SP}:4:to: Value error, must not contain control characters",
)
simple(
    "name-with-tab",
    lambda d: edit_row(d, PROD, 2, name="Product\t1"),
    f"{PROD}:2:name: Value error, must not contain control characters",
)
simple(
    "id-over-200-chars",
    lambda d: insert_row(d, CAT, 2, new_category(id="c" * (MAX_ID + 1))),
    f"{CAT}:2:id: String should have at most 200 characters",
)
simple(
    "name-over-200-chars",
    lambda d: edit_row(d, CAT, 1, name="n" * (MAX_NAME + 1)),
    f"{CAT}:1:name: String should have at most 200 characters",
)
simple(
    "brand-over-200-chars",
    lambda d: edit_row(d, PROD, 2, brand="b" * (MAX_NAME + 1)),
    f"{PROD}:2:brand: String should have at most 200 characters",
)
simple(
    "caption-of-1MB",
    lambda d: edit_row(d, CLIP, 10, caption="a" * 1_000_000),
    f"{CLIP}:10:caption: String should have at most 10000 characters",
)
simple(
    "description-over-10000-chars",
    lambda d: edit_row(d, CAT, 3, description="d" * (MAX_TEXT + 1)),
    f"{CAT}:3:description: String should have at most 10000 characters",
)
simple(
    "tag-over-200-chars",
    lambda d: edit_row(d, CLIP, 11, tags=["ok", "t" * (MAX_NAME + 1)]),
    f"{CLIP}:11:tags.1: String should have at most 200 characters",
)
simple("empty-tag", lambda d: edit_row(d, CLIP, 11, tags=[""]), f"{CLIP}:11:tags.0: String should have at least 1 character")
simple(
    "too-many-tags",
    lambda d: edit_row(d, CLIP, 12, tags=[f"t{i}" for i in range(MAX_TAGS + 1)]),
    f"{CLIP}:12:tags: List should have at most 50 items",
)
simple(
    "lone-surrogate-in-name",
    lambda d: set_line(d, MOTION, 2, get_lines(d, MOTION)[1].replace(b'"name":"', b'"name":"\\ud800')),
    f"{MOTION}:2:name: Input should be a valid string",
)

# --- duplicates ---------------------------------------------------------------------------------
simple(
    "duplicate-node-id",
    lambda d: insert_row(d, CAT, 5, {**get_row(d, CAT, 1), "name": "Same id again"}),
    f"{CAT}:5:id: duplicate of line 1",
)
simple(
    "duplicate-relationship-pair",
    lambda d: insert_line(d, FEATURES, 25, get_lines(d, FEATURES)[2]),
    f"{FEATURES}:25:from/to: duplicate of line 3",
)
simple(
    "duplicate-ILLUSTRATES-pair-other-status",
    lambda d: insert_row(d, ILLUSTRATES, 2, {**get_row(d, ILLUSTRATES, 1), "status": "rejected"}),
    f"{ILLUSTRATES}:2:from/to: duplicate of line 1",
)

# --- relationship ends: unknown ids, wrong labels ------------------------------------------------
simple(
    "unknown-from-IN_CATEGORY",
    lambda d: edit_row(d, IN_CATEGORY, 2, from_="prod-nowhere"),
    f"{IN_CATEGORY}:2:from: no Product with id 'prod-nowhere'",
)
simple(
    "unknown-to-IN_CATEGORY",
    lambda d: edit_row(d, IN_CATEGORY, 3, to="cat-nowhere"),
    f"{IN_CATEGORY}:3:to: no Category with id 'cat-nowhere'",
)
simple(
    "unknown-to-HAS_SELLING_POINT",
    lambda d: edit_row(d, HAS_SP, 8, to="sp-nowhere"),
    f"{HAS_SP}:8:to: no SellingPoint with id 'sp-nowhere'",
)
simple(
    "unknown-from-ILLUSTRATES",
    lambda d: edit_row(d, ILLUSTRATES, 6, from_="clip-nowhere"),
    f"{ILLUSTRATES}:6:from: no CreativeClip with id 'clip-nowhere'",
)
simple(
    "unknown-to-FEATURES",
    lambda d: edit_row(d, FEATURES, 7, to="prod-nowhere"),
    f"{FEATURES}:7:to: no Product with id 'prod-nowhere'",
)
simple(
    "unknown-to-HAS_MOTION",
    lambda d: edit_row(d, HAS_MOTION, 8, to="motion-moonwalk"),
    f"{HAS_MOTION}:8:to: no Motion with id 'motion-moonwalk'",
)
simple(
    "unknown-from-and-to-in-new-row",
    lambda d: insert_row(d, HAS_MOTION, 25, {"from": "clip-x", "to": "motion-y"}),
    f"{HAS_MOTION}:25:from: no CreativeClip with id 'clip-x'",
    f"{HAS_MOTION}:25:to: no Motion with id 'motion-y'",
)
simple(
    "relationship-to-invalid-new-node",  # the node row is refused, so the relationship's end is unknown too
    lambda d: (
        insert_row(d, PROD, 7, {"id": "prod-new", "name": ""}),
        insert_row(d, IN_CATEGORY, 7, {"from": "prod-new", "to": "cat-0000"}),
    ),
    f"{PROD}:7:name: String should have at least 1 character",
    f"{IN_CATEGORY}:7:from: no Product with id 'prod-new'",
)
simple(
    "wrong-label-ILLUSTRATES-to-Product",
    lambda d: insert_row(d, ILLUSTRATES, 25, {"from": "clip-0000005-003", "to": "prod-0000005", "status": "approved"}),
    f"{ILLUSTRATES}:25:to: no SellingPoint with id 'prod-0000005'",
)
simple(
    "wrong-label-IN_CATEGORY-to-Product",
    lambda d: edit_row(d, IN_CATEGORY, 4, to="prod-0000000"),
    f"{IN_CATEGORY}:4:to: no Category with id 'prod-0000000'",
)
simple(
    "wrong-label-FEATURES-from-Product",
    lambda d: insert_row(d, FEATURES, 1, {"from": "prod-0000001", "to": "prod-0000000"}),
    f"{FEATURES}:1:from: no CreativeClip with id 'prod-0000001'",
)
simple(
    "wrong-label-HAS_MOTION-to-Category",
    lambda d: edit_row(d, HAS_MOTION, 3, to="cat-0001"),
    f"{HAS_MOTION}:3:to: no Motion with id 'cat-0001'",
)
simple(
    "reversed-HAS_SELLING_POINT",
    lambda d: insert_row(d, HAS_SP, 31, {"from": "sp-0000005-4", "to": "prod-0000005"}),
    f"{HAS_SP}:31:from: no Product with id 'sp-0000005-4'",
    f"{HAS_SP}:31:to: no SellingPoint with id 'prod-0000005'",
)

# --- values out of range -------------------------------------------------------------------------
simple(
    "bad-status",
    lambda d: edit_row(d, ILLUSTRATES, 7, status="accepted"),
    f"{ILLUSTRATES}:7:status: Input should be 'proposed', 'approved' or 'rejected'",
)
simple(
    "bad-status-capitalised",
    lambda d: edit_row(d, ILLUSTRATES, 7, status="Approved"),
    f"{ILLUSTRATES}:7:status: Input should be 'proposed', 'approved' or 'rejected'",
)
simple(
    "score-below-0",
    lambda d: edit_row(d, ILLUSTRATES, 8, score=-0.01),
    f"{ILLUSTRATES}:8:score: Input should be greater than or equal to 0",
)
simple(
    "score-above-1",
    lambda d: edit_row(d, ILLUSTRATES, 8, score=1.5),
    f"{ILLUSTRATES}:8:score: Input should be less than or equal to 1",
)
simple(
    "score-NaN-literal",
    lambda d: set_line(
        d,
        ILLUSTRATES,
        9,
        get_lines(d, ILLUSTRATES)[8].split(b'"score":')[0] + b'"score":NaN,"status":"approved","to":"sp-0000001-3"}',
    ),
    f"{ILLUSTRATES}:9:score: Value error, must be a finite number",
)
simple(
    "motion_dx-Infinity-literal",
    lambda d: set_line(d, CLIP, 13, get_lines(d, CLIP)[12].replace(b'"motion_dx":', b'"motion_dx":Infinity,"x":')),
    f"{CLIP}:13:motion_dx: Value error, must be a finite number",
    f"{CLIP}:13:x: Extra inputs",
    count=2,
)
simple(
    "duration-minus-Infinity-literal",
    lambda d: set_line(d, CLIP, 13, get_lines(d, CLIP)[12].replace(b'"caption":', b'"duration_s":-Infinity,"caption":')),
    f"{CLIP}:13:duration_s: Value error, must be a finite number",
)
simple(
    "negative-duration",
    lambda d: edit_row(d, CLIP, 14, duration_s=-1.0),
    f"{CLIP}:14:duration_s: Input should be greater than or equal to 0",
)
simple("zero-fps", lambda d: edit_row(d, CLIP, 14, fps=0), f"{CLIP}:14:fps: Input should be greater than 0")
simple("negative-fps", lambda d: edit_row(d, CLIP, 14, fps=-25.0), f"{CLIP}:14:fps: Input should be greater than 0")
simple("width-0", lambda d: edit_row(d, CLIP, 15, width=0), f"{CLIP}:15:width: Input should be greater than or equal to 1")
simple(
    "negative-height",
    lambda d: edit_row(d, CLIP, 15, height=-480),
    f"{CLIP}:15:height: Input should be greater than or equal to 1",
)
simple(
    "num_frames-0",
    lambda d: edit_row(d, CLIP, 15, num_frames=0),
    f"{CLIP}:15:num_frames: Input should be greater than or equal to 1",
)
simple(
    "negative-motion_magnitude",
    lambda d: edit_row(d, CLIP, 16, motion_magnitude=-0.1),
    f"{CLIP}:16:motion_magnitude: Input should be greater than or equal to 0",
)
simple(
    "negative-motion_jitter",
    lambda d: edit_row(d, CLIP, 16, motion_jitter=-0.1),
    f"{CLIP}:16:motion_jitter: Input should be greater than or equal to 0",
)
simple(
    "timestamp-without-microseconds",
    lambda d: edit_row(d, PROD, 2, created_at="2026-01-01T00:00:00Z"),
    f"{PROD}:2:created_at: Value error, must be an ISO-8601 UTC timestamp",
)
simple(
    "timestamp-with-offset",
    lambda d: edit_row(d, PROD, 2, updated_at="2026-01-01T00:00:00.000000+00:00"),
    f"{PROD}:2:updated_at: Value error, must be an ISO-8601 UTC timestamp",
)
simple(
    "timestamp-impossible-date",
    lambda d: edit_row(d, SP, 2, created_at="2026-02-30T00:00:00.000000Z"),
    f"{SP}:2:created_at: Value error, must be an ISO-8601 UTC timestamp",
)
simple(
    "timestamp-date-only",
    lambda d: edit_row(d, MOTION, 1, updated_at="2026-01-01"),
    f"{MOTION}:1:updated_at: Value error, must be an ISO-8601 UTC timestamp",
)
simple(
    "relationship-timestamp-bad",
    lambda d: edit_row(d, ILLUSTRATES, 10, updated_at="yesterday"),
    f"{ILLUSTRATES}:10:updated_at: Value error, must be an ISO-8601 UTC timestamp",
)
simple("version-0", lambda d: edit_row(d, CAT, 2, version=0), f"{CAT}:2:version: Input should be greater than or equal to 1")
simple(
    "version-negative",
    lambda d: edit_row(d, CLIP, 17, version=-3),
    f"{CLIP}:17:version: Input should be greater than or equal to 1",
)

# --- malformed lines -------------------------------------------------------------------------
simple("truncated-line", lambda d: set_line(d, PROD, 4, get_lines(d, PROD)[3][:-7]), f"{PROD}:4: malformed JSON")
simple("trailing-comma", lambda d: set_line(d, PROD, 4, get_lines(d, PROD)[3][:-1] + b",}"), f"{PROD}:4: malformed JSON")
simple("single-quotes", lambda d: set_line(d, CAT, 2, b"{'id': 'cat-0001', 'name': 'Category 1'}"), f"{CAT}:2: malformed JSON")
simple("unquoted-key", lambda d: set_line(d, CAT, 2, b'{id:"cat-0001","name":"Category 1"}'), f"{CAT}:2: malformed JSON")
simple(
    "two-objects-on-one-line",
    lambda d: set_line(d, CAT, 2, get_lines(d, CAT)[1] + get_lines(d, CAT)[2]),
    f"{CAT}:2: malformed JSON",
)
simple(
    "json-array-instead-of-object",
    lambda d: set_line(d, FEATURES, 3, b'["clip-0000000-002","prod-0000000"]'),
    f"{FEATURES}:3: expected a JSON object, got list",
)
simple(
    "json-string-instead-of-object", lambda d: set_line(d, SP, 3, b'"sp-0000000-2"'), f"{SP}:3: expected a JSON object, got str"
)
simple("json-null-line", lambda d: set_line(d, SP, 3, b"null"), f"{SP}:3: expected a JSON object, got NoneType")
simple("blank-line-in-the-middle", lambda d: insert_line(d, PROD, 3, b""), f"{PROD}:3: blank line")
simple("whitespace-only-line", lambda d: insert_line(d, HAS_MOTION, 12, b"   \t"), f"{HAS_MOTION}:12: blank line")
simple("two-final-newlines", lambda d: put_lines(d, MOTION, [*get_lines(d, MOTION), b""]), f"{MOTION}:11: blank line")
simple(
    "invalid-utf8-bytes",
    lambda d: set_line(d, PROD, 5, get_lines(d, PROD)[4].replace(b"Product 4", b"Product \xff\xfe4")),
    f"{PROD}:5: not valid UTF-8",
)
simple(
    "latin1-encoded-line",
    lambda d: set_line(d, CAT, 1, get_lines(d, CAT)[0].replace(b"Category 0", "Catégorie 0".encode("latin-1"))),
    f"{CAT}:1: not valid UTF-8",
)
simple("utf8-bom", lambda d: set_line(d, CAT, 1, b"\xef\xbb\xbf" + get_lines(d, CAT)[0]), f"{CAT}:1: malformed JSON")


@case("empty-file-but-manifest-count-3", f"{MANIFEST}:{CAT}: manifest says 3 rows, the file has 0")
def _empty_file(d: Path) -> None:
    (d / CAT).write_bytes(b"")
    edit_manifest(d, lambda m: (m["nodes"]["Category"].pop("sha256"), m["nodes"]["Category"].update(count=3)))


# --- manifest ---------------------------------------------------------------------------------
simple("manifest-missing", lambda d: (d / MANIFEST).unlink(), f"{MANIFEST}: missing")
simple(
    "manifest-not-json",
    lambda d: (d / MANIFEST).write_text('{"format": "ackb", "format_version": 1,', encoding="utf-8"),
    f"{MANIFEST}: not valid JSON",
)
simple(
    "manifest-not-utf8",
    lambda d: (d / MANIFEST).write_bytes((d / MANIFEST).read_bytes().replace(b'"ackb"', b'"\xe4ckb"')),
    f"{MANIFEST}: not valid JSON",
)
simple("manifest-json-array", lambda d: (d / MANIFEST).write_text("[]\n", encoding="utf-8"), f"{MANIFEST}: must be a JSON object")
simple(
    "manifest-wrong-format-name",
    lambda d: edit_manifest(d, lambda m: m.update(format="ackb2")),
    f"{MANIFEST}:format: must be 'ackb', got 'ackb2'",
)
simple(
    "manifest-format-missing",
    lambda d: edit_manifest(d, lambda m: m.pop("format")),
    f"{MANIFEST}:format: must be 'ackb', got None",
)
simple(
    "manifest-format_version-2",
    lambda d: edit_manifest(d, lambda m: m.update(format_version=2)),
    f"{MANIFEST}:format_version: this version reads format_version 1, got 2",
)
simple(
    "manifest-format_version-0", lambda d: edit_manifest(d, lambda m: m.update(format_version=0)), f"{MANIFEST}:format_version:"
)
simple(
    "manifest-format_version-string",
    lambda d: edit_manifest(d, lambda m: m.update(format_version="1")),
    f"{MANIFEST}:format_version: this version reads format_version 1, got '1'",
)
simple(
    "manifest-unknown-label",
    lambda d: edit_manifest(d, lambda m: m["nodes"].update(Widget={"file": PROD})),
    f"{MANIFEST}:nodes.Widget: unknown label",
)
simple(
    "manifest-unknown-relationship-type",
    lambda d: edit_manifest(d, lambda m: m["relationships"].update(LIKES={"file": FEATURES})),
    f"{MANIFEST}:relationships.LIKES: unknown relationship type",
)
simple(
    "manifest-label-in-relationships",
    lambda d: edit_manifest(d, lambda m: m["relationships"].update(Product=m["nodes"]["Product"])),
    f"{MANIFEST}:relationships.Product: unknown relationship type",
)
simple(
    "manifest-nodes-not-object",
    lambda d: edit_manifest(d, lambda m: m.update(nodes=[PROD])),
    f"{MANIFEST}:nodes: must be an object",
)
simple(
    "manifest-entry-not-object",
    lambda d: edit_manifest(d, lambda m: m["nodes"].update(Motion=MOTION)),
    f"{MANIFEST}:nodes.Motion: must be an object with a 'file' string",
)
simple(
    "manifest-file-not-string",
    lambda d: edit_manifest(d, lambda m: m["nodes"]["Motion"].update(file=["nodes", "Motion.jsonl"])),
    f"{MANIFEST}:nodes.Motion: must be an object with a 'file' string",
)
simple(
    "manifest-entry-without-file",
    lambda d: edit_manifest(d, lambda m: m["relationships"]["FEATURES"].pop("file")),
    f"{MANIFEST}:relationships.FEATURES: must be an object with a 'file' string",
)
simple("manifest-file-deleted", lambda d: (d / PROD).unlink(), f"{MANIFEST}:nodes.Product: file '{PROD}' does not exist")
simple(
    "manifest-file-misnamed",
    lambda d: edit_manifest(d, lambda m: m["relationships"]["HAS_MOTION"].update(file="relationships/HAS_MOTIONS.jsonl")),
    f"{MANIFEST}:relationships.HAS_MOTION: file 'relationships/HAS_MOTIONS.jsonl' does not exist",
)
simple(
    "manifest-file-is-a-directory",
    lambda d: edit_manifest(d, lambda m: m["nodes"]["Motion"].update(file="nodes")),
    f"{MANIFEST}:nodes.Motion: file 'nodes' does not exist",
)


@case(
    "manifest-path-escaping-directory",
    f"{MANIFEST}:nodes.Product: file '../outside.jsonl' must be a relative path inside the directory",
)
def _escaping(d: Path) -> None:
    (d.parent / "outside.jsonl").write_bytes((d / PROD).read_bytes())  # exists, and valid: refused for where it is
    edit_manifest(d, lambda m: m["nodes"]["Product"].update(file="../outside.jsonl"))


@case(
    "manifest-path-escaping-through-subdir",
    f"{MANIFEST}:nodes.Product: file 'nodes/../../outside.jsonl' must be a relative path inside the directory",
)
def _escaping_subdir(d: Path) -> None:
    (d.parent / "outside.jsonl").write_bytes((d / PROD).read_bytes())
    edit_manifest(d, lambda m: m["nodes"]["Product"].update(file="nodes/../../outside.jsonl"))


@case("manifest-absolute-path", f"{MANIFEST}:nodes.Product: file '/", count=1)
def _absolute(d: Path) -> None:
    absolute = str((d / PROD).resolve())  # the very same, existing, valid file: refused because absolute
    edit_manifest(d, lambda m: m["nodes"]["Product"].update(file=absolute))


@case("sha256-mismatch", f"{MANIFEST}:{PROD}: sha256 does not match the file's contents")
def _sha_mismatch(d: Path) -> None:
    before = read_manifest(d)["nodes"]["Product"]
    edit_row(d, PROD, 3, name="Product 2, edited after export")  # valid edit, same row count...
    edit_manifest(d, lambda m: m["nodes"]["Product"].update(sha256=before["sha256"]))  # ...stale checksum


simple(
    "sha256-mismatch-garbage",
    lambda d: edit_manifest(d, lambda m: m["relationships"]["ILLUSTRATES"].update(sha256="0" * 64)),
    f"{MANIFEST}:{ILLUSTRATES}: sha256 does not match",
)
simple(
    "count-mismatch-more",
    lambda d: edit_manifest(d, lambda m: m["nodes"]["Product"].update(count=7)),
    f"{MANIFEST}:{PROD}: manifest says 7 rows, the file has 6",
)
simple(
    "count-mismatch-fewer",
    lambda d: edit_manifest(d, lambda m: m["relationships"]["FEATURES"].update(count=23)),
    f"{MANIFEST}:{FEATURES}: manifest says 23 rows, the file has 24",
)
simple(
    "count-as-string",
    lambda d: edit_manifest(d, lambda m: m["nodes"]["Motion"].update(count="10")),
    f"{MANIFEST}:{MOTION}: manifest says '10' rows, the file has 10",
)


@case(
    "row-appended-after-export",
    f"{MANIFEST}:{SP}: manifest says 30 rows, the file has 31",
    f"{MANIFEST}:{SP}: sha256 does not match",
)
def _appended(d: Path) -> None:
    with (d / SP).open("ab") as handle:  # a valid row, but the manifest was not updated
        handle.write(_dump({"id": "sp-zzz", "text": "late addition"}) + b"\n")


# --- media paths ----------------------------------------------------------------------------------
simple(
    "video_path-absolute",
    lambda d: edit_row(d, CLIP, 18, video_path="/clips/a.mp4"),
    f"{CLIP}:18:video_path: Value error, must be a relative path inside media/",
)
simple(
    "video_path-with-dotdot",
    lambda d: edit_row(d, CLIP, 18, video_path="clips/../../secret.mp4"),
    f"{CLIP}:18:video_path: Value error, must be a relative path inside media/",
)
simple(
    "video_path-leading-dotdot",
    lambda d: edit_row(d, CLIP, 18, video_path="../canary.mp4"),
    f"{CLIP}:18:video_path: Value error, must be a relative path inside media/",
)
simple(
    "video_path-with-backslash",
    lambda d: edit_row(d, CLIP, 18, video_path="clips\\canary.mp4"),
    f"{CLIP}:18:video_path: Value error, must be a relative path inside media/",
)
simple(
    "video_path-empty-segment",
    lambda d: edit_row(d, CLIP, 18, video_path="clips//canary.mp4"),
    f"{CLIP}:18:video_path: Value error, must be a relative path inside media/",
)
simple(
    "video_path-dot-segment",
    lambda d: edit_row(d, CLIP, 18, video_path="./clips/canary.mp4"),
    f"{CLIP}:18:video_path: Value error, must be a relative path inside media/",
)
simple(
    "video_path-with-newline",
    lambda d: edit_row(d, CLIP, 18, video_path="clips/canary.mp4\n"),
    f"{CLIP}:18:video_path: Value error, must not contain control characters",
)
simple(
    "video_path-file-exists-nowhere",
    lambda d: edit_row(d, CLIP, 19, video_path="clips/nowhere.mp4"),
    f"{CLIP}:19:video_path: media/clips/nowhere.mp4 is neither in the import nor in the store's media folder",
)
simple(
    "video_path-is-a-directory",
    lambda d: edit_row(d, CLIP, 19, video_path="clips"),
    f"{CLIP}:19:video_path: media/clips is neither in the import nor in the store's media folder",
)

# --- the directory itself -------------------------------------------------------------------------
simple("import-dir-does-not-exist", lambda d: d / "no-such-dir", "{dir}: not a directory")


@case("import-dir-is-a-file", "{dir}: not a directory")
def _is_file(d: Path) -> Path:
    return d / MANIFEST


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def loaded(store: GraphStore, media_dir: Path, small_ackb: Path, editable_ackb: Path) -> GraphStore:
    """The store holding the small ACKB, a file of its own in the media folder, and the canary copy."""
    import_ackb(store, small_ackb, media_dir)
    write_video(media_dir / STORE_OWN_MEDIA, shade=50)  # a file no clip owns, not to be touched
    add_canary(editable_ackb)
    return store


def test_there_are_enough_distinct_cases() -> None:
    cases = CASES + BUG_CASES
    assert len(CASES) >= 55
    assert len({c.id for c in cases}) == len(cases)


def test_canary_import_is_valid_and_would_change_the_store(
    loaded: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    """Without a defect the copy imports, and the store and media folder change: the guard is live."""
    before, media_before = snapshot(loaded, media_dir, tmp_path), media_files(media_dir)
    report = import_ackb(loaded, editable_ackb, media_dir)
    assert report.created == {**{k: 0 for k in report.created}, "Category": 1, "CreativeClip": 1}
    assert report.updated["Product"] == 1 and report.media_copied == 1
    assert snapshot(loaded, media_dir, tmp_path) != before
    assert media_files(media_dir) != media_before


def check_refused(bad: Bad, store: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path) -> None:
    """Apply `bad` to the (canary) copy: the import is refused, names the places, and writes nothing."""
    before, media_before = snapshot(store, media_dir, tmp_path), media_files(media_dir)
    result = bad.mutate(editable_ackb)
    target = result if isinstance(result, Path) else editable_ackb

    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, target, media_dir)

    problems = caught.value.problems
    for expected in bad.expect:
        prefix = expected.replace("{dir}", str(target))
        assert any(p.startswith(prefix) for p in problems), f"expected a problem starting {prefix!r}, got {problems}"
    assert len(problems) == (bad.count if bad.count is not None else len(bad.expect)), problems
    assert "nothing was written" in str(caught.value)
    assert snapshot(store, media_dir, tmp_path) == before
    assert media_files(media_dir) == media_before


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_at_its_place_and_nothing_is_written(
    bad: Bad, loaded: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    check_refused(bad, loaded, media_dir, editable_ackb, tmp_path)


def test_three_bad_rows_in_three_files_are_all_reported(
    loaded: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    d = editable_ackb
    edit_row(d, PROD, 2, name="")
    edit_row(d, CLIP, 20, fps=0)
    edit_row(d, ILLUSTRATES, 11, status="maybe")
    before, media_before = snapshot(loaded, media_dir, tmp_path), media_files(media_dir)

    with pytest.raises(ImportValidationError) as caught:
        import_ackb(loaded, d, media_dir)

    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert sorted(p.split(": ")[0] for p in problems) == [f"{CLIP}:20:fps", f"{PROD}:2:name", f"{ILLUSTRATES}:11:status"]
    message = str(caught.value)
    assert message.startswith("3 problem(s) found, nothing was written")
    assert all(p in message for p in problems)
    assert snapshot(loaded, media_dir, tmp_path) == before
    assert media_files(media_dir) == media_before


def test_problems_of_every_kind_in_one_import_are_all_reported(
    loaded: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    d = editable_ackb
    insert_line(d, CAT, 2, b"{not json")  # malformed line
    insert_row(d, MOTION, 11, {**get_row(d, MOTION, 1)})  # duplicate id
    edit_row(d, CLIP, 21, tags="x", video_path="clips/missing.mp4")  # two field problems in one row
    edit_row(d, FEATURES, 12, to="prod-nowhere")  # unknown end
    edit_manifest(d, lambda m: m["relationships"]["HAS_MOTION"].update(count=99))  # count
    before, media_before = snapshot(loaded, media_dir, tmp_path), media_files(media_dir)

    with pytest.raises(ImportValidationError) as caught:
        import_ackb(loaded, d, media_dir)

    expected = [
        f"{CAT}:2: malformed JSON",
        f"{MOTION}:11:id: duplicate of line 1",
        f"{CLIP}:21:tags: ",
        f"{MANIFEST}:{HAS_MOTION}: manifest says 99 rows, the file has 24",
        f"{FEATURES}:12:to: no Product with id 'prod-nowhere'",
    ]
    problems = caught.value.problems
    assert len(problems) == len(expected), problems
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
    assert "nothing was written" in str(caught.value)
    assert snapshot(loaded, media_dir, tmp_path) == before
    assert media_files(media_dir) == media_before


def test_many_problems_are_all_kept_and_the_message_is_shortened(
    loaded: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    d = editable_ackb
    lines = get_lines(d, SP)
    put_lines(d, SP, [_dump({**json.loads(line), "text": " "}) for line in lines])  # 30 bad rows
    lines = get_lines(d, ILLUSTRATES)
    put_lines(d, ILLUSTRATES, [_dump({**json.loads(line), "score": 2}) for line in lines])  # 24 more
    before = snapshot(loaded, media_dir, tmp_path)

    with pytest.raises(ImportValidationError) as caught:
        import_ackb(loaded, d, media_dir)

    problems = caught.value.problems
    assert len(problems) == 54
    assert [p.split(": ")[0] for p in problems] == [f"{SP}:{n}:text" for n in range(1, 31)] + [
        f"{ILLUSTRATES}:{n}:score" for n in range(1, 25)
    ]
    message = str(caught.value)
    assert message.startswith("54 problem(s) found, nothing was written")
    assert "... and 4 more" in message
    assert snapshot(loaded, media_dir, tmp_path) == before


def test_refused_import_into_an_empty_store_writes_nothing(
    store: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    add_canary(editable_ackb)
    edit_row(editable_ackb, HAS_MOTION, 24, to="motion-nowhere")  # the very last row of the last file
    before = snapshot(store, media_dir, tmp_path)
    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, editable_ackb, media_dir)
    assert caught.value.problems == [f"{HAS_MOTION}:24:to: no Motion with id 'motion-nowhere' in this import or in the store"]
    assert snapshot(store, media_dir, tmp_path) == before
    assert all(not line for name, data in before.items() if name.endswith(".jsonl") for line in data.split(b"\n"))
    assert media_files(media_dir) == {}


# ---------------------------------------------------------------------------------------------
# Unicode and limits: these must import, and export back byte for byte
# ---------------------------------------------------------------------------------------------

UNICODE_EDITS: list[tuple[str, int, dict[str, Any]]] = [
    (CAT, 1, {"name": "电子产品 · 耳机", "description": "无线耳机、头戴式耳机与配件。𠀋𠂉 (CJK Ext. B)"}),
    (CAT, 2, {"name": "أجهزة صوتية", "description": "سماعات لاسلكية عالية الجودة\u200f — עם ביטול רעשים"}),
    (
        PROD,
        2,
        {
            "name": "Café Crème",
            "brand": "Cafe\u0301 Cre\u0300me",
            "description": "precomposed é vs. e + U+0301; Å vs. A\u030a; 한국어 ᄒ\u1161\u11ab",
        },
    ),
    (
        PROD,
        3,
        {
            "name": "ヘッドホン🎧",
            "brand": "👩\u200d💻 Studio",
            "description": "flags 🇯🇵🇫🇷, skin tone 👍🏽, keycap 1\ufe0f\u20e3, line 1\nline 2\ttabbed",
        },
    ),
    (SP, 1, {"text": "Зарядка за 10 минут — 충전 10분 — १० मिनट में चार्ज"}),
    (
        CLIP,
        1,
        {
            "caption": "特写镜头：🎧 在桌面上旋转 — לקוח מרוצה — z\u0306\u0301alg\u0327o",
            "tags": ["旋转", "🔥", "עברית", "n\u0303", "ﷺ"],
        },
    ),
    (MOTION, 4, {"name": "ズーム・イン ⤢"}),
    (ILLUSTRATES, 1, {"annotator": "标注员-Ω 🧑\u200d🔬"}),
]


def _line_for(data: bytes, key: tuple[str, ...], row: dict[str, Any]) -> bytes:
    matches = [
        line for line in data.split(b"\n") if line and tuple(json.loads(line)[k] for k in key) == tuple(row[k] for k in key)
    ]
    assert len(matches) == 1
    return matches[0]


def test_unicode_text_imports_and_exports_byte_identical(
    store: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    d = editable_ackb
    for relative, line, changes in UNICODE_EDITS:
        edit_row(d, relative, line, **changes)
    # a unicode id too (BMP, below the surrogates, so every backend sorts it the same way)
    put_lines(
        d,
        CAT,
        [
            *get_lines(d, CAT),
            _dump({"id": "類別-音響", "name": "音響 🔊", "created_at": STAMP, "updated_at": STAMP, "version": 1}),
        ],
    )
    put_lines(d, IN_CATEGORY, [*get_lines(d, IN_CATEGORY)[:-1], _dump({"from": "prod-0000005", "to": "類別-音響"})])

    import_ackb(store, d, media_dir)
    exported = snapshot(store, media_dir, tmp_path)

    for relative, line, _ in UNICODE_EDITS:
        given = get_lines(d, relative)[line - 1]
        row = json.loads(given)
        key = ("id",) if relative.startswith("nodes/") else ("from", "to")
        assert _line_for(exported[relative], key, row) == given
        assert given.decode("utf-8") == _dump(row).decode("utf-8")  # not ASCII-escaped, not normalised
    for relative in (CAT, PROD, SP, CLIP, MOTION, IN_CATEGORY, HAS_SP, ILLUSTRATES, FEATURES, HAS_MOTION):
        assert exported[relative] == (d / relative).read_bytes(), relative
    # combining sequences are kept as they are (no NFC/NFD normalisation)
    brand = json.loads(_line_for(exported[PROD], ("id",), {"id": "prod-0000001"}))["brand"]
    assert brand == "Cafe\u0301 Cre\u0300me" and brand != "Café Crème"


def test_values_at_the_limits_import_and_export_byte_identical(
    store: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    d = editable_ackb
    long_id = "cat-" + "z" * (MAX_ID - 4)
    put_lines(
        d,
        CAT,
        [
            *get_lines(d, CAT),
            _dump(
                {
                    "id": long_id,
                    "name": "界" * MAX_NAME,
                    "description": "文" * MAX_TEXT,
                    "created_at": STAMP,
                    "updated_at": STAMP,
                    "version": 1,
                }
            ),
        ],
    )
    edit_row(d, CLIP, 2, caption="🎬" * MAX_TEXT, tags=[f"标签{i}" for i in range(MAX_TAGS - 1)] + ["😀" * MAX_NAME])
    edit_row(d, CLIP, 3, duration_s=0.0, fps=0.001, width=1, height=1, num_frames=1, motion_magnitude=0.0, motion_jitter=0.0)
    edit_row(d, ILLUSTRATES, 2, score=0.0)
    edit_row(d, ILLUSTRATES, 3, score=1.0)
    edit_row(d, SP, 4, text="text may hold tab \t, new\nline and carriage return\r\n, and no other control character")

    import_ackb(store, d, media_dir)
    exported = snapshot(store, media_dir, tmp_path)

    for relative in (CAT, SP, CLIP, ILLUSTRATES):
        assert exported[relative] == (d / relative).read_bytes(), relative
    assert _line_for(exported[CAT], ("id",), {"id": long_id}) == get_lines(d, CAT)[-1]


# ---------------------------------------------------------------------------------------------
# Bad input found while writing this file that the importer first mishandled (bool format_version,
# C1 control characters, integers beyond INT64, pathological JSON); fixed in kb/, kept as cases.
# ---------------------------------------------------------------------------------------------

BUG_CASES: list[Bad] = [
    # "format_version must be 1; anything else is refused": JSON `true` is accepted (True == 1 in Python).
    Bad(
        "manifest-format_version-true",
        lambda d: edit_manifest(d, lambda m: m.update(format_version=True)),
        (f"{MANIFEST}:format_version: this version reads format_version 1, got True",),
    ),
    # "id ... no control characters": U+0085 (NEL, a C1 control, category Cc, and a line break for
    # str.splitlines) passes, because records._CONTROL only covers U+0000-U+001F and U+007F.
    Bad(
        "id-with-C1-control-NEL",
        lambda d: insert_row(d, PROD, 3, {"id": "prod-\x85new", "name": "x"}),
        (f"{PROD}:3:id: Value error, must not contain control characters",),
    ),
    Bad(
        "name-with-C1-control-CSI",
        lambda d: edit_row(d, MOTION, 5, name="pan\x9bleft"),
        (f"{MOTION}:5:name: Value error, must not contain control characters",),
    ),
    # Integers the store cannot hold (INT64) pass validation; the write then fails with a StoreError
    # (no FILE:LINE:FIELD) AFTER the import's media files were copied over the store's media folder.
    Bad("width-over-int64", lambda d: edit_row(d, CLIP, 2, width=2**64), (f"{CLIP}:2:width: ",)),
    Bad("version-over-int64", lambda d: edit_row(d, PROD, 2, version=2**63), (f"{PROD}:2:version: ",)),
    # json.loads raises RecursionError / ValueError here, which _objects/_read_manifest do not catch.
    Bad("deeply-nested-json-line", lambda d: set_line(d, CAT, 2, b"[" * 100_000 + b"]" * 100_000), (f"{CAT}:2: ",)),
    Bad(
        "integer-literal-over-4300-digits",
        lambda d: set_line(d, CLIP, 2, get_lines(d, CLIP)[1].replace(b'"caption"', b'"width":' + b"9" * 5000 + b',"caption"')),
        (f"{CLIP}:2:",),
    ),
    Bad(
        "manifest-deeply-nested",
        lambda d: (d / MANIFEST).write_bytes(b'{"format":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        (f"{MANIFEST}: not valid JSON",),
    ),
]


@pytest.mark.parametrize("bad", BUG_CASES, ids=[c.id for c in BUG_CASES])
def test_bad_input_once_mishandled_is_refused(
    bad: Bad, loaded: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path
) -> None:
    check_refused(bad, loaded, media_dir, editable_ackb, tmp_path)
