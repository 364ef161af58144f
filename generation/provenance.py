"""Recording what made a generated video: a `GeneratedVideo` node with its REFERENCED clips, the
selling point it was made for (GENERATED_FOR; not `FOR`, which is reserved in Ladybug) and the
motion LoRA it applied (USED_LORA {scale}); and the `MotionLora` nodes themselves (TRAINED_ON a clip).

Everything is validated with `kb.records` first; then ONE write transaction checks that the id is
free and every end exists, and creates the node and its links, or raises and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from generation.prompt import PromptPlan
from kb.records import NODE_RECORDS, REL_RECORDS
from kb.repository import RecordValidationError, validation_message
from kb.safefs import is_regular_inside
from kb.store import ConflictError, GraphStore, NotFoundError, Row, Transaction
from kb.timestamps import utc_now
from kb.values import stored_properties
from kdcvg.errors import BadInputError

LABEL = "GeneratedVideo"
REFERENCED = "REFERENCED"
FOR = "GENERATED_FOR"
LORA = "MotionLora"
TRAINED_ON = "TRAINED_ON"
USED_LORA = "USED_LORA"


def _json(value: dict[str, Any], name: str) -> str:
    if not isinstance(value, dict):
        raise RecordValidationError(f"invalid {LABEL}: {name} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecordValidationError(f"invalid {LABEL}: {name} is not JSON-serialisable: {exc}") from None


def _validate(model: type, record: Row, what: str) -> Row:
    try:
        return model.model_validate(record).row()
    except ValidationError as exc:
        raise RecordValidationError(f"invalid {what}: {validation_message(exc)}") from None


def record_generation(
    store: GraphStore,
    *,
    video_id: str,
    video_path: str,
    model_id: str,
    prompt_plan: PromptPlan,
    seed: int,
    parameters: dict[str, Any],
    timings: dict[str, Any],
    selling_point_id: str,
    reference_clip_ids: Sequence[str],
    motion_lora: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """Store one generation's provenance; returns {"node": row, "referenced": rows, "for": row, "used_lora": row | None}.

    `motion_lora` is (MotionLora id, scale) when a LoRA was applied: linked by USED_LORA {scale}.

    `reference_clip_ids` are ranked (best first; rank 1, 2, ...). Raises RecordValidationError (a
    ValueError) for invalid values or repeated clips, NotFoundError for an unknown selling point or
    clip, ConflictError for an id in use; in every case nothing is written.
    """
    if not isinstance(prompt_plan, PromptPlan):
        raise TypeError(f"prompt_plan must be a PromptPlan, got {type(prompt_plan).__name__}")
    references = list(reference_clip_ids)
    if len(set(references)) != len(references):
        raise RecordValidationError(f"invalid {REFERENCED}: reference clip ids must not repeat: {references}")
    now = utc_now()
    node = _validate(
        NODE_RECORDS[LABEL],
        {
            "id": video_id,
            "video_path": video_path,
            "model_id": model_id,
            "prompt": prompt_plan.prompt,
            "negative_prompt": prompt_plan.negative_prompt or None,
            "seed": seed,
            "parameters": _json(parameters, "parameters"),
            "timings": _json(timings, "timings"),
            "created_at": now,
            "updated_at": now,
            "version": 1,
        },
        LABEL,
    )
    links = [
        _validate(REL_RECORDS[REFERENCED], {"from": video_id, "to": clip_id, "rank": rank}, REFERENCED)
        for rank, clip_id in enumerate(references, start=1)
    ]
    target = _validate(REL_RECORDS[FOR], {"from": video_id, "to": selling_point_id}, FOR)
    used = None if motion_lora is None else _validate(
        REL_RECORDS[USED_LORA], {"from": video_id, "to": motion_lora[0], "scale": motion_lora[1]}, USED_LORA
    )

    def work(tx: Transaction) -> dict[str, Any]:
        if tx.run(f"MATCH (n:{LABEL} {{id: $id}}) RETURN n.id AS id", id=video_id):
            raise ConflictError(f"{LABEL} {video_id!r} already exists")
        if not tx.run("MATCH (s:SellingPoint {id: $id}) RETURN s.id AS id", id=selling_point_id):
            raise NotFoundError(f"no SellingPoint with id {selling_point_id!r}")
        present = {r["id"] for r in tx.run("UNWIND $ids AS i MATCH (c:CreativeClip {id: i}) RETURN c.id AS id", ids=references)}
        missing = [clip_id for clip_id in references if clip_id not in present]
        if missing:
            raise NotFoundError(f"no CreativeClip with id {', '.join(map(repr, missing))}")
        if used is not None and not tx.run(f"MATCH (m:{LORA} {{id: $id}}) RETURN m.id AS id", id=used["to"]):
            raise NotFoundError(f"no {LORA} with id {used['to']!r}")
        names = [name for name in node if name != "id"]
        assignments = ", ".join(f"n.{name} = $p_{name}" for name in names)
        tx.run(f"CREATE (n:{LABEL} {{id: $id}}) SET {assignments}", id=video_id, **{f"p_{name}": node[name] for name in names})
        for link in links:
            tx.run(
                f"MATCH (g:{LABEL} {{id: $source}}), (c:CreativeClip {{id: $target}}) CREATE (g)-[:{REFERENCED} {{rank: $rank}}]->(c)",
                source=link["from"],
                target=link["to"],
                rank=link["rank"],
            )
        tx.run(
            f"MATCH (g:{LABEL} {{id: $source}}), (s:SellingPoint {{id: $target}}) CREATE (g)-[:{FOR}]->(s)",
            source=target["from"],
            target=target["to"],
        )
        if used is not None:
            tx.run(
                f"MATCH (g:{LABEL} {{id: $source}}), (m:{LORA} {{id: $target}}) CREATE (g)-[:{USED_LORA} {{scale: $scale}}]->(m)",
                source=used["from"], target=used["to"], scale=used["scale"],
            )  # fmt: skip
        return {"node": node, "referenced": links, "for": target, "used_lora": used}

    return store.write(work)


def clip_video(store: GraphStore, clip_id: str, media_dir: Path) -> Path:
    """The video file of a stored clip; NotFoundError for an unknown clip, BadInputError when it has no file here."""
    rows = store.read(lambda tx: tx.run("MATCH (c:CreativeClip {id: $id}) RETURN c.video_path AS path", id=clip_id))
    if not rows:
        raise NotFoundError(f"no CreativeClip with id {clip_id!r}")
    relative = rows[0]["path"]
    if not relative or not is_regular_inside(Path(media_dir), relative):
        raise BadInputError(f"clip {clip_id!r} has no video file under {media_dir}")
    return Path(media_dir) / relative


def motion_lora_by_id(store: GraphStore, lora_id: str) -> Row | None:
    """The MotionLora node's properties with `clip` (the id it was TRAINED_ON), or None."""
    query = f"MATCH (m:{LORA} {{id: $id}}) OPTIONAL MATCH (m)-[:{TRAINED_ON}]->(c:CreativeClip) RETURN m, c.id AS clip"
    rows = store.read(lambda tx: tx.run(query, id=lora_id))
    return {**stored_properties(rows[0]["m"]), "clip": rows[0]["clip"]} if rows else None


