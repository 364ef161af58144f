"""Review queue: SAR's proposals for a selling point side by side with their videos and scores; accept/reject.

Proposals are `proposed` ILLUSTRATES links (written by `kdcvg retrieve --propose`, or here with
"Ask SAR"). A judgement sets the link's status to approved/rejected with the reviewer as
annotator: exactly what `kdcvg retrieval feedback` (REINFORCE) reads as annotators' feedback.
Keyboard: the first proposal in the queue takes A (accept) and X (reject); Tab moves between
the buttons of the others, Enter/Space presses one.

Below, "Same claim": the selling point's proposed SAME_CLAIM relations (written by `kdcvg
retrieval propose-claims`), each with the other selling point's text and product; a reviewer marks
them the same claim (approved) or different (rejected), with the same stale-judgement check and
audit as clip links. Judged relations are listed underneath.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from kb import browse
from kb.store import Row
from retrieval.api import load_sar, retrieve_for_selling_point
from retrieval.service import propose_links
from ui import state
from ui.forms import judge, link_state_key, save_judgement
from ui.render import md_escape
from ui.widgets import point_chooser, show_video

COLUMNS = 3
MAX_SHOWN = 24


def ask_sar(point: Row, k: int) -> None:
    """Retrieve k clips for the selling point with the latest SAR checkpoint; new ones become proposed links.

    `propose_links` writes them in one audited transaction, never touching an existing judgement; a
    link's score must lie in [0, 1], so SAR's cosine is stored clamped and the card shows SAR's own
    score among the evidence.
    """
    user = state.current_user()
    shared = state.shared_store()
    try:
        with st.spinner("Retrieving with SAR…"):  # the store is locked per read only
            results = retrieve_for_selling_point(point["id"], k=k, loaded=load_sar(shared.settings, store=shared.per_call()))
    except (FileNotFoundError, KeyError, ValueError) as exc:
        st.error(md_escape(exc))
        return
    st.session_state["review_explanations"] = {r.clip_id: [f"SAR score {r.score:.3f}", *r.explanation] for r in results}
    with shared.use() as store:
        written = propose_links(store, point["id"], results, annotator=f"sar-model (asked by {user.username})")
    st.session_state["review_flash"] = f"SAR returned {len(results)} clips; {written} new proposals (the others were already linked)."
    st.rerun()  # the counts and the queue include the new proposals


def proposal_card(media_dir: Path, link: Row, first: bool) -> None:
    """A proposal: video, score, caption, SAR's evidence, and accept/reject buttons."""
    key = link_state_key(link)
    seen = st.session_state.setdefault(f"{key}_seen", link["updated_at"])
    with st.container(border=True):
        show_video(media_dir, link["video_path"])
        score = "—" if link["score"] is None else f"{link['score']:.3f}"
        st.markdown(f"**{md_escape(link['clip_id'])}** · score {score}")
        st.text(link.get("caption") or "")
        for line in st.session_state.get("review_explanations", {}).get(link["clip_id"], []):
            st.caption(md_escape(line))
        accept, reject = st.columns(2)
        if accept.button("Accept", key=f"{key}_accept", type="primary", icon=":material/check:", shortcut="A" if first else None):
            judge(link, "approved", seen, key)
        if reject.button("Reject", key=f"{key}_reject", icon=":material/close:", shortcut="X" if first else None):
            judge(link, "rejected", seen, key)


def claim_card(claim: Row) -> None:
    """A proposed relation: the other selling point, its product and score, and same/different buttons."""
    key = f"claim_{claim['from']}_{claim['to']}"
    seen = st.session_state.setdefault(f"{key}_seen", claim["updated_at"])
    with st.container(border=True):
        score = "—" if claim["score"] is None else f"{claim['score']:.3f}"
        st.markdown(f"**{md_escape(claim['other_id'])}** · {md_escape(claim['other_product'] or 'no product')} · score {score}")
        st.text(claim["other_text"] or "")
        same, different = st.columns(2)
        for column, label, status, icon in ((same, "Same claim", "approved", ":material/check:"), (different, "Different", "rejected", ":material/close:")):
            if column.button(label, key=f"{key}_{status}", type="primary" if status == "approved" else "secondary", icon=icon):
                save_judgement(lambda c, status=status: c.set_claim_status(claim["from"], claim["to"], status, expected_updated_at=seen), key)


def claims_section(point: Row) -> None:
    """The selling point's proposed SAME_CLAIM relations to judge, and its judged ones."""
    shared = state.shared_store()
    with shared.use() as store:
        claims = browse.claims_for_selling_point(store, point["id"], limit=MAX_SHOWN * 2)
    st.subheader("Same claim")
    proposed = [c for c in claims if c["status"] == "proposed"]
    if not proposed:
        st.info("No proposed same-claim relation waits for review (`kdcvg retrieval propose-claims` proposes them).")
    for start in range(0, min(len(proposed), MAX_SHOWN), COLUMNS):
        for column, claim in zip(st.columns(COLUMNS), proposed[start : start + COLUMNS]):
            with column:
                claim_card(claim)
    for claim in (c for c in claims if c["status"] != "proposed"):
        verdict = "same claim" if claim["status"] == "approved" else "different"
        st.caption(md_escape(f"{verdict}: {claim['other_id']} ({claim['other_text']!r}), judged by {claim['annotator'] or 'unknown'}"))


def page() -> None:
    """Pick a selling point, optionally ask SAR, judge the proposals."""
    state.require("review")
    shared = state.shared_store()
    st.header("Review queue")
    with shared.use() as store:
        _, point = point_chooser(store, "review")
    if point is None:
        return
    st.text(point["text"])
    counts = point["links"]
    st.caption(f"{counts['proposed']} proposed · {counts['approved']} approved · {counts['rejected']} rejected")
    flash = st.session_state.pop("review_flash", None)
    with st.expander("Ask SAR for more proposals", expanded=flash is not None):
        if flash:
            st.success(flash)
        k = st.number_input("How many clips", 1, 50, 8, key="review_k")
        if st.button("Ask SAR", key="review_ask"):
            ask_sar(point, int(k))
    with shared.use() as store:
        queue = browse.links_for_selling_point(store, point["id"], status="proposed", limit=MAX_SHOWN)
    if not queue:
        st.info("No proposal waits for review for this selling point.")
    else:
        st.caption("Keyboard: A accepts and X rejects the first proposal; Tab and Enter reach the others.")
    for start in range(0, len(queue), COLUMNS):
        for column, link in zip(st.columns(COLUMNS), queue[start : start + COLUMNS]):
            with column:
                proposal_card(shared.settings.media_dir, link, first=start == 0 and link is queue[0])
    claims_section(point)


page()
