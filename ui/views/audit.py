"""Audit trail: who changed what and when, with the values before and after, filterable and paged.

Read from the graph's AuditEvent nodes (`kb.audit.list_audit`), newest first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import streamlit as st

from kb.audit import AuditEvent, list_audit
from kb.curation import CURATED_LABELS, CURATED_RELATIONSHIPS
from ui import state
from ui.render import cell, md_escape
from ui.widgets import ALL, Pager

PER_PAGE = 25
ACTIONS = ("create", "update", "delete", "upload", "set_tags", "link", "unlink", "set_status", "conflict")


def changes(event: AuditEvent) -> list[dict[str, Any]]:
    """The properties that differ between before and after (every property for a create or delete)."""
    before, after = event.before or {}, event.after or {}
    names = sorted(set(before) | set(after))
    return [{"property": n, "before": cell(before.get(n)), "after": cell(after.get(n))} for n in names if before.get(n) != after.get(n)]


def _timestamp(day: dt.date | None, *, end: bool = False) -> str | None:
    """A date as the stored timestamp format (midnight UTC; the next midnight for an inclusive end)."""
    if day is None:
        return None
    moment = dt.datetime.combine(day + dt.timedelta(days=1) if end else day, dt.time(), tzinfo=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def page() -> None:
    """Filters, one page of events as a table, and each event's before/after."""
    state.require("read")
    shared = state.shared_store()
    st.header("Audit trail")
    first, second, third = st.columns(3)
    actor = first.text_input("Who (username)", key="audit_actor").strip() or None
    labels = [*CURATED_LABELS, *CURATED_RELATIONSHIPS]
    label = second.selectbox("What kind", [None, *labels], format_func=lambda x: ALL if x is None else x, placeholder=ALL, key="audit_label")
    action = third.selectbox("Action", [None, *ACTIONS], format_func=lambda x: ALL if x is None else x, placeholder=ALL, key="audit_action")
    entity = first.text_input("Record id (a link: clip->selling point)", key="audit_entity").strip() or None
    since = second.date_input("From (UTC)", value=None, key="audit_since")
    until = third.date_input("To (UTC, inclusive)", value=None, key="audit_until")
    filters = {"actor": actor, "entity_label": label, "entity_id": entity, "action": action, "since": _timestamp(since), "until": _timestamp(until, end=True)}
    pager = Pager("audit_pager", tuple(filters.values()))
    with shared.use() as store:
        result = list_audit(store, **filters, limit=PER_PAGE, cursor=pager.cursor)
    if not result.events:
        st.info("No change matches these filters.")
        return
    st.dataframe(
        [
            {"when": e.at, "who": e.actor, "action": e.action, "kind": e.entity_label, "record": e.entity_id,
             "changed": ", ".join(c["property"] for c in changes(e))}
            for e in result.events
        ],
        width="stretch",
        hide_index=True,
        key="audit_table",
    )
    pager.controls(result.next_cursor)
    for event in result.events:
        with st.expander(md_escape(f"{event.at} · {event.actor} · {event.action} {event.entity_label} {event.entity_id}")):
            st.dataframe(changes(event), width="stretch", hide_index=True)


page()
