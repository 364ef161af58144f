"""The curation app's page logic with Streamlit's AppTest against a real embedded store (a demo-like sandbox).

Each test gets its own copy of one sandbox (small demo ACKB with real clips, a trained SAR
checkpoint, a tiny generation model, one user per role); the app's shared store is the store the
test inspects, so what a page wrote is read back from the graph itself.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from generation.request import GenerationRequest
from kb import browse, store_lock
from kb.audit import list_audit
from kb.curation import Curator
from kb.store import GraphStore
from kdcvg.config import Settings, load_settings
from ui import auth, state, uploads
from ui.render import md_escape
from ui.sandbox import USERS, copied_sandbox, template_dir
from ui.sessions import FREE_FAILURES, SessionStore

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"
TIMEOUT = 120


@pytest.fixture
def sandbox(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A private sandbox the app is configured for; its shared store is closed afterwards."""
    env = copied_sandbox(template_dir(tmp_path_factory.getbasetemp() / "ui-sandbox"), tmp_path / "sandbox")
    monkeypatch.delenv("KDCVG_CONFIG", raising=False)
    monkeypatch.delenv("NEO4J_URI", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield load_settings()
    state.release_shared_stores()


def graph(settings: Settings) -> GraphStore:
    """The app's own store handle (the test reads under the same lock as the pages)."""
    return state.shared_store(settings)


def rows(settings: Settings, query: str, **params: object) -> list[dict]:
    """Rows of a read in the app's store."""
    with state.shared_store(settings).use() as store:
        return store.read(lambda tx: tx.run(query, **params))


def first_point(settings: Settings) -> dict:
    """The first selling point (by id) with its product: {pid, sid, v (its version)}."""
    return rows(settings, "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p.id AS pid, s.id AS sid, s.version AS v ORDER BY sid LIMIT 1")[0]


def link_of(settings: Settings, clip: str, point: str) -> list[dict]:
    """The ILLUSTRATES link between a clip and a selling point as [{status, who}] (empty if none)."""
    query = "MATCH (c:CreativeClip {id: $c})-[r:ILLUSTRATES]->(s:SellingPoint {id: $s}) RETURN r.status AS status, r.annotator AS who"
    return rows(settings, query, c=clip, s=point)


def signed_in(username: str, password: str | None = None) -> AppTest:
    """A fresh session of the app, signed in as `username` (with the sandbox password unless given)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.text_input[0].input(username)
    at.text_input[1].input(password if password is not None else USERS[username][0])
    at.button[0].click().run()
    return at


def on_page(at: AppTest, page: str) -> AppTest:
    """Switch the session to a page file under ui/ and run it; fail on any exception."""
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def unescaped(markdown: str) -> str:
    """Markdown source as the reader sees it (the app escapes graph text; see ui.render.md_escape)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at: AppTest) -> str:
    """Everything the page shows as text, markdown, captions, alerts, as read on screen (for assertions)."""
    parts = [e.value for kind in (at.text, at.markdown, at.caption, at.error, at.warning, at.success, at.info) for e in kind]
    return unescaped("\n".join(str(p) for p in parts))


def errors(at: AppTest) -> list[str]:
    """The error alerts on the page, as read on screen."""
    return [unescaped(e.value) for e in at.error]


