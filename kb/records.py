"""Pydantic models of every ACKB record: the one validation used by import, the repository and the UI.

Strict types (no "3" for 3), unknown fields refused, lengths bounded, no control characters in
ids and names (texts may hold tab, newline and carriage return, nothing else of the kind), ids from
an allow-list of characters, timestamps in the stored format, JSON without repeated keys. `tests/test_schema.py` checks these models agree
with `kb.schema`.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kb.timestamps import is_timestamp
from kdcvg.errors import BadInputError

MAX_ID = 200
MAX_NAME = 200
MAX_TEXT = 10_000
MAX_TAGS = 50
MAX_JSON = 20_000  # characters of a JSON-object property (generation parameters, timings)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 control characters
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # the same, less tab, newline, carriage return
INT64_MAX = 2**63 - 1  # both backends store integers as 64-bit

ID_PUNCTUATION = frozenset("-_.:@+")
# Letters and marks that show nothing (Unicode default-ignorable): refused in ids, where they would
# make two ids that look the same. Format characters (bidi controls, zero-width) are not letters anyway.
_INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x3164, 0xFFA0, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
)


class DuplicateKeyError(BadInputError):
    """A JSON object names the same key twice (which json.loads would silently resolve to the last)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads: refuse a repeated key instead of keeping the last value."""
    result = dict(pairs)
    if len(result) != len(pairs):
        repeated = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise DuplicateKeyError(f"duplicate key {repeated!r}")
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys)


def loads_json(text: str) -> Any:
    """json.loads refusing repeated keys in any object (DuplicateKeyError, a ValueError)."""
    return _DECODER.decode(text)


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL...)")
    return value


def _text_characters(value: str) -> str:
    if _TEXT_CONTROL.search(value):
        raise ValueError("must not contain control characters other than tab, newline and carriage return (NUL, ESC...)")
    return value


_ASCII_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.:@+]*")  # the common case, checked at C speed


def _id_characters(value: str) -> str:
    """An allow-list: letters, digits and marks of any script, and - _ . : @ +; starting with a letter or digit."""
    if _ASCII_ID.fullmatch(value):
        return value
    for position, char in enumerate(value):
        allowed = char.isalnum() or (position > 0 and (char in ID_PUNCTUATION or unicodedata.category(char) in ("Mn", "Mc")))
        if not allowed or ord(char) in _INVISIBLE:
            raise ValueError(
                f"character {ascii(char)} at position {position + 1} is not allowed: ids hold letters, digits and marks "
                "of any script and - _ . : @ + (not first), no spaces, invisible or direction-changing characters"
            )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


def _timestamp(value: str) -> str:
    if not is_timestamp(value):
        raise ValueError("must be an ISO-8601 UTC timestamp like 2026-01-31T12:00:00.000000Z")
    return value


def _media_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise ValueError("must be a relative path inside media/ using '/', without '..' (e.g. clips/c1.mp4)")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _json_object(value: str) -> str:
    try:
        parsed = loads_json(value)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"must be a JSON object encoded as a string: {str(exc)[:200]}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"must be a JSON object encoded as a string, got a JSON {type(parsed).__name__}")
    return value


Id = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID),
    AfterValidator(_not_blank),
    AfterValidator(_no_control_characters),
    AfterValidator(_id_characters),
]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_not_blank), AfterValidator(_no_control_characters)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank), AfterValidator(_text_characters)]
Timestamp = Annotated[str, AfterValidator(_timestamp)]
MediaPath = Annotated[str, Field(max_length=500), AfterValidator(_no_control_characters), AfterValidator(_media_path)]
Number = Annotated[float, AfterValidator(_finite)]
JsonObject = Annotated[str, Field(min_length=2, max_length=MAX_JSON), AfterValidator(_json_object)]


class Record(BaseModel):
    """Common configuration: strict, closed, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    def row(self) -> dict[str, Any]:
        """The record as a storage/interchange row (aliases like `from` applied, nulls kept)."""
        return self.model_dump(by_alias=True)


class NodeRecord(Record):
    """Fields every node has."""

    id: Id
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    version: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None


class Category(NodeRecord):
    name: Name
    description: Text | None = None


class Product(NodeRecord):
    name: Name
    brand: Name | None = None
    description: Text | None = None


class SellingPoint(NodeRecord):
    text: Text


