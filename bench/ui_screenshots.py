"""Screenshots of the dashboard's three pages for the docs (docs/images/ui_*.png), taken in Debian's chromium.

    python bench/ui_screenshots.py [--out docs/images] [--keep]

Builds a scratch store: a few experiments, a finished 2,000-unit sweep (written through the store's API) and a
real two-unit local experiment whose jobs print lines and report metrics over 30 steps (``xm.report(step=...)``),
then serves ``xmanager ui``'s app and captures the experiments page, the sweep's page with its charts, and a unit
of the real experiment with its logs and metric plots.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from _common import scratch_dir

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "xm_local", "ui"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

import ui_browser  # noqa: E402
import ui_data  # noqa: E402


def _store(url: str, folder: str) -> tuple[int, int]:
    from xmanager.xm_local.store import Store
    from xmanager.xm_local.store.pages import experiment_page

    store = Store(url)
    for title, tags in (("resnet50 baseline", ["baseline"]), ("vit-small warmup study", ["vit", "warmup"]),
                        ("data loader throughput", ["infra"])):
        store.create_experiment(title, tags, "", "alice", None, [])
    sweep = ui_data.big_experiment(store, 2000, title="lr x batch sweep", seed=3)
    store.close()
    launcher, job = ui_browser.write_job(folder)
    subprocess.run([sys.executable, launcher, job, "30", "cifar10 live run", "2"], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, XM_DATABASE_URL=url))
    store = Store(url)
    live = experiment_page(store, title="cifar10 live run").rows[0].experiment_id
    store.close()
    return sweep, live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "images"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    executable = ui_browser.chromium_path()
    if not executable:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    os.makedirs(args.out, exist_ok=True)
    with scratch_dir("xm-ui-shots-", args.keep, use_as_store=True) as folder:
        url = os.environ["XM_DATABASE_URL"]
        sweep, live = _store(url, folder)
        served = ui_browser.ServedDashboard(url)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, args=ui_browser.CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                shots = [
                    ("ui_experiments.png", "/", "#experiments-table tbody tr", False),
                    ("ui_experiment.png", f"/experiments/{sweep}?sort=results.loss", "#parcoords .main-svg", True),
                    ("ui_unit.png", f"/experiments/{live}/units/1", "#metrics .main-svg", True),
                ]
                for name, path, ready, full in shots:
                    page.goto(served.base + path)
                    page.wait_for_selector(ready, timeout=30000)
                    page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(1000)  # plotly's transitions.
                    target = os.path.join(args.out, name)
                    page.screenshot(path=target, full_page=full)
                    print(f"wrote {os.path.relpath(target)}")
                browser.close()
        finally:
            served.close()


if __name__ == "__main__":
    main()
