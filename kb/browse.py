"""Server-side paged reads for the curation app: categories, products, selling points, clips, review queues.

Why: the app must stay fast on a 100k-clip ACKB, so nothing here loads a whole label. Listings use
keyset paging on `id` (`WHERE n.id > $cursor ORDER BY n.id LIMIT n+1`: a deep page costs what the
first does); the page's details are then fetched by primary key (`UNWIND $ids AS i MATCH (n {id: i})`,
since `n.id IN $ids` scans on Ladybug). A page's `next_cursor` is the last item's id (None on the
last page); pass it back unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from kb import repository as repo
from kb.interchange import nodes_by_id
from kb.schema import ILLUSTRATION_STATUSES
from kb.store import GraphStore, NotFoundError, Row, Transaction
from kdcvg.errors import BadInputError

MAX_BROWSE_PAGE = 200
MAX_QUEUE = 1_000


@dataclass(frozen=True)
class BrowsePage:
    """One page of a listing in id order; `next_cursor` fetches the next page (None: this is the last)."""

    items: list[Row]
    next_cursor: str | None


def _check_limit(limit: int, most: int = MAX_BROWSE_PAGE) -> None:
    if not isinstance(limit, int) or not 1 <= limit <= most:
        raise BadInputError(f"limit must be between 1 and {most}, got {limit!r}")


def _require(tx: Transaction, label: str, id: str) -> None:
    if not tx.run(f"MATCH (n:{label} {{id: $id}}) RETURN n.id AS id", id=id):
        raise NotFoundError(f"no {label} with id {id!r}")


def _keyset_ids(tx: Transaction, patterns: list[str], conditions: list[str], params: Row, cursor: str | None, limit: int) -> tuple[list[str], str | None]:
    """Ids of variable `n` matching the patterns and conditions, after `cursor`, and the next cursor."""
    if cursor is not None:
        conditions = [*conditions, "n.id > $cursor"]
        params = {**params, "cursor": cursor}
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    distinct = "DISTINCT " if len(patterns) > 1 else ""  # a relationship pattern may reach `n` more than once
    rows = tx.run(f"MATCH {', '.join(patterns)}{where} RETURN {distinct}n.id AS id ORDER BY id LIMIT $limit", limit=limit + 1, **params)
    ids = [row["id"] for row in rows]
    return ids[:limit], (ids[limit - 1] if len(ids) > limit else None)


def _search_condition(search: str | None, properties: tuple[str, ...], params: Row) -> list[str]:
    """A case-insensitive substring condition over `n`'s properties (and id), or none for a blank search."""
    if search is None or not search.strip():
        return []
    params["q"] = search.strip().lower()
    alternatives = " OR ".join(f"lower(coalesce(n.{name}, '')) CONTAINS $q" for name in properties)
    return [f"(lower(n.id) CONTAINS $q OR {alternatives})"]