def test_sign_in_refuses_a_wrong_password_and_roles_choose_pages(sandbox: Settings) -> None:
    wrong = signed_in("ann", "not-the-password")
    assert "incorrect" in texts(wrong) and not wrong.header  # no page is shown
    analyst = on_page(signed_in("ana"), "views/console.py")
    assert [h.value for h in analyst.header] == ["Cypher console"]
    annotator = on_page(signed_in("ann"), "views/curate.py")
    assert [h.value for h in annotator.header] == ["Curate the ACKB"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not offered to annotators
        annotator.switch_page("views/console.py")


def test_without_users_file_the_app_says_how_to_create_one(sandbox: Settings) -> None:
    sandbox.ui_users_path.unlink()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert "kdcvg ui add-user" in texts(at) and not at.text_input


def test_browse_filters_clips_server_side_and_pages_through_them(sandbox: Settings) -> None:
    at = on_page(signed_in("ana"), "views/browse.py")
    motions = rows(sandbox, "MATCH (c:CreativeClip)-[:HAS_MOTION]->(m:Motion) RETURN m.id AS id, count(c) AS n ORDER BY n DESC, id")
    busiest = motions[0]
    at.selectbox(key="clips_motion").set_value(busiest["id"]).run()
    shown = [m.value for m in at.markdown if m.value.startswith("**clip")]
    assert len(shown) == busiest["n"]
    at.selectbox(key="clips_motion").set_value(None)
    at.selectbox(key="clips_per_page").set_value(6).run()
    total = rows(sandbox, "MATCH (c:CreativeClip) RETURN count(c) AS n")[0]["n"]
    first_page = [m.value for m in at.markdown if m.value.startswith("**clip")]
    at.button(key="clips_pager_next").click().run()
    second_page = [m.value for m in at.markdown if m.value.startswith("**clip")]
    assert len(first_page) == 6 and len(first_page) + len(second_page) == total and not set(first_page) & set(second_page)
    assert at.button(key="clips_pager_next").disabled  # the last page
    at.text_input(key="browse_search").input("earbuds").run()
    names = [r["name"] for r in rows(sandbox, "MATCH (p:Product) WHERE lower(p.name) CONTAINS 'earbuds' RETURN p.name AS name")]
    assert names and list(at.dataframe[0].value["name"]) == names


def _pick_point(at: AppTest, prefix: str, product_id: str, point_id: str) -> None:

    """Choose a product and one of its selling points in a page's pickers."""
    at.selectbox(key=f"{prefix}_product").set_value(product_id).run()
    at.selectbox(key=f"{prefix}_sp").set_value(point_id).run()


def test_annotator_links_a_clip_and_reviewer_approves_it(sandbox: Settings) -> None:
    pair = rows(
        sandbox,
        "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s:SellingPoint), (c:CreativeClip)-[:FEATURES]->(p) "
        "WHERE NOT (c)-[:ILLUSTRATES]->(s) RETURN p.id AS pid, s.id AS sid, c.id AS cid ORDER BY sid, cid LIMIT 1",
    )[0]
    at = on_page(signed_in("ann"), "views/curate.py")
    _pick_point(at, "cur_link", pair["pid"], pair["sid"])
    at.text_input(key="cur_link_new_search").input(pair["cid"]).run()
    at.selectbox(key="cur_link_new_clip").set_value(pair["cid"])
    at.radio(key="cur_link_status").set_value("proposed")
    at.button(key="cur_link_button").click().run()
    assert not at.error, errors(at)
    link = link_of(sandbox, pair["cid"], pair["sid"])
    assert link == [{"status": "proposed", "who": "ann"}]

    review = on_page(signed_in("rev"), "views/review.py")
    _pick_point(review, "review", pair["pid"], pair["sid"])
    review.button(key=f"link_{pair['cid']}_{pair['sid']}_accept").click().run()
    link = link_of(sandbox, pair["cid"], pair["sid"])
    assert link == [{"status": "approved", "who": "rev"}]
    with graph(sandbox).use() as store:
        events = list_audit(store, entity_id=f"{pair['cid']}->{pair['sid']}").events
    assert [(e.actor, e.action, (e.after or {}).get("status")) for e in events] == [("rev", "set_status", "approved"), ("ann", "link", "proposed")]
    audit = on_page(review, "views/audit.py")
    audit.text_input(key="audit_entity").input(f"{pair['cid']}->{pair['sid']}").run()
    assert list(audit.dataframe[0].value["who"]) == ["rev", "ann"]


def _open_point_editor(username: str, product_id: str, point_id: str) -> AppTest:

    """A session of `username` on Curate with a selling point's editor open."""
    at = on_page(signed_in(username), "views/curate.py")
    at.selectbox(key="cur_sp_product_product").set_value(product_id).run()
    at.selectbox(key="cur_sp_sp").set_value(point_id).run()
    return at


def test_two_sessions_editing_one_selling_point_conflict_and_both_values_survive(sandbox: Settings) -> None:
    point = first_point(sandbox)
    first = _open_point_editor("ann", point["pid"], point["sid"])
    second = _open_point_editor("rev", point["pid"], point["sid"])
    first.text_area(key="cur_sp_edit_text").input("Keeps tea hot for 12 hours")
    first.button(key="FormSubmitter:cur_sp_edit_form-Save").click().run()
    second.text_area(key="cur_sp_edit_text").input("Keeps soup warm all day")
    second.button(key="FormSubmitter:cur_sp_edit_form-Save").click().run()
    assert "Someone saved this SellingPoint" in texts(second)
    conflict = second.dataframe[0].value
    assert list(conflict["stored now"]) == ["Keeps tea hot for 12 hours"] and list(conflict["yours"]) == ["Keeps soup warm all day"]
    assert second.text_area(key="cur_sp_edit_text").value == "Keeps soup warm all day"  # nothing lost
    stored = rows(sandbox, "MATCH (s:SellingPoint {id: $s}) RETURN s.text AS text, s.version AS v", s=point["sid"])
    assert stored == [{"text": "Keeps tea hot for 12 hours", "v": point["v"] + 1}]
    with graph(sandbox).use() as store:
        events = list_audit(store, entity_id=point["sid"]).events
    assert [(e.actor, e.action) for e in events] == [("rev", "conflict"), ("ann", "update")]
    assert events[1].after["text"] == "Keeps tea hot for 12 hours" and events[0].after["values"]["text"] == "Keeps soup warm all day"
    second.button(key="cur_sp_edit_keep_mine").click().run()
    stored = rows(sandbox, "MATCH (s:SellingPoint {id: $s}) RETURN s.text AS text, s.version AS v", s=point["sid"])
    assert stored == [{"text": "Keeps soup warm all day", "v": point["v"] + 2}]


def _create_product(at: AppTest, name: str) -> None:

    """Submit the Create Product form with `name` (in the first category)."""
    at.segmented_control(key="cur_products_mode").set_value("Create").run()
    at.text_input(key="cur_new_product_name").input(name)
    at.button(key="FormSubmitter:cur_new_product_form-Create Product").click().run()


def _counts(settings: Settings) -> tuple[int, int]:

    """(ACKB nodes, audit events) in the store: equal counts mean nothing was written."""
    nodes = rows(settings, "MATCH (n) WHERE label(n) <> 'AuditEvent' RETURN count(n) AS n")[0]["n"]
    return nodes, rows(settings, "MATCH (e:AuditEvent) RETURN count(e) AS n")[0]["n"]


def test_bad_input_is_refused_next_to_its_field_and_writes_nothing(sandbox: Settings) -> None:
    at = on_page(signed_in("ann"), "views/curate.py")
    before = _counts(sandbox)
    _create_product(at, "   ")
    assert any("must not be empty" in e for e in errors(at)) and _counts(sandbox) == before

    at.segmented_control(key="cur_clips_mode").set_value("Create").run()
    at.text_area(key="cur_upload_caption").input("x" * 10_000_001)
    clip_file = next((sandbox.media_dir / "clips").glob("*.mp4"))
    at.file_uploader(key="cur_upload_file").set_value(("new.mp4", clip_file.read_bytes(), "video/mp4"))
    at.button(key="FormSubmitter:cur_upload_form-Upload clip").click().run()
    assert any("too long" in e for e in errors(at)) and _counts(sandbox) == before
    at.text_area(key="cur_upload_caption").input("A fine caption")
    at.file_uploader(key="cur_upload_file").set_value(("notes.mp4", b"just some text, not a video" * 100, "video/mp4"))
    at.button(key="FormSubmitter:cur_upload_form-Upload clip").click().run()
    assert any("is not a video" in e for e in errors(at)) and _counts(sandbox) == before
    assert sorted(p.name for p in (sandbox.media_dir / "clips").iterdir()) == sorted(
        p.name for p in (sandbox.media_dir / "clips").iterdir() if not p.name.startswith(".upload")
    )


HOSTILE = '<script>alert("x")</script> <img src=x onerror="alert(1)"> ![t](http://example.invalid/t.png)'


def unescaped_markup(markdown: str) -> list[str]:
    """The characters a markdown element would render as markup: `<` or `[` without a backslash before it."""
    return re.findall(r"(?<!\\)[<\[]", markdown)


def test_script_tags_are_stored_verbatim_and_shown_inert(sandbox: Settings) -> None:
    """The hostile text reaches the page in the elements that carry it: a table cell, a select box's
    option, a clip card's plain text, and escaped in a markdown caption; nothing renders it as markup."""
    at = on_page(signed_in("ann"), "views/curate.py")
    _create_product(at, HOSTILE)
    stored = rows(sandbox, "MATCH (p:Product) WHERE p.name = $n RETURN p.id AS id", n=HOSTILE)
    assert len(stored) == 1
    clip = rows(sandbox, "MATCH (c:CreativeClip) RETURN c.id AS id, c.version AS v ORDER BY id LIMIT 1")[0]
    with state.shared_store(sandbox).use() as store:
        Curator(store, "ann").update("CreativeClip", clip["id"], {"caption": HOSTILE, "tags": [HOSTILE]}, expected_version=clip["v"])

    browse_page = on_page(at, "views/browse.py")
    browse_page.text_input(key="browse_search").input("script").run()
    assert list(browse_page.dataframe[0].value["name"]) == [HOSTILE]  # a table cell: data, never markup
    assert browse_page.selectbox(key="browse_product").options == [f"{HOSTILE} [{stored[0]['id']}]"]  # an option: plain text
    browse_page.text_input(key="clips_search").input("onerror").run()
    assert [t.value for t in browse_page.text if "onerror" in t.value] == [HOSTILE]  # the clip card's caption: st.text, inert
    carriers = [m.value for m in (*browse_page.markdown, *browse_page.caption) if "onerror" in m.value]
    assert len(carriers) == 1 and md_escape(f"tags: {HOSTILE}") in carriers[0], carriers  # the card's details line
    assert unescaped_markup(carriers[0]) == [], carriers[0]


def test_upload_measures_motion_and_stores_the_file(sandbox: Settings) -> None:
    at = on_page(signed_in("ann"), "views/curate.py")
    product = rows(sandbox, "MATCH (p:Product) RETURN p.id AS id ORDER BY id LIMIT 1")[0]["id"]
    at.segmented_control(key="cur_clips_mode").set_value("Create").run()
    at.selectbox(key="cur_upload_product_product").set_value(product).run()
    source = min((sandbox.media_dir / "clips").glob("*.mp4"))
    at.text_area(key="cur_upload_caption").input("Bottle on a desk, slow zoom")
    at.text_input(key="cur_upload_tags").input("desk, zoom")
    at.file_uploader(key="cur_upload_file").set_value(("desk.mp4", source.read_bytes(), "video/mp4"))
    at.button(key="FormSubmitter:cur_upload_form-Upload clip").click().run()
    assert not at.error, errors(at)
    clip = rows(
        sandbox,
        "MATCH (c:CreativeClip)-[:FEATURES]->(p:Product {id: $p}) WHERE c.caption = 'Bottle on a desk, slow zoom' "
        "RETURN c.video_path AS path, c.num_frames AS frames, c.motion_magnitude AS magnitude, c.tags AS tags",
        p=product,
    )
    assert len(clip) == 1 and clip[0]["tags"] == ["desk", "zoom"] and clip[0]["frames"] > 1 and clip[0]["magnitude"] is not None
    assert (sandbox.media_dir / clip[0]["path"]).read_bytes() == source.read_bytes()


def test_console_is_read_only_with_table_csv_and_graph(sandbox: Settings) -> None:
    at = on_page(signed_in("ana"), "views/console.py")
    at.text_area(key="console_query").input("MATCH (p:Product)-[r:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p, r, s")
    at.button(key="console_run").click().run()
    expected = rows(sandbox, "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s:SellingPoint) RETURN count(*) AS n")[0]["n"]
    table = at.dataframe[0].value
    assert len(table) == expected and list(table.columns) == ["p", "r", "s"]
    assert json.loads(table["p"][0])["_label"] == "Product"
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot.count("HAS_SELLING_POINT") == expected and "Product: " in dot
    before = _counts(sandbox)
    at.text_area(key="console_query").input("MATCH (p:Product) SET p.name = 'hacked' RETURN p")
    at.button(key="console_run").click().run()
    assert any("read-only" in e for e in errors(at)) and _counts(sandbox) == before
    assert not rows(sandbox, "MATCH (p:Product {name: 'hacked'}) RETURN p.id AS id")


def test_console_times_out(sandbox: Settings) -> None:
    at = on_page(signed_in("ana"), "views/console.py")
    at.text_area(key="console_query").input("MATCH (a), (b), (c), (d), (e), (f) RETURN sum(size(a.id) + size(f.id))")
    at.number_input(key="console_timeout").set_value(0.2)
    at.button(key="console_run").click().run()
    assert any("timeout" in e for e in errors(at))


def test_reviewer_asks_sar_for_proposals_and_they_are_audited(sandbox: Settings) -> None:
    point = first_point(sandbox)
    linked = {r["c"] for r in rows(sandbox, "MATCH (c:CreativeClip)-[:ILLUSTRATES]->(:SellingPoint {id: $s}) RETURN c.id AS c", s=point["sid"])}
    at = on_page(signed_in("rev"), "views/review.py")
    _pick_point(at, "review", point["pid"], point["sid"])
    at.number_input(key="review_k").set_value(6)
    at.button(key="review_ask").click().run()
    assert not at.error, errors(at)
    now = {r["c"]: r["status"] for r in rows(sandbox, "MATCH (c:CreativeClip)-[r:ILLUSTRATES]->(:SellingPoint {id: $s}) RETURN c.id AS c, r.status AS status", s=point["sid"])}
    new = set(now) - linked
    assert new and all(now[c] == "proposed" for c in new)
    with graph(sandbox).use() as store:
        actors = {e.actor for e in list_audit(store, action="link").events}
    assert actors == {"sar-model (asked by rev)"}
    with graph(sandbox).use() as store:
        queue = browse.links_for_selling_point(store, point["sid"], status="proposed")
    buttons = {b.key for b in at.button if b.key and b.key.endswith("_accept")}
    assert buttons == {f"link_{q['clip_id']}_{point['sid']}_accept" for q in queue}


def test_generate_shows_the_video_and_its_provenance(sandbox: Settings) -> None:
    point = first_point(sandbox)
    at = on_page(signed_in("ann"), "views/generate.py")
    _pick_point(at, "gen", point["pid"], point["sid"])
    at.button(key="gen_run").click().run()
    assert not at.error, errors(at)
    made = rows(
        sandbox,
        "MATCH (g:GeneratedVideo)-[:GENERATED_FOR]->(:SellingPoint {id: $s}) MATCH (g)-[r:REFERENCED]->(c:CreativeClip) "
        "RETURN g.id AS g, g.model_id AS model, r.rank AS rank, c.id AS clip ORDER BY rank",
        s=point["sid"],
    )
    assert [m["rank"] for m in made] == [1, 2, 3] and len({m["g"] for m in made}) == 1
    (recorded,) = rows(sandbox, "MATCH (g:GeneratedVideo {id: $g}) RETURN g.parameters AS p", g=made[0]["g"])
    asked = {"product": point["pid"], "selling_point": point["sid"], "motion_strength": 0.5}  # the page's defaults
    assert json.loads(recorded["p"])["request"] == GenerationRequest.parse(asked).recorded()  # as the CLI and API record it
    shown = texts(at)
    assert made[0]["g"] in shown and f"model: {made[0]['model']}" in shown
    assert all(f"#{m['rank']} {m['clip']}" in shown for m in made)
    assert len(at.get("video")) >= 1 + len(made)  # the result and each reference clip


def test_generate_applies_a_chosen_motion_lora_and_records_it(sandbox: Settings) -> None:
    from generation.backbones import load_backbone
    from generation.motion_lora import MotionLoraConfig, train_clip_lora

    point = first_point(sandbox)
    (clip,) = rows(sandbox, "MATCH (c:CreativeClip)-[r:ILLUSTRATES]->(:SellingPoint {id: $s}) WHERE r.status <> 'rejected' "
                            "AND c.video_path IS NOT NULL RETURN c.id AS id ORDER BY id LIMIT 1", s=point["sid"])  # fmt: skip
    model = sandbox.generation_model_dir
    with graph(sandbox).use() as store:
        lora = train_clip_lora(store, load_backbone(model), clip["id"], model_dir=model, media_dir=sandbox.media_dir, cache_dir=sandbox.cache_dir,
                               config=MotionLoraConfig(steps=1), num_frames=8, height=64, width=64)  # fmt: skip
    at = on_page(signed_in("ann"), "views/generate.py")
    _pick_point(at, "gen", point["pid"], point["sid"])
    choice = at.selectbox(key="gen_lora")
    assert choice.options[:2] == ["none", "auto: the best reference clip's newest LoRA"]
    assert f"{lora.id} · clip {clip['id']} · 1 steps" in choice.options and choice.value is None
    choice.set_value(lora.id)
    at.slider(key="gen_lora_scale").set_value(0.5)
    at.button(key="gen_run").click().run()
    assert not at.error, errors(at)
    (made,) = rows(sandbox, "MATCH (g:GeneratedVideo)-[u:USED_LORA]->(m:MotionLora) RETURN g.id AS g, g.parameters AS p, u.scale AS scale, m.id AS m")
    assert (made["scale"], made["m"]) == (0.5, lora.id)
    asked = {"product": point["pid"], "selling_point": point["sid"], "motion_strength": 0.5, "motion_lora": lora.id, "motion_lora_scale": 0.5}
    parameters = json.loads(made["p"])
    assert parameters["request"] == GenerationRequest.parse(asked).recorded()  # the same fields as the CLI and API
    assert parameters["motion_lora"]["id"] == lora.id and parameters["motion_lora"]["trained"]["steps"] == 1
    assert f"motion LoRA: {lora.id} at scale 0.5" in texts(at)


# --- sign-in, sessions, store sharing and uploads (the app's doors) ---


def signed_out(at: AppTest) -> bool:
    """Whether the session shows the sign-in form and nothing else."""
    return [t.label for t in at.text_input] == ["Username", "Password"] and "Signed in as" not in texts(at) and not at.header


def kdcvg_ui(*args: str, password: str | None = None) -> None:
    """Run `kdcvg ui ARGS` in this process with the sandbox's environment; must succeed."""
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["ui", *args], input=None if password is None else password + "\n")
    assert result.exit_code == 0, result.output


