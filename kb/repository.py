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
from kdcvg.errors import BadInputError

MAX_PAGE = 1_000


class RecordValidationError(BadInputError):
    """A record failed validation; the message names each field and why.

    `field` is the first failing field (None when the problem is not one field's), `problems` every
    (field, reason) pair, so a form can show each reason next to its field.
    """

    def __init__(self, message: str, *, field: str | None = None, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.problems = problems or ([(field, message)] if field else [])

    @classmethod
    def for_field(cls, what: str, field: str, reason: str) -> RecordValidationError:
        """The error for one field of `what` (e.g. `Product`): message `invalid what: field: reason`."""
        return cls(f"invalid {what}: {field}: {reason}", field=field, problems=[(field, reason)])

    @classmethod
    def from_pydantic(cls, what: str, exc: ValidationError) -> RecordValidationError:
        """The error for a pydantic failure while validating `what` (e.g. `Product`), with its fields."""
        problems = [(".".join(map(str, e["loc"])) or "record", e["msg"]) for e in exc.errors()]
        return cls(f"invalid {what}: {validation_message(exc)}", field=problems[0][0] if problems else None, problems=problems)


class StaleWriteError(ConflictError):
    """A write based on a stale version of a record; `current` is the record as stored now."""

    def __init__(self, message: str, current: Row) -> None:
        super().__init__(message)
        self.current = current


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
            raise RecordValidationError.from_pydantic(self.label, exc) from None

    def _full(self, record: Row) -> Row:
        """Fill properties the store left unset with None, so both backends return the same keys."""
        return {name: record.get(name) for name in self.spec.all_properties}

    def stored(self, node: Row) -> Row:
        """A node as read from the store (nulls possibly dropped, `_label` possibly kept) with every schema key."""
        return self._full(_props(node))

    def prepare_create(self, record: Row) -> Row:
        """The validated row `create` would write (timestamps and version 1 set); writes nothing."""
        unknown_audit = set(record) & set(AUDIT_PROPERTIES)
        if unknown_audit:
            raise RecordValidationError(
                f"invalid {self.label}: {', '.join(sorted(unknown_audit))} are set by the store", field=min(unknown_audit)
            )
        now = utc_now()
        return self._validate({**record, "created_at": now, "updated_at": now, "version": 1})

    def create_in(self, tx: Transaction, row: Row) -> Row:
        """Inside `tx`: create the node from a `prepare_create` row; refuses an id already in use."""
        if tx.run(f"MATCH (n:{self.label} {{id: $id}}) RETURN n.id AS id", id=row["id"]):
            raise ConflictError(f"{self.label} {row['id']!r} already exists")
        assignments, params = _assignments("n", row)
        tx.run(f"CREATE (n:{self.label} {{id: $id}}) SET {assignments}", id=row["id"], **params)
        return self._full(row)

    def create(self, store: GraphStore, record: Row) -> Row:
        """Create a node; refuses an id already in use."""
        row = self.prepare_create(record)
        return store.write(lambda tx: self.create_in(tx, row))

    def get_in(self, tx: Transaction, id: str) -> Row:
        """Inside `tx`: the node with `id` (every schema property), or NotFoundError."""
        rows = tx.run(f"MATCH (n:{self.label} {{id: $id}}) RETURN n", id=id)
        if not rows:
            raise NotFoundError(f"no {self.label} with id {id!r}")
        return self.stored(rows[0]["n"])

    def get(self, store: GraphStore, id: str) -> Row:
        """The node with `id`, or NotFoundError."""
        return store.read(lambda tx: self.get_in(tx, id))

    def lock_in(self, tx: Transaction, id: str) -> Row:
        """Inside `tx`: take the node's write lock (held until `tx` ends), then read it; NotFoundError if absent.

        Why: Neo4j reads at read-committed isolation, so two transactions could both read version 3
        and both write version 4. Taking the lock first makes the second wait for the first to
        commit and then read its result.
        """
        tx.lock(self.label, id)
        return self.get_in(tx, id)

    def check_changes(self, changes: Row) -> None:
        """Refuse changes to `id` or to the store-set audit properties, before anything is read."""
        forbidden = set(changes) & ({"id"} | set(AUDIT_PROPERTIES))
        if forbidden:
            raise RecordValidationError(
                f"invalid {self.label} update: {', '.join(sorted(forbidden))} cannot be changed", field=min(forbidden)
            )

    def update_in(self, tx: Transaction, id: str, changes: Row, *, expected_version: int) -> tuple[Row, Row]:
        """Inside `tx`: apply `changes` if the stored version is `expected_version`; returns (before, after).

        A stale version raises `StaleWriteError` (a ConflictError) carrying the stored record.
        """
        self.check_changes(changes)
        current = self.lock_in(tx, id)
        if current["version"] != expected_version:
            raise StaleWriteError(
                f"{self.label} {id!r} was changed by someone else (stored version {current['version']}, "
                f"yours {expected_version}); reload it and apply your change again",
                current,
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
            raise StaleWriteError(f"{self.label} {id!r} was changed by someone else; reload it", self.get_in(tx, id))
        return current, self._full(new)

    def update(self, store: GraphStore, id: str, changes: Row, *, expected_version: int) -> Row:
        """Apply `changes` if the stored version is still `expected_version`; returns the new record."""
        self.check_changes(changes)
        return store.write(lambda tx: self.update_in(tx, id, changes, expected_version=expected_version))[1]

    def delete_in(self, tx: Transaction, id: str, *, expected_version: int | None = None) -> Row:
        """Inside `tx`: delete the node and its relationships (with `expected_version`, only if current); returns it."""
        current = self.lock_in(tx, id)
        if expected_version is not None and current["version"] != expected_version:
            raise StaleWriteError(
                f"{self.label} {id!r} was changed by someone else (stored version {current['version']}, "
                f"yours {expected_version}); not deleted",
                current,
            )
        tx.run(f"MATCH (n:{self.label} {{id: $id}}) DETACH DELETE n", id=id)
        return current

    def delete(self, store: GraphStore, id: str, *, expected_version: int | None = None) -> None:
        """Delete the node and its relationships; with `expected_version`, only if still current."""
        store.write(lambda tx: self.delete_in(tx, id, expected_version=expected_version))

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
            raise BadInputError(f"skip must be >= 0, got {skip}")
        if not 1 <= limit <= MAX_PAGE:
            raise BadInputError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        where = where or {}
        unknown = set(where) - set(self.spec.all_properties)
        if unknown:
            raise BadInputError(f"{self.label} has no properties {', '.join(sorted(unknown))}")
        pattern = f"(n:{self.label})"
        if related_to is not None:
            spec = rel_type(related_to[0])
            if self.label == spec.source:
                pattern = f"(n:{self.label})-[:{spec.type}]->(:{spec.target} {{id: $other}})"
            elif self.label == spec.target:
                pattern = f"(n:{self.label})<-[:{spec.type}]-(:{spec.source} {{id: $other}})"
            else:
                raise BadInputError(f"{spec.type} does not connect {self.label}")
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

    @property
    def _pattern(self) -> str:
        return f"(a:{self.spec.source} {{id: $source}})-[r:{self.spec.type}]->(b:{self.spec.target} {{id: $target}})"

    def prepare(self, source: str, target: str, properties: Row | None = None) -> Row:
        """The validated row `link` would write (`updated_at` set where the type has one); writes nothing."""
        extra = {"updated_at": utc_now()} if "updated_at" in self.spec.properties else {}
        try:
            return self.model.model_validate({"from": source, "to": target, **(properties or {}), **extra}).row()
        except ValidationError as exc:
            raise RecordValidationError.from_pydantic(self.spec.type, exc) from None

    def get_in(self, tx: Transaction, source: str, target: str) -> Row | None:
        """Inside `tx`: the link's row (`from`, `to` and every property), or None if the pair is not linked."""
        columns = "".join(f", r.{name} AS {name}" for name in self.spec.properties)
        rows = tx.run(f"MATCH {self._pattern} RETURN a.id AS `from`, b.id AS `to`{columns}", source=source, target=target)
        return rows[0] if rows else None

    def lock_in(self, tx: Transaction, source: str, target: str) -> Row | None:
        """Inside `tx`: take the source node's write lock (held until `tx` ends), then read the link.

        Every change to a link locks its source first, so a check-then-write on a link is atomic
        on Neo4j too (see NodeRepository.lock_in) and racing creates cannot make two links.
        """
        tx.lock(self.spec.source, source)
        return self.get_in(tx, source, target)

    def link_in(self, tx: Transaction, row: Row) -> Row:
        """Inside `tx`: create the `prepare`d link, or update its properties if the pair is already linked."""
        source, target = row["from"], row["to"]
        self.lock_in(tx, source, target)  # MERGE alone may create two links when two transactions race
        match = f"MATCH (a:{self.spec.source} {{id: $source}}), (b:{self.spec.target} {{id: $target}})"
        assignments, params = _assignments("r", row, skip=("from", "to"))
        set_clause = f" SET {assignments}" if assignments else ""
        if not tx.run(f"{match} RETURN a.id AS a", source=source, target=target):
            for label, id in ((self.spec.source, source), (self.spec.target, target)):
                if not tx.run(f"MATCH (n:{label} {{id: $id}}) RETURN n.id AS id", id=id):
                    raise NotFoundError(f"no {label} with id {id!r}")
        tx.run(f"{match} MERGE (a)-[r:{self.spec.type}]->(b){set_clause}", source=source, target=target, **params)
        return row

    def link(self, store: GraphStore, source: str, target: str, properties: Row | None = None) -> Row:
        """Create the relationship, or update its properties if the pair is already linked."""
        row = self.prepare(source, target, properties)
        return store.write(lambda tx: self.link_in(tx, row))

    def unlink_in(self, tx: Transaction, source: str, target: str) -> Row:
        """Inside `tx`: remove the relationship and return its row; NotFoundError if the pair is not linked."""
        current = self.lock_in(tx, source, target)
        if current is None:
            raise NotFoundError(f"{source!r} is not linked to {target!r} by {self.spec.type}")
        tx.run(f"MATCH {self._pattern} DELETE r", source=source, target=target)
        return current

    def unlink(self, store: GraphStore, source: str, target: str) -> None:
        """Remove the relationship; NotFoundError if the pair is not linked."""
        store.write(lambda tx: self.unlink_in(tx, source, target))


categories = NodeRepository("Category")
products = NodeRepository("Product")
selling_points = NodeRepository("SellingPoint")
clips = NodeRepository("CreativeClip")
motions = NodeRepository("Motion")

in_category = RelationshipRepository("IN_CATEGORY")
has_selling_point = RelationshipRepository("HAS_SELLING_POINT")
illustrates = RelationshipRepository("ILLUSTRATES")
same_claim = RelationshipRepository("SAME_CLAIM")
features = RelationshipRepository("FEATURES")
has_motion = RelationshipRepository("HAS_MOTION")
