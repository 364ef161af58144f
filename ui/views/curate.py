"""Curate: create, edit and delete products, selling points, clips (mp4 upload), motions and categories;
link clips to selling points, judge links, edit tags. Every write goes through `kb.curation.Curator`
as the signed-in user (validated, audited, version-checked); see ui/forms.py for conflicts.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from kb import browse
from kb.curation import CURATED_LABELS, VIDEO_SUFFIXES
from kb.repository import RecordValidationError
from kb.schema import ILLUSTRATION_STATUSES
from kb.store import ConflictError, NotFoundError, Row
from ui import state, uploads
from ui.forms import NodeEditor, create_form, field_errors, judge, link_state_key, show_errors, write
from ui.render import md_escape
from ui.widgets import (
    category_picker,
    clip_card,
    clip_picker,
    motion_options,
    point_chooser,
    product_picker,
    selling_point_picker,
    show_video,
)

MODES = ("Edit", "Create")


def _mode(key: str) -> str:

    """Edit or Create, chosen with a segmented control."""
    return st.segmented_control("Mode", MODES, default="Edit", key=key, label_visibility="collapsed") or "Edit"


def _edit(label: str, record_id: str | None, key: str) -> None:
    """The editor of one stored node, read fresh from the store."""
    if record_id is None:
        return
    if st.session_state.get(f"{key}_deleted") == record_id:
        st.info(md_escape(f"{label} {record_id} was deleted."))
        return
    try:
        with state.shared_store().use() as store:
            record = CURATED_LABELS[label].get(store, record_id)
    except NotFoundError as exc:
        st.info(md_escape(exc))
        return
    NodeEditor(label, record, key).render()


def products_tab() -> None:
    """Edit a product, or create one in a category."""
    shared = state.shared_store()
    if _mode("cur_products_mode") == "Create":
        with shared.use() as store:
            category = category_picker(store, "cur_new_product_category", label="In category", allow_all=False)
        if category is not None:
            create_form("Product", "cur_new_product", related=[("IN_CATEGORY", category)])
        return
    with shared.use() as store:
        product = product_picker(store, "cur_products")
    _edit("Product", product["id"] if product else None, "cur_product")


def selling_points_tab() -> None:
    """Edit a product's selling point, or add one to a product."""
    shared = state.shared_store()
    mode = _mode("cur_sp_mode")
    with shared.use() as store:
        product = product_picker(store, "cur_sp_product")
        point = selling_point_picker(store, "cur_sp", product["id"]) if product and mode == "Edit" else None
    if product is None:
        return
    if mode == "Create":
        create_form("SellingPoint", "cur_new_sp", related=[("HAS_SELLING_POINT", product["id"])])
    else:
        _edit("SellingPoint", point["id"] if point else None, "cur_sp_edit")


def clips_tab() -> None:
    """Edit a clip's caption and tags (or delete it), or upload a new clip."""
    shared = state.shared_store()
    if _mode("cur_clips_mode") == "Create":
        upload_form()
        return
    with shared.use() as store:
        clip = clip_picker(store, "cur_clips")
        detail = browse.clip_detail(store, clip["id"]) if clip else None
    if detail is None:
        return
    left, right = st.columns([1, 2])
    with left:
        clip_card(shared.settings.media_dir, detail)
    with right:
        _edit("CreativeClip", detail["id"], "cur_clip")


def upload_form() -> None:
    """Upload a video: header caps checked, stored in the data dir, motion measured (store unlocked meanwhile), clip created and linked."""
    shared = state.shared_store()
    with shared.use() as store:
        product = product_picker(store, "cur_upload_product")
        motions = motion_options(store)
    slots = {}
    with st.form("cur_upload_form"):
        upload = st.file_uploader(
            "Video", type=[s.lstrip(".") for s in VIDEO_SUFFIXES], key="cur_upload_file", max_upload_size=uploads.MAX_UPLOAD_MB,
            help=f"At most {uploads.MAX_UPLOAD_MB} MB, {uploads.MAX_SECONDS:g} s, {uploads.MAX_FPS:g} fps, 1920x1080.",
        )  # fmt: skip
        slots["file"] = st.empty()
        caption = st.text_area("Caption", key="cur_upload_caption", height=80)
        slots["caption"] = st.empty()
        tags = st.text_input("Tags (comma-separated)", key="cur_upload_tags")
        slots["tags"] = st.empty()
        motion = st.selectbox("Motion", [None, *motions], format_func=lambda m: "(measure only)" if m is None else motions[m], key="cur_upload_motion")
        slots["_form"] = st.empty()
        submitted = st.form_submit_button("Upload clip", type="primary")
    if not submitted:
        return
    if upload is None:
        slots["file"].error("Choose a video file.")
        return
    record = {"caption": caption, "tags": [t.strip() for t in tags.split(",") if t.strip()] or None}
    try:
        with st.spinner("Checking the video and measuring its motion…"):
            created = uploads.upload_clip(
                shared, state.current_user().username, upload.name, upload.getvalue(), record,
                product_id=product["id"] if product else None, motion_id=motion,
            )  # fmt: skip
    except RecordValidationError as exc:
        show_errors(slots, field_errors(exc))
        return
    except (ConflictError, NotFoundError) as exc:
        slots["_form"].error(md_escape(exc))
        return
    st.success(md_escape(f"uploaded clip {created['id']}: {created['num_frames']} frames, motion magnitude {created['motion_magnitude']:.2f}"))
    show_video(shared.settings.media_dir, created["video_path"])


