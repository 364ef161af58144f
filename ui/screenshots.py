"""Screenshots of every page of the curation app for docs/screenshots/, taken in a real browser on a sandbox.

    python -m ui.screenshots                 # builds a sandbox in a temporary directory
    python -m ui.screenshots --sandbox DIR   # or uses one built with `python -m ui.sandbox DIR`

Each page is shown as a user would leave it after doing its job (a product chosen, SAR asked,
a video generated, a query run), so the pictures show the app working, not empty forms.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ui.browser import AppPage, chromium_page, served_app
from ui.sandbox import PRODUCTS, USERS, build_sandbox, sandbox_env

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PRODUCT = "AirBeat"
VIEWPORT = {"width": 1400, "height": 1500}


def pick_point(app: AppPage, point_index: int = 0) -> None:
    """Find the demo product by name and choose one of its selling points."""
    app.type_into("Find a product (name, brand or id)", PRODUCT)
    app.visible(app.page.get_by_label("Selling point", exact=True)).click()
    app.page.get_by_role("option").nth(point_index).click()
    app.idle()


def take(app: AppPage, out: Path, name: str) -> None:
    """Save the viewport as out/name.png (after the page settled)."""
    app.idle()
    app.page.wait_for_timeout(1500)  # videos load their first frame
    app.page.screenshot(path=str(out / f"{name}.png"))
    print(f"wrote {out / name}.png")


def screenshots(env: dict[str, str], out: Path, log: Path) -> None:
    """Serve the app on the sandbox `env` and capture each page into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with served_app(env, log) as url, chromium_page(**VIEWPORT) as page:
        app = AppPage(page, url)
        page.goto(url)
        page.get_by_role("button", name="Sign in").wait_for()
        take(app, out, "01-sign-in")
        app.sign_in("rev", USERS["rev"][0])
        app.tab("Clip library")
        take(app, out, "02-browse-clips")
        app.open("Curate", "Curate the ACKB")
        app.tab("Links")
        pick_point(app)
        take(app, out, "03-curate-links")
        app.open("Review queue", "Review queue")
        pick_point(app, 1)
        page.get_by_text("Ask SAR for more proposals").click()
        app.click("Ask SAR")
        app.shows("new proposals")
        take(app, out, "04-review-queue")
        page.keyboard.press("a")  # accept the first proposal, as a reviewer does from the keyboard
        app.idle()
        app.open("Generate", "Generate a video")
        pick_point(app)
        app.click("Generate")
        app.shows("generated gv-")
        take(app, out, "05-generate")
        app.open("Audit trail", "Audit trail")
        app.choose("Action", "set_status")
        page.get_by_test_id("stExpander").first.click()  # before/after of the judgement
        take(app, out, "06-audit-trail")
        app = AppPage(page.context.browser.new_page(viewport=VIEWPORT), url)  # a new browser session
        app.sign_in("ana", USERS["ana"][0])
        app.open("Cypher console", "Cypher console")
        app.click("Run query")
        try:
            app.shows("Graph view")
        finally:
            take(app, out, "07-cypher-console")


def main() -> None:
    """Build or reuse a sandbox, then write the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", type=Path, help="an existing sandbox root (python -m ui.sandbox DIR)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.sandbox.resolve() if args.sandbox else Path(scratch) / "sandbox"
        env = sandbox_env(root) if args.sandbox else build_sandbox(root, products=PRODUCTS)
        screenshots(env, args.out, Path(scratch) / "server.log")


if __name__ == "__main__":
    main()
