"""The annotator's round trip in a real browser: `kdcvg ui` served, headless Debian Chromium driven by Playwright.

Sign in, find a product, link a clip to a selling point, approve it in the review queue, see the
audit row; then stop the server and check the graph itself. Hostile text is shown literally and
runs nothing. The served app also refuses a forged re-login cookie, uploads from sessions that
are not signed in as curators, and other writers on its store. Skipped (with the reason) only
where /usr/bin/chromium is absent, and failed for that under CI=true.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kb.audit import list_audit
from kb.backends import open_store
from kb.curation import Curator
from kdcvg.config import load_settings
from tests.conftest import unavailable
from ui.browser import CHROMIUM, AppPage, chromium_page, served_app
from ui.sandbox import USERS, copied_sandbox, template_dir

pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _chromium_present() -> None:
    """Skip where Chromium is absent, with the reason; under CI=true that is a failure, never a green skip."""
    if not CHROMIUM.exists():
        unavailable(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium, or `make browser`)")

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def test_annotator_round_trip_in_a_browser(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    env = copied_sandbox(template_dir(tmp_path_factory.getbasetemp() / "ui-sandbox"), tmp_path / "sandbox")
    settings = load_settings(environ=env)
    with open_store(settings) as store:  # before the app runs: a clip whose caption and tag are hostile
        hostile_clip = store.query("MATCH (c:CreativeClip) RETURN c.id, c.version ORDER BY c.id DESC LIMIT 1").rows[0]
        Curator(store, "ann").update("CreativeClip", hostile_clip[0], {"caption": HOSTILE, "tags": [HOSTILE]}, expected_version=hostile_clip[1])
    with open_store(settings, read_only=True) as store:
        pair = store.query(
            "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s:SellingPoint), (c:CreativeClip)-[:FEATURES]->(p) "
            "WHERE NOT (c)-[:ILLUSTRATES]->(s) RETURN p.name, s.id, s.text, c.id ORDER BY s.id, c.id LIMIT 1"
        ).rows[0]
    product, point, point_text, clip = pair
    dialogs: list[str] = []
    with served_app(env, tmp_path / "server.log") as url, chromium_page() as page:
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        app = AppPage(page, url)
        try:
            shown = round_trip(app, product, point, clip, tmp_path)
        finally:
            page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
    print(f"screenshots: {tmp_path}")
    assert dialogs == []
    assert shown["product option"].startswith(f"{HOSTILE} [")  # the hostile name reached the page, as a value
    assert shown["clip caption"] == [HOSTILE] and len(shown["clip details"]) == 1 and f"tags: {HOSTILE}" in shown["clip details"][0]
    assert shown["injected"] == [], shown["injected"]
    with open_store(settings, read_only=True) as store:
        link = store.query("MATCH (c:CreativeClip {id: $c})-[r:ILLUSTRATES]->(s:SellingPoint {id: $s}) RETURN r.status, r.annotator", {"c": clip, "s": point}).rows
        events = list_audit(store, entity_id=f"{clip}->{point}").events
        created = store.query("MATCH (p:Product) WHERE p.name = $n RETURN count(p)", {"n": HOSTILE}).rows
    assert link == [["approved", "rev"]]
    assert [(e.actor, e.action) for e in events] == [("rev", "set_status"), ("rev", "link")]
    assert created == [[1]] and point_text
    assert (tmp_path / "audit-after-approval.png").stat().st_size > 10_000


# Elements the hostile text would have made if it were rendered as markup: any script, img or
# element with an event handler attribute in the document (Streamlit's own page has none of these
# holding "alert").
INJECTED = """() => [...document.querySelectorAll('script, img, [onerror], [onload]')]
  .map(e => e.outerHTML || '').filter(html => html.includes('alert'))"""


def round_trip(app: AppPage, product: str, point: str, clip: str, out: Path) -> dict[str, Any]:
    """The user's steps; returns the text of the elements that carry the hostile name and caption, and any injected element."""
    page = app.page
    app.sign_in("rev", USERS["rev"][0])
    app.open("Curate", "Curate the ACKB")
    app.tab("Links")
    app.type_into("Find a product (name, brand or id)", product.split()[0])
    app.choose("Product", product)
    app.choose("Selling point", point)
    app.type_into("Find a clip (id or caption words)", clip)
    app.choose("Clip", clip)
    app.click("Link clip")
    app.shows(f"linked {clip} to {point} as proposed")

    app.open("Review queue", "Review queue")
    app.type_into("Find a product (name, brand or id)", product.split()[0])
    app.choose("Product", product)
    app.choose("Selling point", point)
    page.locator(f".st-key-link_{clip}_{point}_accept button").click()  # Streamlit marks a widget with its key
    app.idle()

    app.open("Audit trail", "Audit trail")
    app.type_into("Record id (a link: clip->selling point)", f"{clip}->{point}")
    app.shows(f"set_status ILLUSTRATES {clip}->{point}")
    page.screenshot(path=str(out / "audit-after-approval.png"), full_page=True)

    app.open("Curate", "Curate the ACKB")
    app.tab("Products")
    page.locator(".st-key-cur_products_mode").get_by_text("Create", exact=True).click()
    app.idle()
    app.visible(page.get_by_label("Name", exact=True)).fill(HOSTILE)
    app.click("Create Product")
    app.open("Browse", "Browse the ACKB")
    app.type_into("Search products (name, brand or id)", "onerror")
    page.get_by_test_id("stDataFrame").first.wait_for()
    chosen = app.visible(page.get_by_role("combobox", name="Show the selling points of"))
    page.wait_for_function("text => [...document.querySelectorAll('input[role=combobox]')].some(e => e.value.startsWith(text))", arg=HOSTILE)
    shown: dict[str, Any] = {"product option": chosen.input_value()}  # the select box shows the hostile name as its value
    page.screenshot(path=str(out / "browse-hostile-name.png"), full_page=True)
    app.tab("Clip library")
    app.type_into("Search captions and ids", "onerror")
    card = page.get_by_test_id("stText").filter(has_text="onerror")
    app.visible(card.first).wait_for()
    shown["clip caption"] = card.all_inner_texts()  # st.text: the caption as plain text
    shown["clip details"] = page.get_by_test_id("stCaptionContainer").filter(has_text="onerror").all_inner_texts()  # escaped markdown
    page.screenshot(path=str(out / "browse-hostile-clip.png"), full_page=True)
    shown["injected"] = page.evaluate(INJECTED)
    return shown


UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PUT_UPLOAD = """async (sid) => {
  const xsrf = (document.cookie.split('; ').find(c => c.startsWith('_streamlit_xsrf=')) || '').slice('_streamlit_xsrf='.length);
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(4096)], {type: 'video/mp4'}), 'x.mp4');
  const answer = await fetch(`/_stcore/upload_file/${sid}/probe-${Date.now()}`, {method: 'PUT', headers: {'X-Xsrftoken': xsrf}, body: form});
  return answer.status;
}"""


def forged_cookie(username: str, key: bytes) -> str:
    """The cookie that signed a user in before: a JWT {username, exp_date} signed HS256 with a key the attacker read."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps({"username": username, "exp_date": time.time() + 3600}).encode())
    return signed + "." + part(hmac.new(key, signed.encode(), hashlib.sha256).digest())


def session_ids(frames: list[bytes | str]) -> list[str]:
    """The ids the server sent over the websocket (a browser session's id is one of them)."""
    found = {m.decode() for frame in frames for m in UUID.findall(frame if isinstance(frame, bytes) else frame.encode())}
    return sorted(found)


def upload_statuses(page: object, frames: list[bytes | str]) -> list[int]:
    """HTTP statuses of one PUT to Streamlit's upload endpoint for each id the session was sent."""
    return [page.evaluate(PUT_UPLOAD, sid) for sid in session_ids(frames)]  # type: ignore[attr-defined]


def live_sessions(db: Path, username: str) -> int:
    """How many server-side sessions `username` has."""
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT count(*) FROM sessions WHERE username = ?", (username,)).fetchone()[0]


def test_served_app_refuses_forged_cookies_anonymous_uploads_and_other_writers(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    env = copied_sandbox(template_dir(tmp_path_factory.getbasetemp() / "ui-sandbox"), tmp_path / "sandbox")
    settings = load_settings(environ=env)
    ui_dir = settings.ui_users_path.parent
    frames: list[bytes | str] = []
    with served_app(env, tmp_path / "server.log") as url, chromium_page() as page:
        full = {**{k: v for k, v in os.environ.items() if k not in ("KDCVG_CONFIG", "NEO4J_URI")}, **env}
        writer = subprocess.run([sys.executable, "-m", "cli.main", "kb", "migrate"], env=full, capture_output=True, text=True, check=False, timeout=300)
        page.on("websocket", lambda socket: socket.on("framereceived", lambda payload: frames.append(payload)))
        page.context.add_cookies([{"name": "kdcvg_ui", "value": forged_cookie("rev", (ui_dir / "session.key").read_bytes()), "url": url}])
        page.goto(url)
        page.get_by_role("button", name="Sign in").wait_for()
        AppPage(page, url).idle()
        forged_shows = page.get_by_text("Signed in as").count() + page.get_by_role("heading", name="Curate the ACKB").count()
        anonymous = upload_statuses(page, frames)

        frames.clear()
        app = AppPage(page, url)
        app.sign_in("ann", USERS["ann"][0])
        curator = upload_statuses(page, frames)
        signed_in_sessions = live_sessions(ui_dir / "sessions.sqlite", "ann")
        app.visible(page.get_by_role("button", name="Sign out")).click()
        page.get_by_role("button", name="Sign in").wait_for()
        after_sign_out = live_sessions(ui_dir / "sessions.sqlite", "ann")
    assert writer.returncode == 2 and "the curation app is running on this store (pid" in writer.stderr, writer.stderr
    assert forged_shows == 0
    assert 403 in anonymous and 204 not in anonymous, anonymous  # the session exists, its upload is refused
    assert 204 in curator, curator  # the same request from a signed-in curator's session is kept
    assert (signed_in_sessions, after_sign_out) == (1, 0)
