"""Widgets several pages share: pickers fed by server-side queries, keyset pagers, clip cards.

Pickers never load a whole label: products come 50 at a time narrowed by a search box, clips
through `kb.browse.clips` pages. Graph text is shown with `st.text`/escaped markdown only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from kb import browse
from kb import repository as repo
from kb.store import GraphStore, Row
from ui.render import md_escape

PICK_LIMIT = 50
ALL = "(all)"


def category_picker(store: GraphStore, key: str, *, label: str = "Category", allow_all: bool = True) -> str | None:
    """A category select box; the chosen category id (None for all)."""
    categories = browse.categories(store)
    names = {c["id"]: f"{c['name']} ({c['products']})" for c in categories}
    options = ([None] if allow_all else []) + list(names)
    return st.selectbox(label, options, format_func=lambda i: ALL if i is None else names[i], placeholder=ALL, key=key)


def motion_options(store: GraphStore) -> dict[str, str]:
    """Motion id -> name for every motion (a short vocabulary, read with one page)."""
    return {m["id"]: m["name"] for m in repo.motions.list(store, limit=repo.MAX_PAGE).items}


def product_picker(store: GraphStore, key: str, *, category_id: str | None = None, search: str | None = None) -> Row | None:
    """A select box of the first products matching `search` (asked for here when None); the chosen one or None."""
    if search is None:
        search = st.text_input("Find a product (name, brand or id)", key=f"{key}_search")
    page = browse.products(store, category_id=category_id, search=search or None, limit=PICK_LIMIT)
    if not page.items:
        st.info("No product matches.")
        return None
    by_id = {p["id"]: p for p in page.items}
    chosen = st.selectbox("Product", list(by_id), format_func=lambda i: f"{by_id[i]['name']} [{i}]", key=f"{key}_product")
    if page.next_cursor is not None:
        st.caption(f"Showing the first {PICK_LIMIT} matches: type more of the name to narrow them.")
    return by_id.get(chosen)


def selling_point_picker(store: GraphStore, key: str, product_id: str) -> Row | None:
    """A select box of a product's selling points; the chosen one (with its link counts) or None."""
    points = browse.selling_points(store, product_id)
    if not points:
        st.info("This product has no selling points yet.")
        return None
    by_id = {s["id"]: s for s in points}
    chosen = st.selectbox("Selling point", list(by_id), format_func=lambda i: f"{by_id[i]['text'][:90]} [{i}]", key=f"{key}_sp")
    return by_id.get(chosen)


def point_chooser(store: GraphStore, key: str, *, with_category: bool = True) -> tuple[Row | None, Row | None]:
    """Category, product search, product and selling point side by side; (product, selling point)."""
    columns = st.columns([1, 1, 2, 2] if with_category else [1, 2, 2])
    category = None
    if with_category:
        with columns[0]:
            category = category_picker(store, f"{key}_category")
    with columns[-3]:
        search = st.text_input("Find a product (name, brand or id)", key=f"{key}_search")
    with columns[-2]:
        product = product_picker(store, key, category_id=category, search=search)
    with columns[-1]:
        point = selling_point_picker(store, key, product["id"]) if product else None
    return product, point


def clip_picker(store: GraphStore, key: str, *, label: str = "Clip") -> Row | None:
    """A search box over clip ids and captions and a select box of the first matches."""
    search = st.text_input(f"Find a {label.lower()} (id or caption words)", key=f"{key}_search")
    page = browse.clips(store, search=search or None, limit=PICK_LIMIT)
    if not page.items:
        st.info("No clip matches.")
        return None
    by_id = {c["id"]: c for c in page.items}
    chosen = st.selectbox(label, list(by_id), format_func=lambda i: f"{i}: {(by_id[i]['caption'] or '')[:80]}", key=f"{key}_clip")
    return by_id.get(chosen)


class Pager:
    """Keyset paging state kept in the session: a stack of cursors, reset when the filters change."""

    def __init__(self, key: str, filters: Any) -> None:
        self.key = key
        state = st.session_state.setdefault(key, {"filters": filters, "cursors": [None]})
        if state["filters"] != filters:
            state.update(filters=filters, cursors=[None])
        self.state = state

    @property
    def cursor(self) -> str | None:
        """The cursor of the page to show."""
        return self.state["cursors"][-1]

    @property
    def number(self) -> int:
        """1-based page number."""
        return len(self.state["cursors"])

    def controls(self, next_cursor: str | None) -> None:
        """Previous/next buttons; a click changes the page and reruns."""
        left, middle, right = st.columns([1, 2, 1])
        if left.button("← Previous", key=f"{self.key}_prev", disabled=self.number == 1):
            self.state["cursors"].pop()
            st.rerun()
        middle.caption(f"Page {self.number}")
        if right.button("Next →", key=f"{self.key}_next", disabled=next_cursor is None):
            self.state["cursors"].append(next_cursor)
            st.rerun()


def show_video(media_dir: Path, video_path: str | None) -> None:
    """An inline player for a media-relative video path, or a note that there is none."""
    path = media_dir / video_path if video_path else None
    if path is not None and path.is_file():
        st.video(str(path))
    else:
        st.caption("no video file")


def clip_card(media_dir: Path, clip: Row) -> None:
    """One clip: player, id, caption, motion, tags and link statuses, all as inert text."""
    show_video(media_dir, clip.get("video_path"))
    st.markdown(f"**{md_escape(clip['id'])}**")
    st.text(clip.get("caption") or "")
    motion = clip.get("motion") or {}
    details = [f"motion: {motion.get('name') or motion.get('id') or '—'}"]
    if clip.get("tags"):
        details.append("tags: " + ", ".join(clip["tags"]))
    for link in clip.get("links") or []:
        details.append(f"{link['status']} for {link['selling_point_id']}")
    st.caption(md_escape(" · ".join(details)))