def motion_lora_for_clip(store: GraphStore, clip_id: str, clip_sha256: str, backbone_sha256: str) -> Row | None:
    """The newest MotionLora TRAINED_ON this clip, for the clip's current bytes and this backbone's content, or None."""
    query = (
        f"MATCH (m:{LORA})-[:{TRAINED_ON}]->(c:CreativeClip {{id: $clip}}) "
        "WHERE m.clip_sha256 = $clip_sha256 AND m.backbone_sha256 = $backbone RETURN m ORDER BY m.trained_at DESC, m.id LIMIT 1"
    )
    rows = store.read(lambda tx: tx.run(query, clip=clip_id, clip_sha256=clip_sha256, backbone=backbone_sha256))
    return {**stored_properties(rows[0]["m"]), "clip": clip_id} if rows else None


def motion_loras_for_selling_point(store: GraphStore, selling_point_id: str, backbone_sha256: str) -> list[Row]:
    """MotionLoras for this backbone TRAINED_ON a clip that ILLUSTRATES the selling point (link not rejected), newest first."""
    query = (
        f"MATCH (m:{LORA})-[:{TRAINED_ON}]->(c:CreativeClip)-[r:ILLUSTRATES]->(s:SellingPoint {{id: $sp}}) "
        "WHERE m.backbone_sha256 = $backbone AND r.status <> 'rejected' "
        "RETURN m.id AS id, c.id AS clip, m.steps AS steps, m.trained_at AS trained_at ORDER BY m.trained_at DESC, m.id"
    )
    return store.read(lambda tx: tx.run(query, sp=selling_point_id, backbone=backbone_sha256))


def record_motion_lora(store: GraphStore, row: Row, clip_id: str) -> Row:
    """Create (or, retrained, update) a MotionLora node and its TRAINED_ON link in one transaction; the stored row.

    RecordValidationError for invalid values, NotFoundError for an unknown clip; nothing is written then.
    """
    now = utc_now()
    node = _validate(NODE_RECORDS[LORA], {**row, "created_at": now, "updated_at": now, "version": 1}, LORA)
    link = _validate(REL_RECORDS[TRAINED_ON], {"from": node["id"], "to": clip_id}, TRAINED_ON)
    names = [name for name in node if name not in ("id", "created_at", "version")]
    assignments = ", ".join(f"m.{name} = $p_{name}" for name in names)
    values = {f"p_{name}": node[name] for name in names}

    def work(tx: Transaction) -> Row:
        if not tx.run("MATCH (c:CreativeClip {id: $id}) RETURN c.id AS id", id=clip_id):
            raise NotFoundError(f"no CreativeClip with id {clip_id!r}")
        stored = tx.run(f"MATCH (m:{LORA} {{id: $id}}) RETURN m.version AS version, m.created_at AS created", id=node["id"])
        if stored:
            version, created = stored[0]["version"] + 1, stored[0]["created"]
            tx.run(f"MATCH (m:{LORA} {{id: $id}}) SET {assignments}, m.version = $version", id=node["id"], version=version, **values)
        else:
            version, created = 1, now
            tx.run(f"CREATE (m:{LORA} {{id: $id}}) SET {assignments}, m.created_at = $now, m.version = 1", id=node["id"], now=now, **values)
        if not tx.run(f"MATCH (m:{LORA} {{id: $id}})-[:{TRAINED_ON}]->(c:CreativeClip {{id: $clip}}) RETURN c.id AS id", id=node["id"], clip=clip_id):
            tx.run(
                f"MATCH (m:{LORA} {{id: $id}}), (c:CreativeClip {{id: $clip}}) CREATE (m)-[:{TRAINED_ON}]->(c)",
                id=link["from"], clip=link["to"],
            )  # fmt: skip
        return {**node, "created_at": created, "version": version, "clip": clip_id}

    return store.write(work)
