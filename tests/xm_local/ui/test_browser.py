"""The dashboard in Debian's headless chromium through Playwright: every page with a 100,000-unit experiment,
filters and sorting, a running unit's log and metrics following live, cancel and its token.

Needs the ``playwright`` package (the test extra) and ``/usr/bin/chromium``; Playwright's own browser download
is never used. Page-load times are measured by bench/ui_pages.py, not asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import ui_browser
import ui_data
from xmanager.xm_local.store import Store

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (test extra)")
expect = sync_api.expect

TIMEOUT_MS = 5000
TOKEN = "t0ken-for-the-dashboard"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = ui_browser.chromium_path()
    if not executable:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ui_browser.CHROMIUM_ARGS, headless=True,
                                     timeout=15000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def served(big_store):
    dashboard = ui_browser.ServedDashboard(big_store[0])
    yield dashboard
    dashboard.close()


class _Tab:
    """A browser tab that records JavaScript errors and answers dialogs (confirm: yes; prompt: the next of
    ``answers``)."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.answers: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        if dialog.type == "prompt":
            dialog.accept(self.answers.pop(0))
        else:
            dialog.accept()

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


@pytest.fixture
def tab(browser):
    opened = _Tab(browser)
    yield opened
    opened.close()


def _texts(locator) -> list[str]:
    return [text.strip() for text in locator.all_inner_texts()]


