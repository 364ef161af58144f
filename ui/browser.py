"""Driving the real app in a real browser: a served app on a free port, and Streamlit-aware page helpers.

Used by the end-to-end tests (tests/e2e/) and by `python -m ui.screenshots`. Chromium is Debian's
(/usr/bin/chromium) driven by Playwright for Python; `playwright install` is never needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 60_000
IDLE_SCRIPT = "() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served_app(env: dict[str, str], log: Path) -> Iterator[str]:
    """`kdcvg ui` on a free port with `env` (a sandbox's variables); yields its URL, stops it afterwards."""
    port = free_port()
    full = {**{k: v for k, v in os.environ.items() if k != "KDCVG_CONFIG"}, **env}
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "ui", "--port", str(port)], env=full, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer within 90 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and nothing else
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


class AppPage:
    """A signed-in browser session of the app, with the moves a user makes (by visible labels)."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url

    def sign_in(self, username: str, password: str) -> None:
        """Open the app and sign in through its form."""
        self.page.goto(self.url)
        self.page.get_by_label("Username", exact=True).fill(username)
        self.page.get_by_label("Password", exact=True).fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_text("Signed in as").wait_for()
        self.idle()

    def idle(self) -> None:
        """Wait until the script runs the last action started have finished (Streamlit marks its state on stApp)."""
        for _ in range(2):  # twice: a run may request another (st.rerun) right as the first ends
            self.page.wait_for_timeout(250)
            self.page.wait_for_function(IDLE_SCRIPT)

    def open(self, title: str, heading: str) -> None:
        """Go to a page through the sidebar navigation and wait for its heading."""
        self.page.get_by_role("link", name=title).click()
        self.page.get_by_role("heading", name=heading).wait_for()
        self.idle()

    def visible(self, locator: Any) -> Any:
        """The visible match of a locator (inactive tabs hold hidden twins)."""
        return locator.filter(visible=True).first

    def tab(self, name: str) -> None:
        """Show a tab."""
        self.visible(self.page.get_by_role("tab", name=name)).click()
        self.idle()

    def type_into(self, label: str, text: str) -> None:
        """Fill a visible text input and commit it (Enter), as a user does."""
        field = self.visible(self.page.get_by_label(label, exact=True))
        field.fill(text)
        field.press("Enter")
        self.idle()

    def choose(self, label: str, option: str) -> None:
        """Pick the option whose text contains `option` in a visible select box."""
        self.visible(self.page.get_by_label(label, exact=True)).click()
        self.page.get_by_role("option").filter(has_text=option).first.click()
        self.idle()

    def click(self, name: str) -> None:
        """Press a visible button by its label."""
        self.visible(self.page.get_by_role("button", name=name)).click()
        self.idle()

    def shows(self, text: str) -> None:
        """Wait until `text` is visible on the page."""
        self.visible(self.page.get_by_text(text)).wait_for()
