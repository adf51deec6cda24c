"""The dashboard's pages in Debian's headless chromium on a store of 100,000 experiments and a 100,000-unit one.

    python bench/ui_pages.py [--experiments N] [--units N] [--repeat 3] [--quick] [--keep]

Each page is timed from navigation until its first page of rows (or the unit's facts) is in the page, best
and median of ``--repeat`` loads (the charts, drawn after that with plotly.js loaded then, are reported
without a target: WebGL without a GPU is slow); the JSON requests behind them are timed on their own (median of 5). The
store is written through the store's API (``create_experiment``, ``insert_finished_units``) in a scratch
folder; the server is ``xmanager ui``'s app on uvicorn in this process. ``--quick``: 10,000 experiments.
Target: every page < 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request

from _common import scratch_dir, table

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "xm_local", "ui"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

import ui_browser  # noqa: E402
import ui_data  # noqa: E402

TARGET_S = 1.0


def _build(url: str, experiments: int, units: int) -> tuple[int, int]:
    from xmanager.xm_local.store import Store

    store = Store(url)
    started = time.perf_counter()
    ui_data.listed_experiments(store, experiments - 1)
    big = ui_data.big_experiment(store, units)
    store.close()
    print(f"store: {experiments:,} experiments and a {units:,}-unit one written in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return big, 77_777 if units >= 77_777 else units // 2


def _timed_loads(page, url: str, ready: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        page.goto("about:blank")
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector(ready, timeout=30000)
        times.append(time.perf_counter() - started)
        page.wait_for_load_state("networkidle")  # The page's other requests (charts) end before the next load.
    return times


def _timed_get(url: str, count: int = 5) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as answer:
            answer.read()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.experiments = min(args.experiments, 10_000)
    from playwright.sync_api import sync_playwright

    executable = ui_browser.chromium_path()
    if not executable:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    with scratch_dir("xm-bench-ui-", args.keep, use_as_store=True):
        url = os.environ["XM_DATABASE_URL"]
        experiment_id, unit_id = _build(url, args.experiments, args.units)
        served = ui_browser.ServedDashboard(url)
        base = served.base
        deep = max(1, args.experiments // 100)  # A page halfway down the list.
        pages = [
            ("experiments, page 1", "/", "#experiments-table tbody tr:nth-child(50)"),
            (f"experiments, page {deep:,}", f"/?page={deep}", "#experiments-table tbody tr:nth-child(50)"),
            ("experiments, title search", "/?title=run+4242", "#experiments-table tbody tr"),
            ("experiment, first 50 units", f"/experiments/{experiment_id}", "#units-table tbody tr:nth-child(50)"),
            ("experiment, sorted by args.lr", f"/experiments/{experiment_id}?sort=args.lr&order=desc",
             "#units-table tbody tr:nth-child(50)"),
            ("experiment, failed and batch=64", f"/experiments/{experiment_id}?status=failed&where=batch%3D64",
             "#units-table tbody tr:nth-child(50)"),
            ("experiment, charts drawn", f"/experiments/{experiment_id}", "#parcoords .main-svg"),
            ("unit", f"/experiments/{experiment_id}/units/{unit_id}", "#unit-status"),
        ]
        apis = [
            ("GET /api/experiments", "/api/experiments"),
            (f"GET /api/experiments?page={deep}", f"/api/experiments?page={deep}"),
            ("GET .../units (page 1)", f"/api/experiments/{experiment_id}/units"),
            ("GET .../units?sort=args.lr", f"/api/experiments/{experiment_id}/units?sort=args.lr&order=desc"),
            ("GET .../units?q=node3", f"/api/experiments/{experiment_id}/units?q=node3"),
            ("GET .../charts", f"/api/experiments/{experiment_id}/charts"),
            ("GET .../units/N", f"/api/experiments/{experiment_id}/units/{unit_id}"),
            ("GET .../units/N/metrics (first)", f"/api/experiments/{experiment_id}/units/{unit_id}/metrics"),
        ]
        rows = []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, args=ui_browser.CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                _timed_loads(page, base + "/", "#experiments-table", 1)  # Warm: plotly.js and the store's pages.
                for name, path, ready in pages:
                    times = _timed_loads(page, base + path, ready, args.repeat)
                    best, median = min(times), statistics.median(times)
                    if name.endswith("charts drawn"):  # Drawn after the page is usable; reported, no target.
                        rows.append([f"page: {name}", f"{best * 1000:.0f}", f"{median * 1000:.0f}", "", ""])
                        continue
                    rows.append([f"page: {name}", f"{best * 1000:.0f}", f"{median * 1000:.0f}",
                                 f"< {TARGET_S * 1000:.0f}", "PASS" if median < TARGET_S else "FAIL"])
                browser.close()
            for name, path in apis:
                times = _timed_get(base + path, 1 if "first" in name else 5)
                rows.append([name, f"{min(times) * 1000:.0f}", f"{statistics.median(times) * 1000:.0f}", "", ""])
        finally:
            served.close()
    print(f"{args.experiments:,} experiments; one of {args.units:,} units (SQLite)")
    print(table(["what", "best ms", "median ms", "target ms", ""], rows))


if __name__ == "__main__":
    main()
