"""The study server's web UI end to end: a real server, Debian's headless Chromium driven by Playwright.

Needs the ``playwright`` Python package (the ``test`` extra) and ``/usr/bin/chromium`` (Debian's
``chromium``, installed by ``setup_scripts/test.sh``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import studyserver_support
from chromium import CHROMIUM, CHROMIUM_ARGS, chromium_path
from xmanager.xm_local.studyserver import Client

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (test extra)")
expect = sync_api.expect

TIMEOUT_MS = 5000
TOKEN = "t0ken-for-the-ui"
STATE_CHANGES = ("move-to-next", "move-to-block", "move-all-to-block", "reset-participant", "new-participant")

STUDY = """\
[configuration]
order = [["a", "b"]]
init_blocks = ["intro"]
final_blocks = ["outro"]
random_seed = 3

[[blocks]]
name = "intro"
config = { text = "welcome <b>&amp;</b>" }

[[blocks]]
name = "a"
config = { hand = "left", speed = 1.5 }

[[blocks]]
name = "b"
config = { hand = "right", speed = 2.5 }

[[blocks]]
name = "outro"
config = { text = "bye" }
"""


def _chromium() -> str:
    path = chromium_path()
    if not path:
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM} not found; apt-get install chromium)")
    return path


class _Server:
    def __init__(self, config, token: str | None = None) -> None:
        self.token = token
        self.proc, self.port = studyserver_support.start(config, token=token)
        self.url = f"http://127.0.0.1:{self.port}/"

    def client(self, **kwargs) -> Client:
        return Client("127.0.0.1", self.port, **kwargs)

    def stop(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.join(5)
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.join(5)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = _chromium()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True, timeout=15000)
        try:
            yield browser
        finally:
            browser.close()


class _Page:
    """A browser tab on the UI that records every request it makes and every JavaScript error."""

    def __init__(self, browser, server: _Server) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests: list[tuple[str, str, str | None]] = []
        self.errors: list[str] = []
        self.page.on("request", self._record)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.page.on("dialog", lambda dialog: dialog.accept())
        self.server = server

    def _console(self, message) -> None:
        # Failed API calls (expected in the tests) are logged by Chromium too; _response checks the rest.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _response(self, response) -> None:
        if not urlsplit(response.url).path.startswith("/api/") and response.status != 200:
            self.errors.append(f"{response.status} for {response.url}")

    def _record(self, request) -> None:
        self.requests.append((request.method, request.url, request.headers.get("authorization")))

    def row(self, pid: int):
        return self.page.locator(f'#participants tbody tr[data-pid="{pid}"]')

    def cell(self, pid: int, column: str):
        return self.row(pid).locator(f'td[data-col="{column}"]')

    def click(self, button_id: str) -> None:
        self.page.locator(f"#{button_id}").click()

    def check_requests(self) -> None:
        """Same origin only, no state change through GET, and no JavaScript errors."""
        origin = urlsplit(self.server.url)
        assert self.requests
        for method, url, _ in self.requests:
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
            if any(parts.path.startswith(f"/api/{action}") for action in STATE_CHANGES + ("add-participant",)):
                assert method in ("POST", "PUT"), (method, url)
        assert self.errors == []

    def close(self) -> None:
        self.context.close()


def test_manage_participants_in_the_browser(browser, config):
    server = _Server(config)
    ui = None
    try:
        client = server.client()
        ui = _Page(browser, server)
        page = ui.page
        page.goto(server.url)
        expect(page).to_have_title("Study server")
        expect(page.locator("#auth")).to_be_hidden()  # No token on this server.
        # The default participant is listed.
        expect(ui.row(1)).to_be_visible()
        expect(ui.cell(1, "block-id")).to_have_text("-1")
        expect(ui.cell(1, "block-name")).to_have_text("START")
        expect(ui.cell(1, "active")).to_have_text("no")
        expect(ui.cell(1, "blocks-count")).to_have_text("4")

        # New participant: listed, then chosen by clicking its row.
        ui.click("new-participant")
        expect(ui.row(2)).to_be_visible()
        expect(page.locator("#message")).to_have_text("participant 2 created")
        ui.row(1).click()
        expect(page.locator("#pid")).to_have_value("1")
        ui.row(2).click()
        expect(page.locator("#pid")).to_have_value("2")
        expect(ui.row(2)).to_have_class("selected")

        # Move to next: block 0, its name shown, participant active.
        ui.click("move-to-next")
        expect(ui.cell(2, "block-id")).to_have_text("0")
        expect(ui.cell(2, "block-name")).to_have_text("intro")
        expect(ui.cell(2, "active")).to_have_text("yes")
        expect(ui.cell(1, "block-id")).to_have_text("-1")  # The other participant did not move.
        assert client.get_block_id(2) == (True, 0) and client.get_block_id(1) == (True, -1)

        # Move to block 2.
        page.locator("#block-id").fill("2")
        ui.click("move-to-block")
        expect(ui.cell(2, "block-id")).to_have_text("2")
        ok, expected = client.get_config(2)
        assert ok and expected["block_id"] == 2 and expected["name"] in ("a", "b")
        expect(ui.cell(2, "block-name")).to_have_text(expected["name"])

        # View config: the current block's config, as the API gives it.
        ui.click("view-config")
        expect(page.locator("#config-title")).to_have_text("participant 2")
        expect(page.locator("#config")).to_contain_text(f'"name": "{expected["name"]}"')
        assert json.loads(page.locator("#config").text_content()) == expected

        # Errors are shown, state is unchanged.
        page.locator("#block-id").fill("9")
        ui.click("move-to-block")
        expect(page.locator("#message")).to_contain_text("param should be >= 0 and < 4")
        expect(page.locator("#message")).to_have_class("error")
        assert client.get_block_id(2) == (True, 2)

        # Add participant 5, move everybody to block 1, then reset participant 2.
        page.locator("#add-pid").fill("5")
        ui.click("add-participant")
        expect(ui.row(5)).to_be_visible()
        expect(page.locator("#pid")).to_have_value("5")
        page.locator("#block-id").fill("1")
        ui.click("move-all-to-block")
        for pid in (1, 2, 5):
            expect(ui.cell(pid, "block-id")).to_have_text("1")
        ui.row(2).click()
        ui.click("reset-participant")
        expect(ui.cell(2, "block-id")).to_have_text("-1")
        expect(ui.cell(2, "block-name")).to_have_text("START")
        ok, rows = client.get_participants()
        assert ok and [(r["participant_index"], r["block_id"]) for r in rows] == [(1, 1), (2, -1), (5, 1)]

        # A change made through the API shows up through polling, without any click.
        assert client.move_to_next(5) == (True, {"name": client.get_all_configs(5)[1][2]["name"]})
        expect(ui.cell(5, "block-id")).to_have_text("2", timeout=TIMEOUT_MS)

        # The config text (with markup characters) is shown as text, never as HTML.
        ui.row(1).click()
        page.locator("#block-id").fill("0")
        ui.click("move-to-block")
        ui.click("view-config")
        expect(page.locator("#config")).to_contain_text("welcome <b>&amp;</b>")
        assert page.locator("#config b").count() == 0
        ui.check_requests()
        assert any(method == "GET" and url.endswith("/api/participants") for method, url, _ in ui.requests)
    finally:
        if ui is not None:
            ui.close()
        server.stop()


def test_access_token_from_the_password_field(browser, config):
    server = _Server(config, token=TOKEN)
    ui = None
    try:
        ui = _Page(browser, server)
        page = ui.page
        page.goto(server.url)
        expect(page.locator("#auth")).to_be_visible()
        expect(page.locator("#token")).to_have_attribute("type", "password")
        expect(ui.row(1)).to_be_visible()  # Reading needs no token.
        # Without the token a change is refused, and the page says why.
        ui.click("move-to-next")
        expect(page.locator("#message")).to_contain_text("unauthorized")
        assert server.client().get_block_id(1) == (True, -1)
        # With it (kept in sessionStorage, also after a reload), changes go through.
        page.locator("#token").fill(TOKEN)
        ui.click("save-token")
        expect(page.locator("#token-state")).to_have_text("token set")
        assert page.evaluate("Object.values(sessionStorage)") == [TOKEN]
        page.reload()
        expect(ui.row(1)).to_be_visible()
        ui.click("move-to-next")
        expect(ui.cell(1, "block-name")).to_have_text("intro")
        ui.click("new-participant")
        expect(ui.row(2)).to_be_visible()
        client = server.client()
        assert client.get_block_id(1) == (True, 0) and client.get_block_id(2) == (True, -1)
        changes = [(m, auth) for m, url, auth in ui.requests if m in ("POST", "PUT")]
        assert changes == [("POST", None), ("POST", f"Bearer {TOKEN}"), ("PUT", f"Bearer {TOKEN}")]
        # Forgetting the token: refused again.
        ui.click("clear-token")
        ui.click("move-to-next")
        expect(page.locator("#message")).to_contain_text("unauthorized")
        assert client.get_block_id(1) == (True, 0)
        assert TOKEN not in page.content()
        ui.check_requests()
    finally:
        if ui is not None:
            ui.close()
        server.stop()
