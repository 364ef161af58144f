"""kb.browse on a real store loaded from a synthetic ACKB: every filter and the keyset paging.

Expected results are computed from the interchange files the store was loaded from, not from the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from kb import browse
from kb.curation import Curator
from kb.interchange import ParsedACKB, import_ackb, read_ackb
from kb.store import GraphStore, NotFoundError


@pytest.fixture
def loaded(store: GraphStore, small_ackb: Path, media_dir: Path) -> GraphStore:
    import_ackb(store, small_ackb, media_dir)
    return store


@pytest.fixture(scope="module")
def source(small_ackb: Path) -> ParsedACKB:
    return read_ackb(small_ackb)


def walk(fetch: Callable[..., browse.BrowsePage], limit: int) -> list[dict]:
    """Every item of a listing, page by page; checks page sizes and that the cursor ends."""
    items, cursor = [], None
    for _ in range(1_000):
        page = fetch(limit=limit, cursor=cursor)
        assert len(page.items) <= limit and (page.next_cursor is None or len(page.items) == limit)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
    raise AssertionError("the cursor never ended")


def _pairs(source: ParsedACKB, type_: str) -> list[dict]:
    return source.relationships.get(type_, [])


def test_categories_with_product_counts(loaded: GraphStore, source: ParsedACKB) -> None:
    counts = Counter(r["to"] for r in _pairs(source, "IN_CATEGORY"))
    result = browse.categories(loaded)
    assert [c["id"] for c in result] == [c["id"] for c in sorted(source.nodes["Category"], key=lambda c: (c["name"].lower(), c["id"]))]
    assert {c["id"]: c["products"] for c in result} == {c["id"]: counts[c["id"]] for c in source.nodes["Category"]}


@pytest.mark.parametrize("limit", [1, 4, 50])
def test_products_cursor_walks_all_once_in_id_order(loaded: GraphStore, source: ParsedACKB, limit: int) -> None:
    items = walk(lambda **page: browse.products(loaded, **page), limit)
    assert [p["id"] for p in items] == sorted(p["id"] for p in source.nodes["Product"])
    category_of = {r["from"]: r["to"] for r in _pairs(source, "IN_CATEGORY")}
    assert all(p["category_id"] == category_of[p["id"]] for p in items)


def test_products_filters(loaded: GraphStore, source: ParsedACKB) -> None:
    in_cat = sorted(r["from"] for r in _pairs(source, "IN_CATEGORY") if r["to"] == "cat-0001")
    assert [p["id"] for p in walk(lambda **page: browse.products(loaded, category_id="cat-0001", **page), 1)] == in_cat
    expected = sorted(p["id"] for p in source.nodes["Product"] if "product 1" in p["name"].lower() or "product 1" in p.get("brand", "").lower())
    assert [p["id"] for p in browse.products(loaded, search="  PRODUCT 1 ").items] == expected != []
    assert browse.products(loaded, search="no such product").items == []


def test_selling_points_with_status_counts(loaded: GraphStore, source: ParsedACKB) -> None:
    product = "prod-0000002"
    ids = sorted(r["to"] for r in _pairs(source, "HAS_SELLING_POINT") if r["from"] == product)
    result = browse.selling_points(loaded, product)
    assert [s["id"] for s in result] == ids
    for sp in result:
        statuses = Counter(r["status"] for r in _pairs(source, "ILLUSTRATES") if r["to"] == sp["id"])
        assert sp["links"] == {s: statuses[s] for s in ("proposed", "approved", "rejected")}


def _clip_filters(source: ParsedACKB) -> dict[str, tuple[dict, set[str]]]:
    """filter kwargs -> the clip ids they must return, computed from the source files."""
    illustrates = _pairs(source, "ILLUSTRATES")
    product_category = {r["from"]: r["to"] for r in _pairs(source, "IN_CATEGORY")}
    clip_category = {r["from"]: product_category[r["to"]] for r in _pairs(source, "FEATURES")}
    clip_motion = {r["from"]: r["to"] for r in _pairs(source, "HAS_MOTION")}
    clips = source.nodes["CreativeClip"]
    return {
        "none": ({}, {c["id"] for c in clips}),
        "category": ({"category_id": "cat-0002"}, {c for c, cat in clip_category.items() if cat == "cat-0002"}),
        "motion": ({"motion_id": clip_motion[clips[0]["id"]]}, {c for c, m in clip_motion.items() if m == clip_motion[clips[0]["id"]]}),
        "status": ({"status": "approved"}, {r["from"] for r in illustrates if r["status"] == "approved"}),
        "tag": ({"tag": "p3"}, {c["id"] for c in clips if "p3" in c["tags"]}),
        "selling_point": ({"selling_point_id": "sp-0000001-0"}, {r["from"] for r in illustrates if r["to"] == "sp-0000001-0"}),
        "sp_and_status": (
            {"selling_point_id": "sp-0000001-1", "status": "approved"},
            {r["from"] for r in illustrates if r["to"] == "sp-0000001-1" and r["status"] == "approved"},
        ),
        "search": ({"search": "ZOOM"}, {c["id"] for c in clips if "zoom" in c["caption"].lower()}),
        "combined": (
            {"category_id": "cat-0000", "status": "approved"},
            {r["from"] for r in illustrates if r["status"] == "approved" and clip_category[r["from"]] == "cat-0000"},
        ),
    }


@pytest.mark.parametrize("name", ["none", "category", "motion", "status", "tag", "selling_point", "sp_and_status", "search", "combined"])
def test_clip_filters_and_paging(loaded: GraphStore, source: ParsedACKB, name: str) -> None:
    filters, expected = _clip_filters(source)[name]
    assert expected and (name == "none" or len(expected) < len(source.nodes["CreativeClip"]))
    for limit in (3, 24):
        items = walk(lambda **page: browse.clips(loaded, **filters, **page), limit)
        assert [c["id"] for c in items] == sorted(expected)


def test_clip_items_carry_motion_products_and_links(loaded: GraphStore, source: ParsedACKB) -> None:
    motion_of = {r["from"]: r["to"] for r in _pairs(source, "HAS_MOTION")}
    product_of = {r["from"]: r["to"] for r in _pairs(source, "FEATURES")}
    sp_text = {s["id"]: s["text"] for s in source.nodes["SellingPoint"]}
    by_id = {c["id"]: c for c in source.nodes["CreativeClip"]}
    for item in browse.clips(loaded, limit=24).items:
        assert item["caption"] == by_id[item["id"]]["caption"] and item["tags"] == by_id[item["id"]]["tags"]
        assert item["motion"]["id"] == motion_of[item["id"]]
        assert [p["id"] for p in item["products"]] == [product_of[item["id"]]]
        links = sorted((r["to"], r["status"], r.get("score")) for r in _pairs(source, "ILLUSTRATES") if r["from"] == item["id"])
        assert [(link["selling_point_id"], link["status"], link["score"]) for link in item["links"]] == links
        assert all(link["selling_point_text"] == sp_text[link["selling_point_id"]] for link in item["links"])
    assert browse.clip_detail(loaded, "clip-0000004-002") == browse.clips(loaded, search="clip-0000004-002").items[0]


def test_review_queue_of_a_selling_point(loaded: GraphStore, source: ParsedACKB, media_dir: Path) -> None:
    sp = "sp-0000003-1"
    expected = sorted((r for r in _pairs(source, "ILLUSTRATES") if r["to"] == sp), key=lambda r: (-r.get("score", -1), r["from"]))
    queue = browse.links_for_selling_point(loaded, sp)
    assert [(q["clip_id"], q["status"], q["score"]) for q in queue] == [(r["from"], r["status"], r.get("score")) for r in expected] != []
    assert all("video_path" in q and q["selling_point_id"] == sp for q in queue)
    Curator(loaded, "alice", media_dir).set_link_status(queue[0]["clip_id"], sp, "rejected")
    rejected = browse.links_for_selling_point(loaded, sp, status="rejected")
    assert queue[0]["clip_id"] in [q["clip_id"] for q in rejected] and all(q["status"] == "rejected" for q in rejected)
    assert next(q for q in rejected if q["clip_id"] == queue[0]["clip_id"])["annotator"] == "alice"


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda s: browse.products(s, category_id="cat-missing"), NotFoundError, "cat-missing"),
        (lambda s: browse.selling_points(s, "prod-missing"), NotFoundError, "prod-missing"),
        (lambda s: browse.clips(s, motion_id="motion-missing"), NotFoundError, "motion-missing"),
        (lambda s: browse.clips(s, selling_point_id="sp-missing"), NotFoundError, "sp-missing"),
        (lambda s: browse.clip_detail(s, "clip-missing"), NotFoundError, "clip-missing"),
        (lambda s: browse.links_for_selling_point(s, "sp-missing"), NotFoundError, "sp-missing"),
        (lambda s: browse.clips(s, status="maybe"), ValueError, "status"),
        (lambda s: browse.clips(s, limit=0), ValueError, "limit"),
        (lambda s: browse.products(s, limit=10_000), ValueError, "limit"),
    ],
)
def test_unknown_ids_and_bad_arguments_are_clear_errors(loaded: GraphStore, call: Callable, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call(loaded)
