"""The curation audit trail: who changed what, when, and the values before and after, in the graph.

Why: several annotators edit the ACKB; every change they make (and every write refused because
someone else changed the record first) must be traceable and reversible by hand. What: one
`AuditEvent` node per change (label and properties in `kb.schema.AUDIT_EVENT_PROPERTIES`,
migration V0003), written by `record_audit` INSIDE the caller's write transaction, so the change
and its audit row commit or fail together. `list_audit` pages through them newest first.

The trail is operational history, not knowledge: it is not part of the interchange export/import
and `kb stats` does not count it (see docs/ackb-format.md).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from kb.schema import AUDIT_EVENT_PROPERTIES, AUDIT_LABEL
from kb.store import GraphStore, Row, Transaction
from kb.timestamps import is_timestamp, utc_now
from kdcvg.errors import BadInputError

MAX_AUDIT_PAGE = 500


@dataclass(frozen=True)
class AuditEvent:
    """One recorded change: `before`/`after` are the entity's properties (None: did not / no longer exist)."""

    id: str
    at: str
    actor: str
    action: str
    entity_label: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class AuditPage:
    """One page of audit events, newest first; pass `next_cursor` back for the next (None: last page)."""

    events: list[AuditEvent]
    next_cursor: str | None


def _encode(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _decode(value: str | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(value)


def _event(row: Row) -> AuditEvent:
    return AuditEvent(**{**row, "before": _decode(row["before"]), "after": _decode(row["after"])})


def record_audit(
    tx: Transaction,
    *,
    actor: str,
    action: str,
    entity_label: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> AuditEvent:
    """Write one AuditEvent inside the caller's transaction `tx`, so it commits or rolls back with the change."""
    for name, value in (("actor", actor), ("action", action), ("entity_label", entity_label), ("entity_id", entity_id)):
        if not isinstance(value, str) or not value.strip():
            raise BadInputError(f"audit {name} must be a non-empty string, got {value!r}")
    at = utc_now()
    event = AuditEvent(f"{at}-{secrets.token_hex(6)}", at, actor, action, entity_label, entity_id, before, after)
    values = {
        "at": at,
        "actor": actor,
        "action": action,
        "entity_label": entity_label,
        "entity_id": entity_id,
        "before": _encode(before),
        "after": _encode(after),
    }
    # scalar parameters, one per property (Ladybug cannot type a map parameter holding nulls)
    assignments = ", ".join(f"e.{name} = $p_{name}" for name in values)
    tx.run(f"CREATE (e:{AUDIT_LABEL} {{id: $id}}) SET {assignments}", id=event.id, **{f"p_{k}": v for k, v in values.items()})
    return event


def list_audit(
    store: GraphStore,
    *,
    actor: str | None = None,
    entity_label: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Audit events matching every given filter, newest first, `limit` per page (keyset paging on id).

    `since`/`until` are timestamps in the stored format (`since` inclusive, `until` exclusive);
    `cursor` is a previous page's `next_cursor`.
    """
    if not 1 <= limit <= MAX_AUDIT_PAGE:
        raise BadInputError(f"limit must be between 1 and {MAX_AUDIT_PAGE}, got {limit}")
    for name, value in (("since", since), ("until", until)):
        if value is not None and not is_timestamp(value):
            raise BadInputError(f"{name} must be a timestamp like 2026-01-31T12:00:00.000000Z, got {value!r}")
    conditions, params = [], {}
    for name, value in (("actor", actor), ("entity_label", entity_label), ("entity_id", entity_id), ("action", action)):
        if value is not None:
            conditions.append(f"e.{name} = $f_{name}")
            params[f"f_{name}"] = value
    if since is not None:
        conditions.append("e.at >= $since")
        params["since"] = since
    if until is not None:
        conditions.append("e.at < $until")
        params["until"] = until
    if cursor is not None:
        conditions.append("e.id < $cursor")
        params["cursor"] = cursor
    where = " AND ".join(conditions) or "true"
    columns = ", ".join(f"e.{name} AS {name}" for name in AUDIT_EVENT_PROPERTIES)
    rows = store.read(
        lambda tx: tx.run(f"MATCH (e:{AUDIT_LABEL}) WHERE {where} RETURN {columns} ORDER BY e.id DESC LIMIT $limit", limit=limit + 1, **params)
    )
    events = [_event(row) for row in rows[:limit]]
    return AuditPage(events, events[-1].id if len(rows) > limit else None)


def count_audit(store: GraphStore) -> int:
    """How many audit events the store holds (for tests and `nothing was written` checks)."""
    return store.read(lambda tx: tx.run(f"MATCH (e:{AUDIT_LABEL}) RETURN count(e) AS c"))[0]["c"]
