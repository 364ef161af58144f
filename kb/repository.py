"""Create, read, update, delete, list and explore ACKB records, for every label and relationship type.

One `NodeRepository` per label (`products`, `selling_points`, ...) so callers read naturally:
`products.update(store, "prod-1", {"name": "New"}, expected_version=3)`. Every write validates
with `kb.records` first, runs in one transaction, and bumps `version`; an update or delete based
on a stale version raises `ConflictError` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from kb.records import NODE_RECORDS, REL_RECORDS
from kb.schema import AUDIT_PROPERTIES, node_type, rel_type
from kb.store import ConflictError, GraphStore, NotFoundError, Row, Transaction
from kb.timestamps import utc_now

MAX_PAGE = 1_000


class RecordValidationError(ValueError):
    """A record failed validation; the message names each field and why."""


def validation_message(exc: ValidationError) -> str:
    """`field: reason` for each problem, joined."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors())


def _assignments(variable: str, row: Row, skip: tuple[str, ...] = ("id",)) -> tuple[str, Row]:
    """`SET`-clause text with one parameter per property (`$p_name`), and those parameters.

    Separate scalar parameters, not one map, because Ladybug cannot type a map whose values are null.
    Property names come from the validated record, whose fields are the schema's.
    """
    names = [name for name in row if name not in skip]
    return ", ".join(f"{variable}.{name} = $p_{name}" for name in names), {f"p_{name}": row[name] for name in names}


