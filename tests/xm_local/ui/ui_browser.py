"""The dashboard served from a thread of this process, and Debian's chromium for Playwright (never
``playwright install``): shared by the browser tests, bench/ui_pages.py and bench/ui_screenshots.py."""

from __future__ import annotations

import os
import sys
import threading
from typing import Optional

from chromium import CHROMIUM, CHROMIUM_ARGS, chromium_path  # noqa: F401 - re-exported (tests, benches)
from xmanager.xm_local.store import Store
from xmanager.xm_local.ui import build_app
from xmanager.xm_local.web.runner import WebServer

LAUNCHER = """
import sys
from xmanager import xm, xm_local

def main():
    title = sys.argv[3] if len(sys.argv) > 3 else "live"
    with xm_local.create_experiment(experiment_title=title, tags=["live"]) as experiment:
        [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=sys.argv[1])])
        for lr in (0.1, 0.01)[: int(sys.argv[4]) if len(sys.argv) > 4 else 1]:
            experiment.add(xm.Job(executable=executable, executor=xm_local.Local(),
                                  args={"steps": int(sys.argv[2]), "lr": lr}))

main()
"""

#: A job that prints a line to stdout and stderr and reports two metrics each step (0.2 s apart), then a result.
JOB = """
import math, sys, time
from xmanager import xm
flags = dict(arg.lstrip("-").split("=") for arg in sys.argv[1:])
steps, lr = int(flags["steps"]), float(flags["lr"])
for step in range(steps):
    loss = math.exp(-lr * 10 * step / max(1, steps) * 5) + 0.05 * math.sin(step)
    print(f"line {step}: loss={loss:.4f}", flush=True)
    print(f"warning {step}", file=sys.stderr, flush=True)
    xm.report(step=step, loss=loss, accuracy=1 - loss / 2)
    time.sleep(0.2)
xm.report(loss=loss, accuracy=1 - loss / 2)
"""


def write_job(folder: str) -> tuple[str, str]:
    """``(launcher, job)`` script paths written in ``folder``."""
    launcher, job = os.path.join(folder, "launcher.py"), os.path.join(folder, "job.py")
    with open(launcher, "w") as handle:
        handle.write(LAUNCHER)
    with open(job, "w") as handle:
        handle.write(f"#!{sys.executable}\n{JOB}")
    os.chmod(job, 0o755)
    return launcher, job


class ServedDashboard:
    """The dashboard on ``url``'s store, served by uvicorn on a free port from a thread; ``base`` is its URL."""

    def __init__(self, url: str, host: str = "127.0.0.1", token: Optional[str] = None) -> None:
        from xmanager.xm_local.ui import charts

        charts.warm_up()  # As serve() does while the server starts.
        self.store = Store(url)
        self._listening = threading.Event()
        self.web = WebServer(build_app(self.store, token=token), host, 0, on_listening=lambda urls: self._listening.set())
        self._thread = threading.Thread(target=self.web.run, name="xm-ui-test-server", daemon=True)
        self._thread.start()
        if not self._listening.wait(15):
            raise RuntimeError("the dashboard did not start")
        port = int(self.web.urls[0].rstrip("/").rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.web.stop()
        self._thread.join(15)
        self.store.close()
