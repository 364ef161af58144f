"""The ACKB graph schema (docs/decisions.md#schema-the-ackb-graph) in one place: labels, properties, relationship types.

Everything else (migrations aside) reads the schema from here: the interchange validator, the bulk
loader, the repository and `kb stats`. Migrations create the same tables/constraints in each dialect;
`tests/test_migrations.py` checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PropertyType = Literal["STRING", "STRING[]", "DOUBLE", "INT64"]

# Every node carries these, set by the store, never by the caller of a repository function.
AUDIT_PROPERTIES: dict[str, PropertyType] = {
    "created_at": "STRING",  # ISO-8601 UTC, e.g. 2026-11-25T12:00:00.000000Z
    "updated_at": "STRING",
    "version": "INT64",  # optimistic-concurrency counter, starts at 1
}

MOTION_DESCRIPTORS: tuple[str, ...] = (
    "motion_dx",  # mean horizontal optical flow, pixels/frame at 256 px (positive: content moves right)
    "motion_dy",  # mean vertical optical flow, pixels/frame (positive: content moves down)
    "motion_magnitude",  # mean flow vector length, pixels/frame
    "motion_divergence",  # mean divergence of the flow field (positive: zoom in / expansion)
    "motion_curl",  # mean curl of the flow field (positive: counter-clockwise rotation on screen)
    "motion_jitter",  # std of the per-frame mean flow over time (high: shake)
)

ILLUSTRATION_STATUSES: tuple[str, ...] = ("proposed", "approved", "rejected")


@dataclass(frozen=True)
class NodeType:
    """One node label: its own properties (beyond `id` and the audit properties)."""

    label: str
    properties: dict[str, PropertyType]
    media: str | None = None  # the property naming the record's own file under media/, if it has one

    @property
    def all_properties(self) -> dict[str, PropertyType]:
        """`id`, own properties, then audit properties, in storage order."""
        return {"id": "STRING", **self.properties, **AUDIT_PROPERTIES}


@dataclass(frozen=True)
class RelType:
    """One relationship type between two labels, with its properties."""

    type: str
    source: str
    target: str
    properties: dict[str, PropertyType] = field(default_factory=dict)


NODE_TYPES: dict[str, NodeType] = {
    n.label: n
    for n in (
        NodeType("Category", {"name": "STRING", "description": "STRING"}),
        NodeType("Product", {"name": "STRING", "brand": "STRING", "description": "STRING"}),
        NodeType("SellingPoint", {"text": "STRING"}),
        NodeType(
            "CreativeClip",
            {
                "caption": "STRING",
                "tags": "STRING[]",
                "video_path": "STRING",  # relative to the data dir's media/ folder; may be null
                "duration_s": "DOUBLE",
                "fps": "DOUBLE",
                "width": "INT64",
                "height": "INT64",
                "num_frames": "INT64",
                **{name: "DOUBLE" for name in MOTION_DESCRIPTORS},
            },
            media="video_path",
        ),
        NodeType("Motion", {"name": "STRING", "description": "STRING"}),
        NodeType(
            "GeneratedVideo",  # provenance of one generated video (migration V0002)
            {
                "video_path": "STRING",  # relative to the data dir's media/ folder, e.g. generated/gv-1.mp4
                "model_id": "STRING",
                "prompt": "STRING",
                "negative_prompt": "STRING",
                "seed": "INT64",
                "parameters": "STRING",  # a JSON object: frames, size, steps, guidance, motion_strength...
                "timings": "STRING",  # a JSON object: seconds per stage
            },
            media="video_path",
        ),
        NodeType(
            "MotionLora",  # a motion LoRA trained on one clip's temporal attention (migration V0005)
            {
                "file_path": "STRING",  # relative to the data dir's media/ folder, e.g. motion-lora/<key>.safetensors
                "sha256": "STRING",  # content hash of that file
                "model_id": "STRING",  # the backbone's folder name
                "backbone_sha256": "STRING",  # content hash of the backbone folder it was trained on
                "clip_sha256": "STRING",  # content hash of the reference clip's video
                "rank": "INT64",
                "alpha": "DOUBLE",
                "steps": "INT64",
                "learning_rate": "DOUBLE",
                "seed": "INT64",
                "num_frames": "INT64",  # the clip was resampled to this many frames and this size
                "width": "INT64",
                "height": "INT64",
                "loss": "STRING",  # the training loss's name
                "loss_before": "DOUBLE",  # mean loss on fixed (timestep, noise) draws before training
                "loss_after": "DOUBLE",  # ... and after
                "train_s": "DOUBLE",
                "trained_at": "STRING",  # ISO-8601 UTC
            },
            media="file_path",
        ),
    )
}

REL_TYPES: dict[str, RelType] = {
    r.type: r
    for r in (
        RelType("IN_CATEGORY", "Product", "Category"),
        RelType("HAS_SELLING_POINT", "Product", "SellingPoint"),
        RelType(
            "ILLUSTRATES",
            "CreativeClip",
            "SellingPoint",
            {"status": "STRING", "score": "DOUBLE", "annotator": "STRING", "updated_at": "STRING"},
        ),
        # Two selling points that make the same claim in other words (migration V0004); stored once per
        # pair, from the smaller id to the larger. Proposed by SAR, judged by annotators like ILLUSTRATES.
        RelType(
            "SAME_CLAIM",
            "SellingPoint",
            "SellingPoint",
            {"status": "STRING", "score": "DOUBLE", "annotator": "STRING", "updated_at": "STRING"},
        ),
        RelType("FEATURES", "CreativeClip", "Product"),
        RelType("HAS_MOTION", "CreativeClip", "Motion"),
        RelType("REFERENCED", "GeneratedVideo", "CreativeClip", {"rank": "INT64"}),  # rank 1 = best reference
        # The design named this `FOR`, but FOR is a reserved word in Ladybug's Cypher parser and every
        # schema-driven query writes types unquoted, so the stored type is GENERATED_FOR.
        RelType("GENERATED_FOR", "GeneratedVideo", "SellingPoint"),
        RelType("TRAINED_ON", "MotionLora", "CreativeClip"),  # the clip whose motion the LoRA learnt
        RelType("USED_LORA", "GeneratedVideo", "MotionLora", {"scale": "DOUBLE"}),  # applied at this scale
    )
}

# Where the migration runner records applied migrations (not part of the ACKB proper, never exported).
MIGRATION_LABEL = "SchemaMigration"

# The curation audit trail (migration V0003): one node per change an annotator made, kept apart from
# the knowledge itself like SchemaMigration (not in NODE_TYPES: never exported, imported or counted
# by `kb stats`). Not linked to the changed node, so history outlives a deleted record.
AUDIT_LABEL = "AuditEvent"
AUDIT_EVENT_PROPERTIES: dict[str, PropertyType] = {
    "id": "STRING",  # `<at>-<random hex>`: unique, and sorts in time order (keyset paging)
    "at": "STRING",  # ISO-8601 UTC, as kb.timestamps
    "actor": "STRING",
    "action": "STRING",  # create, update, delete, link, unlink, set_status, set_tags, upload, conflict
    "entity_label": "STRING",  # a node label or relationship type
    "entity_id": "STRING",  # node id, or `from->to` for a relationship
    "before": "STRING",  # JSON object of the properties before the change, null for a creation
    "after": "STRING",  # JSON object of the properties after the change, null for a deletion
}


def node_type(label: str) -> NodeType:
    """The node type for `label`, or a clear error listing the known labels."""
    try:
        return NODE_TYPES[label]
    except KeyError:
        raise KeyError(f"unknown label {label!r}; known labels: {', '.join(NODE_TYPES)}") from None


def rel_type(type_: str) -> RelType:
    """The relationship type for `type_`, or a clear error listing the known types."""
    try:
        return REL_TYPES[type_]
    except KeyError:
        raise KeyError(f"unknown relationship type {type_!r}; known types: {', '.join(REL_TYPES)}") from None
