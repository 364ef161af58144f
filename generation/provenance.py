"""Recording what made a generated video: a `GeneratedVideo` node with its REFERENCED clips and the
selling point it was made for (GENERATED_FOR; not `FOR`, which is reserved in Ladybug).

Everything is validated with `kb.records` first; then ONE write transaction checks that the id is
free and every end exists, and creates the node and its links, or raises and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from generation.prompt import PromptPlan
from kb.records import NODE_RECORDS, REL_RECORDS
from kb.repository import RecordValidationError, validation_message
from kb.store import ConflictError, GraphStore, NotFoundError, Row, Transaction
from kb.timestamps import utc_now

LABEL = "GeneratedVideo"
REFERENCED = "REFERENCED"
FOR = "GENERATED_FOR"


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
) -> dict[str, Any]:
    """Store one generation's provenance; returns {"node": row, "referenced": rows, "for": row}.

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

    def work(tx: Transaction) -> dict[str, Any]:
        if tx.run(f"MATCH (n:{LABEL} {{id: $id}}) RETURN n.id AS id", id=video_id):
            raise ConflictError(f"{LABEL} {video_id!r} already exists")
        if not tx.run("MATCH (s:SellingPoint {id: $id}) RETURN s.id AS id", id=selling_point_id):
            raise NotFoundError(f"no SellingPoint with id {selling_point_id!r}")
        present = {r["id"] for r in tx.run("UNWIND $ids AS i MATCH (c:CreativeClip {id: i}) RETURN c.id AS id", ids=references)}
        missing = [clip_id for clip_id in references if clip_id not in present]
        if missing:
            raise NotFoundError(f"no CreativeClip with id {', '.join(map(repr, missing))}")
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
        return {"node": node, "referenced": links, "for": target}

    return store.write(work)
