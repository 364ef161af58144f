"""The ACKB's read model: a subgraph in memory, read from the store (in batches) or from an interchange directory.

`AckbGraph` is what retrieval and generation read the knowledge through: rows per label and per
relationship type (exactly as stored), index maps from ids to row positions, edge arrays, and a
content hash that keys caches.

The graph is the knowledge only (`KNOWLEDGE_LABELS`, `KNOWLEDGE_RELATIONSHIPS`): what generation
records about its own outputs (GeneratedVideo, REFERENCED, GENERATED_FOR, USED_LORA), the motion
LoRAs trained for clips (MotionLora, TRAINED_ON: model weights, not knowledge) and operational history
(AuditEvent, SchemaMigration) are left out, so generating a video changes neither the content
hash nor the features, the index or the model.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from kb.interchange import json_line, nodes_by_id, read_ackb, relationships_from
from kb.schema import rel_type
from kb.store import GraphStore, NotFoundError, Row, Transaction
from kb.values import stored_properties, without_nulls
from kdcvg.errors import BadInputError

PAGE = 5_000

# Allow-lists: a label or relationship type added to the schema reaches SAR only when listed here.
KNOWLEDGE_LABELS: tuple[str, ...] = ("Category", "Product", "SellingPoint", "CreativeClip", "Motion")
KNOWLEDGE_RELATIONSHIPS: tuple[str, ...] = ("IN_CATEGORY", "HAS_SELLING_POINT", "ILLUSTRATES", "SAME_CLAIM", "FEATURES", "HAS_MOTION")


@dataclass
class AckbGraph:
    """Rows per knowledge label (sorted by id) and relationship type (sorted by from, to); other sections are dropped."""

    nodes: dict[str, list[Row]]
    relationships: dict[str, list[Row]]
    media_root: Path | None = None  # where clips' `video_path` resolves, if the videos are at hand
    _index: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.nodes = {label: sorted(self.nodes.get(label, []), key=lambda row: row["id"]) for label in KNOWLEDGE_LABELS}
        self.relationships = {
            type_: sorted(self.relationships.get(type_, []), key=lambda row: (row["from"], row["to"])) for type_ in KNOWLEDGE_RELATIONSHIPS
        }

    def ids(self, label: str) -> list[str]:
        """Ids of `label` in row order (= node index order)."""
        return [row["id"] for row in self.nodes[label]]

    def index(self, label: str) -> dict[str, int]:
        """id -> row position for `label`."""
        if label not in self._index:
            self._index[label] = {row["id"]: i for i, row in enumerate(self.nodes[label])}
        return self._index[label]

    def edges(self, type_: str, *, status: str | None = None) -> np.ndarray:
        """(2, E) int64 array of (source index, target index); `status` filters the judged types (ILLUSTRATES, SAME_CLAIM)."""
        spec = rel_type(type_)
        source, target = self.index(spec.source), self.index(spec.target)
        pairs = [
            (source[row["from"]], target[row["to"]])
            for row in self.relationships[type_]
            if status is None or row.get("status") == status
        ]
        return np.array(pairs, dtype=np.int64).reshape(-1, 2).T

    def neighbours(self, type_: str) -> dict[str, list[str]]:
        """source id -> target ids for one relationship type."""
        result: dict[str, list[str]] = defaultdict(list)
        for row in self.relationships[type_]:
            result[row["from"]].append(row["to"])
        return dict(result)

    @cached_property
    def product_of_selling_point(self) -> dict[str, str]:
        return {row["to"]: row["from"] for row in self.relationships["HAS_SELLING_POINT"]}

    @cached_property
    def product_of_clip(self) -> dict[str, str]:
        return {row["from"]: row["to"] for row in self.relationships["FEATURES"]}

    @cached_property
    def category_of_product(self) -> dict[str, str]:
        return {row["from"]: row["to"] for row in self.relationships["IN_CATEGORY"]}

    @cached_property
    def motion_of_clip(self) -> dict[str, str]:
        return {row["from"]: row["to"] for row in self.relationships["HAS_MOTION"]}

    def judgements(self, status: str) -> dict[str, set[str]]:
        """selling point id -> clip ids whose ILLUSTRATES link has `status` (approved, rejected, proposed)."""
        result: dict[str, set[str]] = defaultdict(set)
        for row in self.relationships["ILLUSTRATES"]:
            if row.get("status") == status:
                result[row["to"]].add(row["from"])
        return dict(result)

    @cached_property
    def judgements_by_clip(self) -> dict[str, dict[str, list[str]]]:
        """status -> clip id -> selling point ids of its ILLUSTRATES links ("" when unset); approved and rejected always present."""
        result: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for row in self.relationships["ILLUSTRATES"]:
            result[row.get("status") or ""][row["from"]].append(row["to"])
        by_status = {status: dict(by_clip) for status, by_clip in result.items()}
        by_status.setdefault("approved", {})
        by_status.setdefault("rejected", {})
        return by_status

    def video_file(self, clip: Row) -> Path | None:
        """The clip's video file if it exists here."""
        if self.media_root is None or not clip.get("video_path"):
            return None
        path = self.media_root / clip["video_path"]
        return path if path.is_file() else None

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over every row in canonical form: equal hashes mean equal subgraphs."""
        digest = hashlib.sha256()
        for section, groups in (("nodes", self.nodes), ("relationships", self.relationships)):
            for name in sorted(groups):
                digest.update(f"{section}/{name}\n".encode())
                for row in groups[name]:
                    digest.update(json_line(row).encode() + b"\n")
        return digest.hexdigest()

    def counts(self) -> dict[str, int]:
        return {**{k: len(v) for k, v in self.nodes.items()}, **{k: len(v) for k, v in self.relationships.items()}}


def graph_from_directory(directory: Path) -> AckbGraph:
    """Read a self-contained ACKB interchange directory (validated) into memory: its knowledge sections."""
    parsed = read_ackb(Path(directory))
    strip = lambda rows: [without_nulls(row) for row in rows]  # noqa: E731
    media = Path(directory) / "media"
    return AckbGraph(
        {label: strip(rows) for label, rows in parsed.nodes.items()},
        {type_: strip(rows) for type_, rows in parsed.relationships.items()},
        media if media.is_dir() else None,
    )


def _all_rows(store: GraphStore, label: str) -> list[Row]:
    """Every node of `label`, in pages of PAGE ordered by id (keyset paging)."""
    rows: list[Row] = []
    after = ""
    while True:
        page = store.read(
            lambda tx: tx.run(f"MATCH (n:{label}) WHERE n.id > $after RETURN n ORDER BY n.id LIMIT $limit", after=after, limit=PAGE)
        )
        rows.extend(stored_properties(r["n"]) for r in page)
        if len(page) < PAGE:
            return rows
        after = rows[-1]["id"]


def _neighbour_ids(tx: Transaction, frontier: dict[str, set[str]]) -> dict[str, set[str]]:
    """Ids one relationship away (either direction) from the frontier, per label."""
    found: dict[str, set[str]] = defaultdict(set)
    for spec in map(rel_type, KNOWLEDGE_RELATIONSHIPS):
        for mine, other, arrow in ((spec.source, spec.target, "->"), (spec.target, spec.source, "<-")):
            ids = sorted(frontier.get(mine, ()))
            if not ids:
                continue
            pattern = f"(a:{mine} {{id: i}})-[:{spec.type}]->(b:{other})" if arrow == "->" else f"(a:{mine} {{id: i}})<-[:{spec.type}]-(b:{other})"
            for start in range(0, len(ids), PAGE):
                found[other].update(r["id"] for r in tx.run(f"UNWIND $ids AS i MATCH {pattern} RETURN DISTINCT b.id AS id", ids=ids[start : start + PAGE]))
    return found


def graph_from_store(
    store: GraphStore,
    media_dir: Path | None = None,
    *,
    category: str | None = None,
    products: list[str] | None = None,
    hops: int = 2,
) -> AckbGraph:
    """The whole knowledge graph, one category's products, or the `hops`-hop neighbourhood of `products`.

    A category or product subgraph holds every node within `hops` relationships of its products
    and every relationship among those nodes.
    """
    if category is None and products is None:
        nodes = {label: _all_rows(store, label) for label in KNOWLEDGE_LABELS}
        sources = {label: [row["id"] for row in rows] for label, rows in nodes.items()}
        relationships = {t: store.read(lambda tx, t=t: relationships_from(tx, t, sources[rel_type(t).source])) for t in KNOWLEDGE_RELATIONSHIPS}
        return AckbGraph(nodes, relationships, media_dir)
    if hops < 0:
        raise BadInputError(f"hops must be >= 0, got {hops}")

    def work(tx: Transaction) -> AckbGraph:
        seeds = list(products or [])
        if category is not None:
            if not tx.run("MATCH (c:Category {id: $id}) RETURN c.id AS id", id=category):
                raise NotFoundError(f"no Category with id {category!r}")
            seeds += [r["id"] for r in tx.run("MATCH (p:Product)-[:IN_CATEGORY]->(:Category {id: $id}) RETURN p.id AS id", id=category)]
        known = {r["id"] for r in tx.run("UNWIND $ids AS i MATCH (p:Product {id: i}) RETURN p.id AS id", ids=seeds)}
        unknown = sorted(set(seeds) - known)
        if unknown:
            raise NotFoundError(f"no Product with id {', '.join(map(repr, unknown))}")
        selected: dict[str, set[str]] = defaultdict(set, {"Product": set(seeds)})
        frontier: dict[str, set[str]] = {"Product": set(seeds)}
        for _ in range(hops):
            reached = _neighbour_ids(tx, frontier)
            frontier = {label: ids - selected[label] for label, ids in reached.items()}
            for label, ids in frontier.items():
                selected[label] |= ids
        nodes = {label: nodes_by_id(tx, label, sorted(selected[label])) for label in KNOWLEDGE_LABELS}
        relationships = {}
        for type_ in KNOWLEDGE_RELATIONSHIPS:
            spec = rel_type(type_)
            rows = relationships_from(tx, type_, sorted(selected[spec.source]))
            relationships[type_] = [row for row in rows if row["to"] in selected[spec.target]]
        return AckbGraph(nodes, relationships, media_dir)

    return store.read(work)