class CreativeClip(NodeRecord):
    caption: Text
    tags: Annotated[list[Name], Field(max_length=MAX_TAGS)] | None = None
    video_path: MediaPath | None = None
    duration_s: Annotated[Number, Field(ge=0)] | None = None
    fps: Annotated[Number, Field(gt=0)] | None = None
    width: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    height: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    num_frames: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    motion_dx: Number | None = None
    motion_dy: Number | None = None
    motion_magnitude: Annotated[Number, Field(ge=0)] | None = None
    motion_divergence: Number | None = None
    motion_curl: Number | None = None
    motion_jitter: Annotated[Number, Field(ge=0)] | None = None


class Motion(NodeRecord):
    name: Name
    description: Text | None = None


class GeneratedVideo(NodeRecord):
    """Provenance of one generated video: what made it, from which prompt, seed and settings."""

    video_path: MediaPath
    model_id: Name
    prompt: Text
    negative_prompt: Text | None = None
    seed: Annotated[int, Field(ge=0, le=INT64_MAX)]
    parameters: JsonObject
    timings: JsonObject | None = None


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _lora_file(value: str) -> str:
    if not value.endswith(".safetensors"):
        raise ValueError("must name a .safetensors file (e.g. motion-lora/<key>.safetensors)")
    return value


class MotionLora(NodeRecord):
    """A motion LoRA: its weights file, how it was trained and on which backbone and clip content."""

    file_path: Annotated[MediaPath, AfterValidator(_lora_file)]
    sha256: Sha256
    model_id: Name
    backbone_sha256: Sha256
    clip_sha256: Sha256
    rank: Annotated[int, Field(ge=1, le=4096)]
    alpha: Annotated[Number, Field(gt=0)]
    steps: Annotated[int, Field(ge=1, le=INT64_MAX)]
    learning_rate: Annotated[Number, Field(gt=0)]
    seed: Annotated[int, Field(ge=0, le=INT64_MAX)]
    num_frames: Annotated[int, Field(ge=2, le=INT64_MAX)]
    width: Annotated[int, Field(ge=1, le=INT64_MAX)]
    height: Annotated[int, Field(ge=1, le=INT64_MAX)]
    loss: Name
    loss_before: Annotated[Number, Field(ge=0)] | None = None
    loss_after: Annotated[Number, Field(ge=0)] | None = None
    train_s: Annotated[Number, Field(ge=0)] | None = None
    trained_at: Timestamp


class RelationshipRecord(Record):
    """Fields every relationship row has: the ids of its two ends."""

    source: Id = Field(alias="from")
    target: Id = Field(alias="to")


class InCategory(RelationshipRecord):
    pass


class HasSellingPoint(RelationshipRecord):
    pass


class Illustrates(RelationshipRecord):
    status: Literal["proposed", "approved", "rejected"]
    score: Annotated[Number, Field(ge=0, le=1)] | None = None
    annotator: Name | None = None
    updated_at: Timestamp | None = None


class SameClaim(Illustrates):
    """Two selling points making the same claim; one row per pair, `from` < `to`, never a selling point with itself."""

    @model_validator(mode="after")
    def _one_row_per_pair(self) -> SameClaim:
        if self.source == self.target:
            raise ValueError("a selling point cannot make the same claim as itself (from and to are equal)")
        if self.source > self.target:
            raise ValueError(f"store each pair once with from < to: write from {self.target!r} to {self.source!r}")
        return self


class Features(RelationshipRecord):
    pass


class HasMotion(RelationshipRecord):
    pass


class Referenced(RelationshipRecord):
    rank: Annotated[int, Field(ge=1, le=INT64_MAX)]


class GeneratedFor(RelationshipRecord):
    pass


class TrainedOn(RelationshipRecord):
    pass


class UsedLora(RelationshipRecord):
    scale: Annotated[Number, Field(ge=0, le=2)]


NODE_RECORDS: dict[str, type[NodeRecord]] = {
    "Category": Category,
    "Product": Product,
    "SellingPoint": SellingPoint,
    "CreativeClip": CreativeClip,
    "Motion": Motion,
    "GeneratedVideo": GeneratedVideo,
    "MotionLora": MotionLora,
}

REL_RECORDS: dict[str, type[RelationshipRecord]] = {
    "IN_CATEGORY": InCategory,
    "HAS_SELLING_POINT": HasSellingPoint,
    "ILLUSTRATES": Illustrates,
    "SAME_CLAIM": SameClaim,
    "FEATURES": Features,
    "HAS_MOTION": HasMotion,
    "REFERENCED": Referenced,
    "GENERATED_FOR": GeneratedFor,
    "TRAINED_ON": TrainedOn,
    "USED_LORA": UsedLora,
}