def test_experiments_page_filters_and_pages(tab, served):
    page = tab.page
    page.goto(served.base + "/")
    rows = page.locator("#experiments-table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first.locator("td").nth(1)).to_have_text("cluster runs")  # Newest first.
    expect(page.locator("#page-info")).to_have_text("page 1 of 3 · 122 experiments")
    page.locator("#next").click()
    expect(rows.first.locator("td").nth(1)).to_have_text("run 71")
    page.locator("#filter-title").fill("run 11")
    page.locator("#apply").click()
    expect(rows).to_have_count(11)
    assert "title=run+11" in page.url
    page.locator("#filter-title").fill("")
    page.locator("#filter-status").select_option("failed")
    page.locator("#apply").click()
    expect(rows).to_have_count(2)
    assert sorted(_texts(page.locator("#experiments-table tbody tr td:nth-child(2)"))) == ["big sweep", "cluster runs"]


def test_experiment_page_of_100000_units_sorts_filters_and_draws(tab, served, big_store):
    _, experiment_id, _ = big_store
    page = tab.page
    page.goto(f"{served.base}/experiments/{experiment_id}")
    rows = page.locator("#units-table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_attribute("data-unit", "1")
    expect(page.locator("#page-info")).to_have_text("page 1 of 2,000 · 100,000 work units")
    lr = page.locator('#units-table tbody td[data-key="args.lr"]')
    page.locator('th[data-sort="args.lr"]').click()  # Numbers sort largest first on the first click.
    expect(page.locator('th[data-sort="args.lr"]')).to_have_class("sortable sorted-desc")
    values = [float(text) for text in _texts(lr)]
    assert values == sorted(values, reverse=True) and values[0] > 0.099
    page.locator('th[data-sort="args.lr"]').click()
    expect(page.locator('th[data-sort="args.lr"]')).to_have_class("sortable sorted-asc")
    values = [float(text) for text in _texts(lr)]
    assert values == sorted(values) and values[0] < 0.00011
    page.locator("#filter-status").select_option("failed")
    page.locator("#filter-where").fill("batch=64")
    page.locator("#apply").click()
    expected = sum(1 for i in range(100_000) if i % 10 == 9 and ui_data.BATCHES[i % 3] == 64)  # As ui_data made them.
    expect(page.locator("#page-info")).to_contain_text(f"{expected:,} work units")
    assert set(_texts(rows.locator(".status"))) == {"failed"}
    assert set(_texts(page.locator('#units-table tbody td[data-key="args.batch"]'))) == {"64"}
    # Both charts are drawn by plotly (SVG roots inside their boxes).
    expect(page.locator("#scatter .main-svg").first).to_be_visible(timeout=15000)
    expect(page.locator("#parcoords .main-svg").first).to_be_visible(timeout=15000)
    page.locator("#chart-metric").select_option("acc")
    expect(page.locator("#scatter .gtitle")).to_contain_text("acc against lr", timeout=15000)
    rows.first.locator("a").first.click()
    expect(page).to_have_url(f"{served.base}/experiments/{experiment_id}/units/{_first_unit(page)}")


def _first_unit(page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[1]


def test_unit_page_of_a_100000_unit_experiment(tab, served, big_store):
    _, experiment_id, cluster_id = big_store
    page = tab.page
    page.goto(f"{served.base}/experiments/{experiment_id}/units/99999")
    expect(page.locator("#unit-status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#unit-args")).to_contain_text("lr")
    page.goto(f"{served.base}/experiments/{cluster_id}/units/2")
    expect(page.locator("#jobs-table .console-link")).to_have_attribute(
        "href", "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/77?project=p")
    page.goto(f"{served.base}/experiments/{cluster_id}/units/1")
    expect(page.locator("#jobs-table .executor-where")).to_have_text("Slurm job 4242_3")


def _launch(tmp_path, url: str, steps: int) -> subprocess.Popen:
    launcher, job = ui_browser.write_job(str(tmp_path))
    env = dict(os.environ, XM_DATABASE_URL=url)
    return subprocess.Popen([sys.executable, launcher, job, str(steps)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _running_experiment(store: Store, timeout: float = 20.0) -> int:
    from xmanager.xm_local.store.pages import experiment_page

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = experiment_page(store, status="running").rows
        if rows:
            return rows[0].experiment_id
        time.sleep(0.1)
    raise AssertionError("no unit started running")


@pytest.fixture
def live(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    Store(url).close()
    return url


def test_a_running_units_log_and_metrics_update_live(tab, tmp_path, live):
    dashboard = ui_browser.ServedDashboard(live)
    launcher = _launch(tmp_path, live, steps=60)  # 12 s: a line to stdout and stderr and 2 metrics per step.
    try:
        experiment_id = _running_experiment(dashboard.store)
        page = tab.page
        page.goto(f"{dashboard.base}/experiments/{experiment_id}/units/1")
        expect(page.locator("#unit-status")).to_have_attribute("data-status", "running")
        page.evaluate("window.__same_page = true")
        log = page.locator("#log-stdout")
        expect(log).to_contain_text("line 2:", timeout=10000)
        # The metrics plot is drawn while the unit runs, and its points grow.
        metrics = page.locator("#metrics")
        expect(metrics.locator(".main-svg").first).to_be_visible(timeout=10000)
        first = int(metrics.get_attribute("data-points") or 0)
        assert 0 < first < 120
        page.wait_for_function(f"Number(document.getElementById('metrics').dataset.points) >= {first + 4}",
                               timeout=15000)
        expect(log).to_contain_text("line 30:", timeout=15000)
        expect(page.locator("#log-stderr")).to_contain_text("warning 30")
        expect(page.locator("#unit-status")).to_have_attribute("data-status", "completed", timeout=20000)
        expect(log).to_contain_text("line 59:")
        page.wait_for_function("Number(document.getElementById('metrics').dataset.points) === 120", timeout=10000)
        assert page.evaluate("window.__same_page") is True  # No reload happened.
        assert launcher.wait(20) == 0
    finally:
        launcher.kill()
        launcher.wait()
        dashboard.close()


def test_cancel_beyond_loopback_needs_the_token(tab, tmp_path, live):
    dashboard = ui_browser.ServedDashboard(live, host="0.0.0.0", token=TOKEN)
    launcher = _launch(tmp_path, live, steps=500)
    try:
        experiment_id = _running_experiment(dashboard.store)
        page = tab.page
        page.goto(f"{dashboard.base}/experiments/{experiment_id}/units/1")
        expect(page.locator("#unit-status")).to_have_attribute("data-status", "running")
        tab.answers = ["not-the-token"]
        page.locator("#cancel").click()
        expect(page.locator("#notice")).to_contain_text("not cancelled: cancelling needs the dashboard's access token")
        time.sleep(1)
        expect(page.locator("#unit-status")).to_have_attribute("data-status", "running")
        tab.answers = [TOKEN]  # The wrong token was forgotten: asked again.
        page.locator("#cancel").click()
        expect(page.locator("#notice")).to_have_text("cancelled 1 work unit(s)")
        expect(page.locator("#unit-status")).to_have_attribute("data-status", "cancelled")
        assert launcher.wait(30) is not None
    finally:
        launcher.kill()
        launcher.wait()
        dashboard.close()