def _props(row: Row) -> Row:
    """A stored node/relationship dict without the `_label`/`_type` marker."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Page:
    """One page of a listing, with the total count matching the filters."""

    items: list[Row]
    total: int
    skip: int
    limit: int


class NodeRepository:
    """Record operations for one node label (identifiers from `kb.schema` only; values as parameters)."""

    def __init__(self, label: str) -> None:
        self.spec = node_type(label)
        self.label = label
        self.model = NODE_RECORDS[label]

    def _validate(self, record: Row) -> Row:
        try:
            return self.model.model_validate(record).row()
        except ValidationError as exc:
            raise RecordValidationError(f"invalid {self.label}: {validation_message(exc)}") from None

    def _full(self, record: Row) -> Row:
        """Fill properties the store left unset with None, so both backends return the same keys."""
        return {name: record.get(name) for name in self.spec.all_properties}

    def create(self, store: GraphStore, record: Row) -> Row:
        """Create a node; refuses an id already in use."""
        unknown_audit = set(record) & set(AUDIT_PROPERTIES)
        if unknown_audit:
            raise RecordValidationError(f"invalid {self.label}: {', '.join(sorted(unknown_audit))} are set by the store")
        now = utc_now()
        row = self._validate({**record, "created_at": now, "updated_at": now, "version": 1})

        def work(tx: Transaction) -> Row:
            if tx.run(f"MATCH (n:{self.label} {{id: $id}}) RETURN n.id AS id", id=row["id"]):
                raise ConflictError(f"{self.label} {row['id']!r} already exists")
            assignments, params = _assignments("n", row)
            tx.run(f"CREATE (n:{self.label} {{id: $id}}) SET {assignments}", id=row["id"], **params)
            return row

        return self._full(store.write(work))

    def get(self, store: GraphStore, id: str) -> Row:
        """The node with `id`, or NotFoundError."""
        rows = store.read(lambda tx: tx.run(f"MATCH (n:{self.label} {{id: $id}}) RETURN n", id=id))
        if not rows:
            raise NotFoundError(f"no {self.label} with id {id!r}")
        return self._full(_props(rows[0]["n"]))

    def update(self, store: GraphStore, id: str, changes: Row, *, expected_version: int) -> Row:
        """Apply `changes` if the stored version is still `expected_version`; returns the new record."""
        forbidden = set(changes) & ({"id"} | set(AUDIT_PROPERTIES))
        if forbidden:
            raise RecordValidationError(f"invalid {self.label} update: {', '.join(sorted(forbidden))} cannot be changed")

        def work(tx: Transaction) -> Row:
            rows = tx.run(f"MATCH (n:{self.label} {{id: $id}}) RETURN n", id=id)
            if not rows:
                raise NotFoundError(f"no {self.label} with id {id!r}")
            current = self._full(_props(rows[0]["n"]))
            if current["version"] != expected_version:
                raise ConflictError(
                    f"{self.label} {id!r} was changed by someone else (stored version {current['version']}, "
                    f"yours {expected_version}); reload it and apply your change again"
                )
            new = self._validate({**current, **changes, "updated_at": utc_now(), "version": expected_version + 1})
            assignments, params = _assignments("n", new)
            updated = tx.run(
                f"MATCH (n:{self.label} {{id: $id}}) WHERE n.version = $expected SET {assignments} RETURN n.id AS id",
                id=id,
                expected=expected_version,
                **params,
            )
            if not updated:  # changed between our read and write: refuse, never overwrite
                raise ConflictError(f"{self.label} {id!r} was changed by someone else; reload it")
            return new

        return self._full(store.write(work))

    def delete(self, store: GraphStore, id: str, *, expected_version: int | None = None) -> None:
        """Delete the node and its relationships; with `expected_version`, only if still current."""

        def work(tx: Transaction) -> None:
            rows = tx.run(f"MATCH (n:{self.label} {{id: $id}}) RETURN n.version AS version", id=id)
            if not rows:
                raise NotFoundError(f"no {self.label} with id {id!r}")
            if expected_version is not None and rows[0]["version"] != expected_version:
                raise ConflictError(
                    f"{self.label} {id!r} was changed by someone else (stored version {rows[0]['version']}, "
                    f"yours {expected_version}); not deleted"
                )
            tx.run(f"MATCH (n:{self.label} {{id: $id}}) DETACH DELETE n", id=id)

        store.write(work)

    def list(
        self,
        store: GraphStore,
        *,
        where: Row | None = None,
        related_to: tuple[str, str] | None = None,
        skip: int = 0,
        limit: int = 50,
    ) -> Page:
        """A page of nodes ordered by id; `where` = equal property values, `related_to` = (rel type, other id)."""
        if not 0 <= skip:
            raise ValueError(f"skip must be >= 0, got {skip}")
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        where = where or {}
        unknown = set(where) - set(self.spec.all_properties)
        if unknown:
            raise ValueError(f"{self.label} has no properties {', '.join(sorted(unknown))}")
        pattern = f"(n:{self.label})"
        if related_to is not None:
            spec = rel_type(related_to[0])
            if self.label == spec.source:
                pattern = f"(n:{self.label})-[:{spec.type}]->(:{spec.target} {{id: $other}})"
            elif self.label == spec.target:
                pattern = f"(n:{self.label})<-[:{spec.type}]-(:{spec.source} {{id: $other}})"
            else:
                raise ValueError(f"{spec.type} does not connect {self.label}")
        conditions = " AND ".join(f"n.{name} = $w_{name}" for name in sorted(where)) or "true"
        params = {f"w_{name}": value for name, value in where.items()}
        if related_to is not None:
            params["other"] = related_to[1]

        def work(tx: Transaction) -> Page:
            total = tx.run(f"MATCH {pattern} WHERE {conditions} RETURN count(n) AS total", **params)[0]["total"]
            rows = tx.run(
                f"MATCH {pattern} WHERE {conditions} RETURN n ORDER BY n.id SKIP $skip LIMIT $limit",
                skip=skip,
                limit=limit,
                **params,
            )
            return Page([self._full(_props(r["n"])) for r in rows], total, skip, limit)

        return store.read(work)

    def neighbourhood(self, store: GraphStore, id: str, *, limit: int = 200) -> Row:
        """The node and its direct relationships: [{type, direction, label, node, properties}]."""
        node = self.get(store, id)
        links = []
        for spec in (rel_type(t) for t in REL_RECORDS):
            for direction, mine, other in (("out", spec.source, spec.target), ("in", spec.target, spec.source)):
                if mine != self.label:
                    continue
                arrow = f"-[r:{spec.type}]->(m:{other})" if direction == "out" else f"<-[r:{spec.type}]-(m:{other})"
                rows = store.read(
                    lambda tx, arrow=arrow: tx.run(
                        f"MATCH (n:{self.label} {{id: $id}}){arrow} RETURN r, m ORDER BY m.id LIMIT $limit", id=id, limit=limit
                    )
                )
                for row in rows:
                    links.append(
                        {"type": spec.type, "direction": direction, "label": other, "node": _props(row["m"]), "properties": _props(row["r"])}
                    )
        return {"node": node, "relationships": links}


class RelationshipRepository:
    """Link and unlink two nodes with one relationship type; at most one link per pair."""

    def __init__(self, type_: str) -> None:
        self.spec = rel_type(type_)
        self.model = REL_RECORDS[type_]

    def link(self, store: GraphStore, source: str, target: str, properties: Row | None = None) -> Row:
        """Create the relationship, or update its properties if the pair is already linked."""
        extra = {"updated_at": utc_now()} if "updated_at" in self.spec.properties else {}
        try:
            row = self.model.model_validate({"from": source, "to": target, **(properties or {}), **extra}).row()
        except ValidationError as exc:
            raise RecordValidationError(f"invalid {self.spec.type}: {validation_message(exc)}") from None
        match = f"MATCH (a:{self.spec.source} {{id: $source}}), (b:{self.spec.target} {{id: $target}})"
        assignments, params = _assignments("r", row, skip=("from", "to"))
        set_clause = f" SET {assignments}" if assignments else ""

        def work(tx: Transaction) -> Row:
            if not tx.run(f"{match} RETURN a.id AS a", source=source, target=target):
                for label, id in ((self.spec.source, source), (self.spec.target, target)):
                    if not tx.run(f"MATCH (n:{label} {{id: $id}}) RETURN n.id AS id", id=id):
                        raise NotFoundError(f"no {label} with id {id!r}")
            tx.run(f"{match} MERGE (a)-[r:{self.spec.type}]->(b){set_clause}", source=source, target=target, **params)
            return row

        return store.write(work)

    def unlink(self, store: GraphStore, source: str, target: str) -> None:
        """Remove the relationship; NotFoundError if the pair is not linked."""

        def work(tx: Transaction) -> None:
            pattern = f"(a:{self.spec.source} {{id: $source}})-[r:{self.spec.type}]->(b:{self.spec.target} {{id: $target}})"
            if not tx.run(f"MATCH {pattern} RETURN a.id AS a", source=source, target=target):
                raise NotFoundError(f"{source!r} is not linked to {target!r} by {self.spec.type}")
            tx.run(f"MATCH {pattern} DELETE r", source=source, target=target)

        store.write(work)


categories = NodeRepository("Category")
products = NodeRepository("Product")
selling_points = NodeRepository("SellingPoint")
clips = NodeRepository("CreativeClip")
motions = NodeRepository("Motion")

in_category = RelationshipRepository("IN_CATEGORY")
has_selling_point = RelationshipRepository("HAS_SELLING_POINT")
illustrates = RelationshipRepository("ILLUSTRATES")
features = RelationshipRepository("FEATURES")
has_motion = RelationshipRepository("HAS_MOTION")
