"""Browse and search: products by category with their selling points, and the clip library with previews.

Every list is one server-side page (`kb.browse`, keyset paging), so the page costs the same on a
100k-clip ACKB as on the demo.
"""

from __future__ import annotations

import streamlit as st

from kb import browse
from kb.schema import ILLUSTRATION_STATUSES
from ui import state
from ui.render import md_escape
from ui.widgets import ALL, Pager, category_picker, clip_card, motion_options

PRODUCTS_PER_PAGE = 20
CLIPS_PER_PAGE = 12
PAGE_SIZES = (6, 12, 24, 48)
GRID = 3


def products_tab() -> None:
    """Products of a category matching a search, a page at a time; a chosen product's selling points."""
    shared = state.shared_store()
    with shared.use() as store:
        category = category_picker(store, "browse_category")
        search = st.text_input("Search products (name, brand or id)", key="browse_search")
        pager = Pager("browse_products_pager", (category, search))
        page = browse.products(store, category_id=category, search=search or None, limit=PRODUCTS_PER_PAGE, cursor=pager.cursor)
    if not page.items:
        st.info("No product matches.")
        return
    rows = [{"id": p["id"], "name": p["name"], "brand": p.get("brand"), "category": p.get("category_id")} for p in page.items]
    st.dataframe(rows, width="stretch", hide_index=True, key="browse_products_table")
    pager.controls(page.next_cursor)
    by_id = {p["id"]: p for p in page.items}
    chosen = st.selectbox("Show the selling points of", list(by_id), format_func=lambda i: f"{by_id[i]['name']} [{i}]", key="browse_product")
    product = by_id[chosen]
    if product.get("description"):
        st.text(product["description"])
    with shared.use() as store:
        points = browse.selling_points(store, product["id"])
    if not points:
        st.info("This product has no selling points yet.")
        return
    st.dataframe(
        [{"id": s["id"], "selling point": s["text"], **{status: s["links"][status] for status in ILLUSTRATION_STATUSES}} for s in points],
        width="stretch",
        hide_index=True,
        key="browse_points_table",
    )


def clips_tab() -> None:
    """The clip library: filters, a page of clip cards with inline players, paging."""
    shared = state.shared_store()
    with shared.use() as store:
        first, second, third, fourth = st.columns(4)
        with first:
            category = category_picker(store, "clips_category")
        motions = motion_options(store)
        motion = second.selectbox("Motion", [None, *motions], format_func=lambda m: ALL if m is None else motions[m], placeholder=ALL, key="clips_motion")
        status = third.selectbox("Annotation status", [None, *ILLUSTRATION_STATUSES], format_func=lambda s: ALL if s is None else s, placeholder=ALL, key="clips_status")
        tag = fourth.text_input("Tag (exact)", key="clips_tag").strip() or None
        words, size = st.columns([3, 1])
        search = words.text_input("Search captions and ids", key="clips_search").strip() or None
        per_page = size.selectbox("Per page", PAGE_SIZES, index=PAGE_SIZES.index(CLIPS_PER_PAGE), key="clips_per_page")
        pager = Pager("clips_pager", (category, motion, status, tag, search, per_page))
        page = browse.clips(
            store, category_id=category, motion_id=motion, status=status, tag=tag, search=search, limit=per_page, cursor=pager.cursor
        )
    if not page.items:
        st.info("No clip matches these filters.")
        return
    for start in range(0, len(page.items), GRID):
        for column, clip in zip(st.columns(GRID), page.items[start : start + GRID]):
            with column, st.container(border=True):
                clip_card(shared.settings.media_dir, clip)
    pager.controls(page.next_cursor)


def page() -> None:
    """Two tabs: products and clips."""
    user = state.require("read")
    st.header("Browse the ACKB")
    st.caption(md_escape(f"{user.name}: pick a product to see its selling points, or filter the clip library."))
    products, library = st.tabs(["Products", "Clip library"])
    with products:
        products_tab()
    with library:
        clips_tab()


page()