def test_a_session_token_the_server_did_not_issue_is_refused(sandbox: Settings) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state[auth.TOKEN] = "rev"  # a browser session cannot name its user; a guessed token opens nothing
    at.run()
    assert signed_out(at)


def test_sign_out_ends_the_session_on_the_server(sandbox: Settings) -> None:
    at = on_page(signed_in("rev"), "views/review.py")
    token = at.session_state[auth.TOKEN]
    sessions = SessionStore(sandbox.ui_users_path.parent)
    assert sessions.user_of(token) == "rev"
    at.button(key="sign_out").click().run()
    assert signed_out(at) and sessions.user_of(token) is None


def test_password_change_and_key_rotation_sign_live_sessions_out(sandbox: Settings) -> None:
    ann, rev = on_page(signed_in("ann"), "views/curate.py"), on_page(signed_in("rev"), "views/curate.py")
    kdcvg_ui("set-password", "ann", "--password-stdin", password="a-new-password-1")
    assert signed_out(ann.run()) and "Signed in as" in texts(rev.run())
    assert "Signed in as" in texts(signed_in("ann", "a-new-password-1"))
    kdcvg_ui("rotate-key")
    assert signed_out(rev.run())


def test_sign_in_is_throttled_after_repeated_failures(sandbox: Settings) -> None:
    for _ in range(FREE_FAILURES):
        assert "incorrect" in texts(signed_in("rev", "not-the-password"))
    right = signed_in("rev")
    assert "Too many failed sign-ins" in texts(right) and signed_out(right)