def _status_counts(tx: Transaction, selling_point_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per selling point: how many ILLUSTRATES links have each status."""
    counts: dict[str, dict[str, int]] = {i: dict.fromkeys(ILLUSTRATION_STATUSES, 0) for i in selling_point_ids}
    for row in _around(tx, "SellingPoint", selling_point_ids, "<-[r:ILLUSTRATES]-(m:CreativeClip)", "r.status AS status"):
        counts[row["n_id"]][row["status"]] += 1
    return counts


def categories(store: GraphStore) -> list[Row]:
    """Every category (there are few) by name, with its number of products."""

    def work(tx: Transaction) -> list[Row]:
        rows = tx.run("MATCH (n:Category) OPTIONAL MATCH (n)<-[:IN_CATEGORY]-(p:Product) RETURN n, count(p) AS products")
        items = [{**repo.categories.stored(row["n"]), "products": row["products"]} for row in rows]
        return sorted(items, key=lambda item: (item["name"].lower(), item["id"]))

    return store.read(work)


def products(store: GraphStore, *, category_id: str | None = None, search: str | None = None, limit: int = 50, cursor: str | None = None) -> BrowsePage:
    """Products in id order, optionally of one category and/or matching `search` (id, name or brand)."""
    _check_limit(limit)
    patterns, params = ["(n:Product)"], {}
    if category_id is not None:
        patterns.append("(n)-[:IN_CATEGORY]->(:Category {id: $category})")
        params["category"] = category_id
    conditions = _search_condition(search, ("name", "brand"), params)

    def work(tx: Transaction) -> BrowsePage:
        if category_id is not None:
            _require(tx, "Category", category_id)
        ids, next_cursor = _keyset_ids(tx, patterns, conditions, params, cursor, limit)
        found = {row["id"]: repo.products.stored(row) for row in nodes_by_id(tx, "Product", ids)}
        category_of = {row["n_id"]: row["m_id"] for row in _around(tx, "Product", ids, "-[:IN_CATEGORY]->(m:Category)", "m.name AS name")}
        return BrowsePage([{**found[i], "category_id": category_of.get(i)} for i in ids], next_cursor)

    return store.read(work)


def selling_points(store: GraphStore, product_id: str) -> list[Row]:
    """A product's selling points (a handful) in id order, each with its link counts per status."""

    def work(tx: Transaction) -> list[Row]:
        _require(tx, "Product", product_id)
        ids = sorted(row["m_id"] for row in _around(tx, "Product", [product_id], "-[:HAS_SELLING_POINT]->(m:SellingPoint)", "m.text AS text"))
        found = {row["id"]: repo.selling_points.stored(row) for row in nodes_by_id(tx, "SellingPoint", ids)}
        counts = _status_counts(tx, ids)
        return [{**found[i], "links": counts[i]} for i in ids]

    return store.read(work)


def _around(tx: Transaction, label: str, ids: list[str], arrow: str, returns: str) -> list[Row]:
    """For each of `ids`: the rows of `(n:label {id})` + `arrow` (other end `m`), rows without a match dropped.

    `UNWIND ... MATCH (n {id: i}) OPTIONAL MATCH (n)-...` on purpose: Ladybug plans the one-pattern form
    `MATCH (n {id: i})-[r]->(m)` as a scan of the whole relationship table (~150 ms at 100k clips),
    this one as primary-key lookups then adjacency (~3 ms).
    """
    rows = tx.run(f"UNWIND $ids AS i MATCH (n:{label} {{id: i}}) OPTIONAL MATCH (n){arrow} RETURN n.id AS n_id, m.id AS m_id, {returns}", ids=ids)
    return [row for row in rows if row["m_id"] is not None]


def _clip_items(tx: Transaction, ids: list[str]) -> list[Row]:
    """Clips by id (order kept) with their motion, products and ILLUSTRATES links (selling point text included)."""
    found: dict[str, Row] = {}
    motion_of: dict[str, Row | None] = {}
    for row in tx.run(
        "UNWIND $ids AS i MATCH (n:CreativeClip {id: i}) OPTIONAL MATCH (n)-[:HAS_MOTION]->(m:Motion) RETURN n, m.id AS m_id, m.name AS name",
        ids=ids,
    ):
        found[row["n"]["id"]] = repo.clips.stored(row["n"])
        motion_of[row["n"]["id"]] = {"id": row["m_id"], "name": row["name"]} if row["m_id"] is not None else None
    products_of: dict[str, list[Row]] = defaultdict(list)
    for row in _around(tx, "CreativeClip", ids, "-[:FEATURES]->(m:Product)", "m.name AS name"):
        products_of[row["n_id"]].append({"id": row["m_id"], "name": row["name"]})
    links_of: dict[str, list[Row]] = defaultdict(list)
    columns = "m.text AS selling_point_text, r.status AS status, r.score AS score, r.annotator AS annotator, r.updated_at AS updated_at"
    for row in _around(tx, "CreativeClip", ids, "-[r:ILLUSTRATES]->(m:SellingPoint)", columns):
        links_of[row.pop("n_id")].append({"selling_point_id": row.pop("m_id"), **row})
    return [
        {
            **found[i],
            "motion": motion_of[i],
            "products": sorted(products_of[i], key=lambda p: p["id"]),
            "links": sorted(links_of[i], key=lambda link: link["selling_point_id"]),
        }
        for i in ids
    ]


def clips(
    store: GraphStore,
    *,
    category_id: str | None = None,
    motion_id: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    selling_point_id: str | None = None,
    search: str | None = None,
    limit: int = 24,
    cursor: str | None = None,
) -> BrowsePage:
    """Clips in id order matching every given filter, each with its motion, products and link statuses.

    `status` alone: clips with at least one link of that status; with `selling_point_id`: the
    status of the link to that selling point. `tag`: an exact tag. `search`: substring of id or
    caption, ignoring case.
    """
    _check_limit(limit)
    if status is not None and status not in ILLUSTRATION_STATUSES:
        raise BadInputError(f"status must be one of {', '.join(ILLUSTRATION_STATUSES)}, got {status!r}")
    patterns, conditions, params = ["(n:CreativeClip)"], [], {}
    if category_id is not None:
        patterns.append("(n)-[:FEATURES]->(:Product)-[:IN_CATEGORY]->(:Category {id: $category})")
        params["category"] = category_id
    if motion_id is not None:
        patterns.append("(n)-[:HAS_MOTION]->(:Motion {id: $motion})")
        params["motion"] = motion_id
    if selling_point_id is not None:
        patterns.append("(n)-[r:ILLUSTRATES]->(:SellingPoint {id: $sp})")
        params["sp"] = selling_point_id
        if status is not None:
            conditions.append("r.status = $status")
    elif status is not None:
        patterns.append("(n)-[r:ILLUSTRATES]->(:SellingPoint)")
        conditions.append("r.status = $status")
    if status is not None:
        params["status"] = status
    if tag is not None:
        conditions.append("$tag IN n.tags")
        params["tag"] = tag
    conditions += _search_condition(search, ("caption",), params)
    named = [("Category", category_id), ("Motion", motion_id), ("SellingPoint", selling_point_id)]

    def work(tx: Transaction) -> BrowsePage:
        for label, id in named:
            if id is not None:
                _require(tx, label, id)
        ids, next_cursor = _keyset_ids(tx, patterns, conditions, params, cursor, limit)
        return BrowsePage(_clip_items(tx, ids), next_cursor)

    return store.read(work)


def clip_detail(store: GraphStore, clip_id: str) -> Row:
    """One clip with its motion, products and every ILLUSTRATES link; NotFoundError if absent."""

    def work(tx: Transaction) -> Row:
        _require(tx, "CreativeClip", clip_id)
        return _clip_items(tx, [clip_id])[0]

    return store.read(work)


def links_for_selling_point(store: GraphStore, selling_point_id: str, *, status: str | None = None, limit: int = MAX_QUEUE) -> list[Row]:
    """The review queue of a selling point: its linked clips, best score first, with status, annotator and video_path."""
    _check_limit(limit, MAX_QUEUE)
    if status is not None and status not in ILLUSTRATION_STATUSES:
        raise BadInputError(f"status must be one of {', '.join(ILLUSTRATION_STATUSES)}, got {status!r}")
    condition = " WHERE r.status = $status" if status is not None else ""
    params = {"status": status} if status is not None else {}

    def work(tx: Transaction) -> list[Row]:
        _require(tx, "SellingPoint", selling_point_id)
        rows = tx.run(
            f"MATCH (c:CreativeClip)-[r:ILLUSTRATES]->(:SellingPoint {{id: $sp}}){condition} "
            "RETURN c.id AS clip_id, c.caption AS caption, c.video_path AS video_path, c.tags AS tags, "
            "r.status AS status, r.score AS score, r.annotator AS annotator, r.updated_at AS updated_at "
            "ORDER BY coalesce(r.score, -1.0) DESC, clip_id LIMIT $limit",
            sp=selling_point_id,
            limit=limit,
            **params,
        )
        return [{"selling_point_id": selling_point_id, **row} for row in rows]

    return store.read(work)


def claims_for_selling_point(store: GraphStore, selling_point_id: str, *, status: str | None = None, limit: int = 100) -> list[Row]:
    """A selling point's SAME_CLAIM relations (stored in either direction), best score first: the pair
    (`from`, `to` as stored), the other selling point's id, text and product, status, score, annotator, updated_at."""
    _check_limit(limit, MAX_QUEUE)
    if status is not None and status not in ILLUSTRATION_STATUSES:
        raise BadInputError(f"status must be one of {', '.join(ILLUSTRATION_STATUSES)}, got {status!r}")
    condition = " WHERE r.status = $status" if status is not None else ""
    params = {"status": status} if status is not None else {}
    columns = (
        "o.id AS other_id, o.text AS other_text, r.status AS status, r.score AS score, "
        "r.annotator AS annotator, r.updated_at AS updated_at"
    )

    def work(tx: Transaction) -> list[Row]:
        _require(tx, "SellingPoint", selling_point_id)
        rows = []
        for arrow, ends in (("-[r:SAME_CLAIM]->(o:SellingPoint)", "s.id AS `from`, o.id AS `to`"), ("<-[r:SAME_CLAIM]-(o:SellingPoint)", "o.id AS `from`, s.id AS `to`")):
            rows += tx.run(f"MATCH (s:SellingPoint {{id: $sp}}){arrow}{condition} RETURN {ends}, {columns} LIMIT $limit", sp=selling_point_id, limit=limit, **params)
        rows.sort(key=lambda row: (-(row["score"] if row["score"] is not None else -1.0), row["other_id"]))
        rows = rows[:limit]
        owners = tx.run(
            "UNWIND $ids AS i MATCH (p:Product)-[:HAS_SELLING_POINT]->(o:SellingPoint {id: i}) RETURN o.id AS id, p.id AS product",
            ids=[row["other_id"] for row in rows],
        )
        product = {row["id"]: row["product"] for row in owners}
        return [{"selling_point_id": selling_point_id, **row, "other_product": product.get(row["other_id"])} for row in rows]

    return store.read(work)