def links_tab() -> None:
    """Link a clip to a selling point, and judge (or remove) the selling point's links."""
    shared = state.shared_store()
    with shared.use() as store:
        _, point = point_chooser(store, "cur_link", with_category=False)
    if point is None:
        return
    st.text(point["text"])
    with st.container(border=True):
        st.markdown("**Link a clip to this selling point**")
        with shared.use() as store:
            clip = clip_picker(store, "cur_link_new")
        status = st.radio("Status", ILLUSTRATION_STATUSES, horizontal=True, key="cur_link_status")
        if st.button("Link clip", type="primary", key="cur_link_button", disabled=clip is None):
            try:
                write(lambda c: c.link_clip(clip["id"], point["id"], status=status))
            except (RecordValidationError, ConflictError, NotFoundError) as exc:
                st.error(md_escape(exc))
            else:
                st.success(md_escape(f"linked {clip['id']} to {point['id']} as {status}"))
    with shared.use() as store:
        links = browse.links_for_selling_point(store, point["id"])
    st.markdown(f"**Clips linked to this selling point** ({len(links)})")
    for link in links:
        link_row(shared.settings.media_dir, link)


def link_row(media_dir: Path, link: Row) -> None:
    """One link: the clip, its status (changeable), and unlink; a stale judgement shows the newer one."""
    key = link_state_key(link)
    seen = st.session_state.setdefault(f"{key}_seen", link["updated_at"])
    with st.container(border=True):
        video, text, action = st.columns([1, 2, 1])
        with video:
            show_video(media_dir, link["video_path"])
        with text:
            st.markdown(f"**{md_escape(link['clip_id'])}**")
            st.text(link.get("caption") or "")
            score = "—" if link["score"] is None else f"{link['score']:.3f}"
            st.caption(md_escape(f"{link['status']} by {link['annotator'] or '—'} · score {score} · {link['updated_at']}"))
        with action:
            status = st.selectbox("Status", ILLUSTRATION_STATUSES, index=ILLUSTRATION_STATUSES.index(link["status"]), key=f"{key}_status")
            if st.button("Save status", key=f"{key}_save", disabled=status == link["status"] and seen == link["updated_at"]):
                judge(link, status, seen, key)
            if st.button("Unlink", key=f"{key}_unlink"):
                try:
                    write(lambda c: c.unlink_clip(link["clip_id"], link["selling_point_id"]))
                except NotFoundError as exc:
                    st.error(md_escape(exc))
                else:
                    st.rerun()


def simple_tab(label: str, key: str) -> None:
    """Motions and categories: pick one to edit, or create one."""
    shared = state.shared_store()
    if _mode(f"{key}_mode") == "Create":
        create_form(label, f"{key}_new")
        return
    with shared.use() as store:
        if label == "Motion":
            motions = motion_options(store)
            chosen = st.selectbox("Motion", list(motions), format_func=lambda m: f"{motions[m]} [{m}]", key=f"{key}_pick")
        else:
            chosen = category_picker(store, f"{key}_pick", allow_all=False)
    _edit(label, chosen, f"{key}_edit")


def page() -> None:
    """One tab per kind of record."""
    state.require("curate")
    st.header("Curate the ACKB")
    tabs = st.tabs(["Products", "Selling points", "Clips", "Links", "Motions", "Categories"])
    with tabs[0]:
        products_tab()
    with tabs[1]:
        selling_points_tab()
    with tabs[2]:
        clips_tab()
    with tabs[3]:
        links_tab()
    with tabs[4]:
        simple_tab("Motion", "cur_motion")
    with tabs[5]:
        simple_tab("Category", "cur_category")


page()
