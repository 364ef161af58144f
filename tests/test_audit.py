"""kb.audit on a real store: events commit or roll back with the change, filters, keyset paging, schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.audit import AuditEvent, count_audit, list_audit, record_audit
from kb.interchange import export_ackb
from kb.schema import AUDIT_EVENT_PROPERTIES, AUDIT_LABEL, NODE_TYPES
from kb.stats import ackb_stats
from kb.store import GraphStore, Transaction


def _record(store: GraphStore, n: int, **fields: object) -> list[AuditEvent]:
    """`n` events in one transaction, with a field pattern that the filter tests can count."""

    def work(tx: Transaction) -> list[AuditEvent]:
        return [
            record_audit(
                tx,
                actor=str(fields.get("actor", ("alice", "bob", "carol")[i % 3])),
                action=str(fields.get("action", ("create", "update")[i % 2])),
                entity_label=str(fields.get("entity_label", "Product")),
                entity_id=str(fields.get("entity_id", f"prod-{i % 4}")),
                before=None if i == 0 else {"name": f"v{i - 1}"},
                after={"name": f"v{i}", "tags": ["ü", "<b>"], "n": i, "none": None},
            )
            for i in range(n)
        ]

    return store.write(work)


def test_event_round_trips_through_the_store(store: GraphStore) -> None:
    [written] = _record(store, 1)
    [read] = list_audit(store).events
    assert read == written
    assert read.before is None and read.after == {"name": "v0", "tags": ["ü", "<b>"], "n": 0, "none": None}
    assert read.at.endswith("Z") and read.id.startswith(read.at)


def test_event_rolls_back_with_the_failed_change(store: GraphStore) -> None:
    def work(tx: Transaction) -> None:
        record_audit(tx, actor="alice", action="create", entity_label="Product", entity_id="p", before=None, after={"id": "p"})
        raise RuntimeError("the change failed after its audit row was written")

    with pytest.raises(RuntimeError, match="change failed"):
        store.write(work)
    assert count_audit(store) == 0


def test_cursor_walks_every_event_exactly_once_newest_first(store: GraphStore) -> None:
    written = _record(store, 23)
    seen, cursor, pages = [], None, 0
    while True:
        page = list_audit(store, limit=5, cursor=cursor)
        seen += page.events
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 5 and len(seen) == 23
    assert [e.id for e in seen] == sorted((e.id for e in written), reverse=True)
    assert [e.at for e in seen] == sorted((e.at for e in seen), reverse=True)


def test_filters_combine(store: GraphStore) -> None:
    written = _record(store, 12)
    cases = [
        ({"actor": "bob"}, lambda e: e.actor == "bob"),
        ({"action": "update", "entity_id": "prod-1"}, lambda e: e.action == "update" and e.entity_id == "prod-1"),
        ({"entity_label": "Product", "actor": "carol"}, lambda e: e.actor == "carol"),
        ({"entity_label": "ILLUSTRATES"}, lambda e: False),
        ({"since": written[4].at, "until": written[9].at}, lambda e: written[4].at <= e.at < written[9].at),
    ]
    for filters, keep in cases:
        expected = sorted((e.id for e in written if keep(e)), reverse=True)
        assert [e.id for e in list_audit(store, limit=100, **filters).events] == expected, filters
    paged = list_audit(store, actor="alice", limit=2)
    rest = list_audit(store, actor="alice", limit=2, cursor=paged.next_cursor)
    assert [e.id for e in paged.events + rest.events] == sorted((e.id for e in written if e.actor == "alice"), reverse=True)[:4]


@pytest.mark.parametrize("kwargs, message", [({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"since": "yesterday"}, "since")])
def test_bad_arguments_are_refused(store: GraphStore, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list_audit(store, **kwargs)


def test_blank_actor_is_refused_inside_the_transaction(store: GraphStore) -> None:
    with pytest.raises(ValueError, match="actor"):
        store.write(lambda tx: record_audit(tx, actor=" ", action="create", entity_label="Product", entity_id="p", before=None, after=None))
    assert count_audit(store) == 0


def test_audit_trail_is_not_part_of_the_exported_or_counted_ackb(store: GraphStore, tmp_path: Path, media_dir: Path) -> None:
    _record(store, 3)
    stats = ackb_stats(store)
    assert set(stats["nodes"]) == set(NODE_TYPES) and AUDIT_LABEL not in stats["nodes"] and stats["total_nodes"] == 0
    export_ackb(store, tmp_path / "out", media_dir)
    assert not any(AUDIT_LABEL in p.name or AUDIT_LABEL.encode() in p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())


def test_ladybug_table_matches_the_schema(store: GraphStore) -> None:
    if store.dialect != "ladybug":
        pytest.skip("table introspection is Ladybug's")
    rows = store.query(f"CALL table_info('{AUDIT_LABEL}') RETURN name, type").rows
    assert [(name, kind) for name, kind in rows] == list(AUDIT_EVENT_PROPERTIES.items())
