"""Showing graph data safely: inert text, table cells, CSV, and a small graph view of query results.

Everything here treats values from the graph as untrusted: markdown special characters are
escaped (so `<script>` or `![x](http://...)` shows as text and loads nothing), and the graph view
builds Graphviz DOT with quoted, escaped labels only (never HTML-like labels).
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

MAX_GRAPH_NODES = 100
MAX_LABEL = 40

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:])")


def md_escape(text: Any) -> str:
    """`text` as markdown that renders literally: every markdown/HTML special character escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def cell(value: Any) -> Any:
    """A result value as a table/CSV cell: nodes, relationships and lists as compact JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def table_rows(columns: list[str], rows: list[list[Any]]) -> list[dict[str, Any]]:
    """Rows as records for st.dataframe, cells made displayable; a column of mixed types becomes text."""
    records = [{name: cell(value) for name, value in zip(columns, row)} for row in rows]
    for name in columns:
        kinds = {type(record[name]) for record in records if record[name] is not None}
        if len(kinds) > 1:
            for record in records:
                record[name] = None if record[name] is None else str(record[name])
    return records


def to_csv(columns: list[str], rows: list[list[Any]]) -> str:
    """The result as CSV text (header first), cells as in `cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return buffer.getvalue()


def _dot_string(text: str) -> str:
    """A DOT double-quoted string holding `text` literally (shortened)."""
    text = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _node_key(value: dict[str, Any]) -> str | None:
    """A returned node's identity (label and id), or None if the value is not a node with an id."""
    if isinstance(value.get("_label"), str) and value.get("id") is not None:
        return f"{value['_label']}:{value['id']}"
    return None


def graph_dot(rows: list[list[Any]], max_nodes: int = MAX_GRAPH_NODES) -> str | None:
    """Graphviz DOT of the nodes and relationships in a result, or None when it returns no nodes.

    Stored relationships do not carry their end points into results, so a returned relationship is
    drawn between the node returned before it and the node returned after it in the same row, as in
    `RETURN a, r, b` or `RETURN p, r, s`. At most `max_nodes` nodes are drawn.
    """
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str, str]] = set()
    for row in rows:
        previous: str | None = None
        pending: str | None = None  # a relationship type waiting for the next node
        for value in row:
            if not isinstance(value, dict):
                continue
            key = _node_key(value)
            if key is not None:
                if key not in nodes and len(nodes) >= max_nodes:
                    previous, pending = None, None
                    continue
                nodes.setdefault(key, value)
                if pending is not None and previous is not None:
                    edges.add((previous, key, pending))
                previous, pending = key, None
            elif isinstance(value.get("_type"), str):
                pending = value["_type"]
    if not nodes:
        return None
    names = {key: f"n{i}" for i, key in enumerate(nodes)}
    lines = ["digraph result {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontsize=10];']
    for key, value in nodes.items():
        caption = value.get("name") or value.get("text") or value.get("caption") or value["id"]
        text = f"{value['_label']}: {caption}"
        lines.append(f"  {names[key]} [label={_dot_string(text)}];")
    for source, target, type_ in sorted(edges):
        lines.append(f"  {names[source]} -> {names[target]} [label={_dot_string(type_)}, fontsize=8];")
    lines.append("}")
    return "\n".join(lines)