def test_clearing_streamlit_caches_leaves_the_shared_store_open(sandbox: Settings) -> None:
    at = on_page(signed_in("ana"), "views/browse.py")
    shared = state.shared_store(sandbox)
    st.cache_resource.clear()  # what Streamlit does for any browser's "clear_cache" message
    st.cache_data.clear()
    assert state.shared_store(sandbox) is shared
    assert rows(sandbox, "MATCH (p:Product) RETURN count(p) AS n")[0]["n"] > 0
    assert not at.run().exception


def test_no_uploader_without_the_curate_role(sandbox: Settings) -> None:
    anonymous = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    analyst = on_page(signed_in("ana"), "views/browse.py")
    assert not anonymous.get("file_uploader") and not analyst.get("file_uploader")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        analyst.switch_page("views/curate.py")


def test_an_upload_over_the_caps_is_refused_before_decoding_and_writes_nothing(sandbox: Settings, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "long.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 60, (64, 64))
    for i in range(1200):  # 20 s at 60 fps, as reproduced
        writer.write(np.full((64, 64, 3), i % 255, dtype=np.uint8))
    writer.release()
    media = sorted((sandbox.media_dir / "clips").iterdir())
    before = _counts(sandbox)
    at = on_page(signed_in("ann"), "views/curate.py")
    at.segmented_control(key="cur_clips_mode").set_value("Create").run()
    at.text_area(key="cur_upload_caption").input("Too long to measure")
    at.file_uploader(key="cur_upload_file").set_value(("long.mp4", path.read_bytes(), "video/mp4"))
    at.button(key="FormSubmitter:cur_upload_form-Upload clip").click().run()
    assert any("refused before decoding" in e and "1200 frames" in e for e in errors(at)), errors(at)
    assert _counts(sandbox) == before and sorted((sandbox.media_dir / "clips").iterdir()) == media


def test_motion_is_measured_while_another_session_holds_the_store(sandbox: Settings) -> None:
    shared = state.shared_store(sandbox)
    source = min((sandbox.media_dir / "clips").glob("*.mp4"))
    stored = sandbox.media_dir / "clips" / "clip-measured-unlocked.mp4"
    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            outcome["clip"] = uploads.upload_clip(
                shared, "ann", "desk.mp4", source.read_bytes(), {"id": "clip-measured-unlocked", "caption": "Measured unlocked"},
                product_id=None, motion_id=None,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    uploader = threading.Thread(target=upload)
    with shared.use():  # another session holds the store for the whole measurement
        uploader.start()
        deadline = time.monotonic() + 300  # a guard against a hang, not a speed claim
        while not stored.exists() and uploader.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        measured_while_locked = stored.exists() and uploader.is_alive()  # measured and placed; waiting for the write only
    uploader.join()
    assert measured_while_locked and "error" not in outcome, outcome
    clip = rows(sandbox, "MATCH (c:CreativeClip {id: 'clip-measured-unlocked'}) RETURN c.num_frames AS n, c.motion_magnitude AS m")
    assert len(clip) == 1 and clip[0]["n"] > 1 and clip[0]["m"] is not None


def test_a_store_held_by_a_cli_writer_is_one_clear_message(sandbox: Settings) -> None:
    writer = store_lock.acquire(sandbox, "kdcvg kb import")
    try:
        at = signed_in("ann")
    finally:
        assert writer is not None
        writer.release()
    assert not at.exception and any(f"another kdcvg command is writing to this store (pid {os.getpid()}: kdcvg kb import)" in e for e in errors(at))


def test_generate_offers_configured_backbones_only_and_no_path(sandbox: Settings) -> None:
    point = first_point(sandbox)
    at = on_page(signed_in("ann"), "views/generate.py")
    _pick_point(at, "gen", point["pid"], point["sid"])
    assert not [t for t in at.text_input if t.key == "gen_model"]
    options = at.selectbox(key="gen_model").options
    assert options and not any("/" in o for o in options)


def test_private_modes_of_the_data_folder(sandbox: Settings) -> None:
    on_page(signed_in("ann"), "views/browse.py")
    ui_dir = sandbox.ui_users_path.parent
    assert stat.S_IMODE(sandbox.data_dir.stat().st_mode) == 0o700 and stat.S_IMODE(ui_dir.stat().st_mode) == 0o700
    private = [sandbox.ladybug_path, sandbox.ui_users_path, ui_dir / "session.key", ui_dir / "sessions.sqlite"]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in private} == {p.name: 0o600 for p in private}
