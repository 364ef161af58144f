"""Conversion of values coming out of either backend into plain, JSON-friendly Python."""

from __future__ import annotations

import datetime as dt
from typing import Any

Row = dict[str, Any]


def without_nulls(row: Row) -> Row:
    """The row without its null values (Neo4j stores no nulls: an absent property is the null)."""
    return {k: v for k, v in row.items() if v is not None}


def stored_properties(value: Row) -> Row:
    """A node or relationship as read from the store: its properties, without `_label`/`_type` and nulls."""
    return {k: v for k, v in value.items() if not k.startswith("_") and v is not None}


def plain(value: Any) -> Any:
    """Nodes/relationships become property dicts (with `_label`/`_type`), temporals ISO strings."""
    if value is None or isinstance(value, (str, int, float)):  # the common case, first
        return value
    if isinstance(value, dict):
        if "_LABEL" in value and "_ID" in value:  # a Ladybug node or relationship
            kind = "_type" if "_SRC" in value else "_label"
            props = {k: plain(v) for k, v in stored_properties(value).items()}
            return {kind: value["_LABEL"], **props}
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    # neo4j driver types, detected by duck typing so this module does not import the driver
    labels = getattr(value, "labels", None)
    if labels is not None and hasattr(value, "element_id"):
        return {"_label": sorted(labels)[0] if labels else None, **{k: plain(v) for k, v in dict(value).items()}}
    if hasattr(value, "start_node") and hasattr(value, "type") and hasattr(value, "element_id"):
        return {"_type": value.type, **{k: plain(v) for k, v in dict(value).items()}}
    if hasattr(value, "iso_format"):  # neo4j.time types
        return value.iso_format()
    return value
