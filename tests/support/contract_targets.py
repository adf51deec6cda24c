"""The executors the contract suite (``tests/executors/contract/``) runs against, and their test services.

Every target runs the same *contract job* through a launch script of its own: a job with
``value`` and ``wait`` args that, when ``wait`` is 1, signals that it started
(``<signals>/<value>.started``, holding the job's PID where it is a process of this machine),
waits for ``<signals>/release``, then marks that it ran to its end (``<value>.finished``) and
reports ``{"value": value}``. Where no real process runs the job (the Kubernetes API server and
the Vertex AI JobService are local stand-ins), a :class:`Driver` thread in the test process plays
the cluster: it starts the Jobs the launcher created, and finishes them as the job would.

A new executor joins the suite with one :class:`Target` in :func:`make`: its launch-script lines
(``SPEC`` and ``EXECUTOR``), the environment its processes need, and what it promises.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

import attrs

NAMES = ("local", "slurm", "kubernetes", "vertex", "vector_engine", "in_process")
KUBERNETES_IMAGE = "registry.example/xm/contract:1"
VERTEX_IMAGE = "us-docker.pkg.dev/xm-test/repo/contract:1"

#: The contract job as a program (local, Slurm): argv is --value=N --wait=0|1 --signals=DIR.
JOB_PROGRAM = """\
import os, sys, time
from xmanager import xm

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
value, signals = int(args["value"]), args["signals"]
if args["wait"] == "1":
    with open(f"{signals}/{value}.started", "w") as file:
        file.write(str(os.getpid()))
    while not os.path.exists(f"{signals}/release"):
        time.sleep(0.02)
    open(f"{signals}/{value}.finished", "w").close()
xm.report(value=value)
"""

#: The contract job as a Python function (InProcess): the same steps, its results returned.
JOB_FUNCTION = '''
def contract_job(value, wait, signals):
    import os, time
    if wait:
        with open(f"{signals}/{value}.started", "w") as file:
            file.write("in-process")
        while not os.path.exists(f"{signals}/release"):
            time.sleep(0.02)
        open(f"{signals}/{value}.finished", "w").close()
    return {"value": value}
'''

#: The contract job as a VE kernel (VectorEngine, host backend): the value is its return value.
JOB_KERNEL = r"""
#include <stdio.h>
#include <unistd.h>

static void signal_file(const char *name, int value) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%d.%s", SIGNALS, value, name);
    FILE *file = fopen(path, "w");
    if (file) fclose(file);
}

int contract_job(int value, int wait) {
    if (wait) {
        signal_file("started", value);
        char release[4096];
        snprintf(release, sizeof release, "%s/release", SIGNALS);
        while (access(release, F_OK) != 0) usleep(20000);
        signal_file("finished", value);
    }
    return value;
}
"""

LAUNCHER = """\
import json, os
from xmanager import xm, xm_local
{definitions}

def main(argv):
    del argv
    with xm_local.create_experiment("contract") as experiment:
        print("EXPERIMENT", experiment.experiment_id, flush=True)
        [executable] = experiment.package([SPEC])
        experiment.add_sweep(xm.Job(executable, EXECUTOR), json.loads(os.environ["CONTRACT_PSETS"]))
"""


@attrs.define
class Target:
    """One executor under the contract: how a launch script uses it, and what it promises.

    ``stops_running_jobs``: ``xmanager cancel`` in another process stops a job that is running
    (else the job runs to its end and only its record says cancelled); ``returns_results``: what a
    job reports comes back as the unit's results.
    """

    name: str
    definitions: str
    env: dict[str, str]
    signals: str
    psets_take_signals: bool = True
    stops_running_jobs: bool = True
    returns_results: bool = True
    results_key: str = "value"
    driver: Optional[Driver] = None

    def launcher(self) -> str:
        return LAUNCHER.format(definitions=self.definitions)

    def psets(self, values: list[int], wait: bool) -> list[dict[str, Any]]:
        extra = {"signals": self.signals} if self.psets_take_signals else {}
        return [{"value": value, "wait": int(wait), **extra} for value in values]

    def expected_results(self, value: int) -> dict[str, Any]:
        return {self.results_key: value} if self.returns_results else {}

    def stopped(self, value: int) -> bool:
        """Whether the job of ``value``, which signalled that it started, has been stopped."""
        if self.driver is not None:
            return self.driver.stopped(value)
        from xmanager.executors.local import processes

        with open(os.path.join(self.signals, f"{value}.started")) as file:
            pid = int(file.read())
        return not processes.is_alive(pid, processes.start_ticks(pid))  # A zombie has stopped too.


def _args(argv: Any) -> dict[str, str]:
    return dict(str(arg)[2:].split("=", 1) for arg in argv)


class Driver:
    """Plays the cluster behind a stand-in API server: runs the contract jobs the launcher created there.

    ``jobs()`` lists (key, argv, state) of what the server holds; ``start``/``finish``/``gone``
    act on one. A job with ``--wait=1`` is started (and signals it), then finished once the test
    releases it, unless it was stopped first; the others finish at once with their results.
    """

    def __init__(self, signals: str, jobs: Callable[[], list[tuple[str, list[str]]]], start: Callable[[str], None],
                 finish: Callable[[str, int], None], stopped: Callable[[str], bool]) -> None:
        self._signals, self._jobs, self._start, self._finish, self._stopped = signals, jobs, start, finish, stopped
        self._seen: dict[str, tuple[int, bool]] = {}  # key -> (value, waits for the release)
        self._done: set[str] = set()
        self._by_value: dict[int, str] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="contract-driver", daemon=True)
        self._thread.start()

    def stopped(self, value: int) -> bool:
        return self._stopped(self._by_value[value])

    def close(self) -> None:
        self._halt.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._halt.wait(0.02):
            released = os.path.exists(os.path.join(self._signals, "release"))
            for key, argv in self._jobs():
                if key not in self._seen:
                    args = _args(argv)
                    value, waits = int(args["value"]), args["wait"] == "1"
                    self._seen[key] = (value, waits)
                    self._by_value[value] = key
                    if waits:
                        self._start(key)
                        with open(os.path.join(self._signals, f"{value}.started"), "w") as file:
                            file.write(key)
                        continue
                    self._finish(key, value)
                    self._done.add(key)
                value, waits = self._seen[key]
                if waits and released and key not in self._done:
                    self._done.add(key)
                    if not self._stopped(key):
                        open(os.path.join(self._signals, f"{value}.finished"), "w").close()
                        self._finish(key, value)


def kubernetes_driver(server: Any, signals: str) -> Driver:
    """The fake API server's Jobs, run as the contract jobs (results on the pod log's results line)."""

    def jobs() -> list[tuple[str, list[str]]]:
        with server.lock:
            return [(name, list(job["spec"]["template"]["spec"]["containers"][0].get("args", [])))
                    for (_, name), job in server.jobs.items()]

    def finish(name: str, value: int) -> None:
        server.finish_job(name, 0, log=f"XM_RESULTS_JSON: {json.dumps({'value': value})}\n")

    def stopped(name: str) -> bool:
        with server.lock:
            return ("default", name) not in server.jobs

    return Driver(signals, jobs, server.start_job, finish, stopped)


def vertex_driver(service: Any, signals: str) -> Driver:
    """The local JobService's CustomJobs, run as the contract jobs (Vertex AI brings no results back)."""

    def jobs() -> list[tuple[str, list[str]]]:
        with service.lock:
            return [(name, list(job.job_spec.worker_pool_specs[0].container_spec.args))
                    for name, job in service.jobs.items()]

    def stopped(name: str) -> bool:
        with service.lock:
            return service.jobs[name].state.name in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")

    return Driver(signals, jobs, lambda name: service.set_state(name, "JOB_STATE_RUNNING"),
                  lambda name, value: service.set_state(name, "JOB_STATE_SUCCEEDED"), stopped)


def make(name: str, folder: str, services: dict[str, Any]) -> Target:
    """The target ``name``, with its files under ``folder``; ``services`` holds what the test started for it
    (``slurm``: a dev cluster, ``kubernetes``: a fake API server and its kubeconfig, ``vertex``: the local
    JobService, its CA and a key file)."""
    signals = os.path.join(folder, "signals")
    os.makedirs(signals, exist_ok=True)
    program = os.path.join(folder, "contract_job.py")
    with open(program, "w") as file:
        file.write(f"#!{sys.executable}\n{JOB_PROGRAM}")
    os.chmod(program, 0o755)
    if name == "local":
        return Target(name, f"SPEC = xm.binary(xm_local.Local.Spec(), {program!r})\n"
                            "EXECUTOR = xm_local.Local(experimental_stream_output=False)\n", {}, signals)
    if name == "slurm":
        return Target(name, f"SPEC = xm.binary(xm_local.Slurm.Spec(), {program!r})\n"
                            "EXECUTOR = xm_local.Slurm()\n", dict(services["slurm"].env), signals)
    if name == "in_process":
        return Target(name, f"{JOB_FUNCTION}\nSPEC = xm.python_callable(xm_local.InProcess.Spec(), contract_job)\n"
                            "EXECUTOR = xm_local.InProcess()\n", {}, signals, stops_running_jobs=False)
    if name == "vector_engine":
        source = f"#define SIGNALS {json.dumps(signals)}\n{JOB_KERNEL}"
        definitions = textwrap.dedent(f"""\
            SPEC = xm.ve_kernel(xm_local.VectorEngine.Spec(backend="host"), "contract_job",
                                args=("value: int", "wait: int"), sources={{"contract": {source!r}}})
            EXECUTOR = xm_local.VectorEngine(backend="host")
            """)
        env = {"XM_VE_BUILD_DIR": os.path.join(folder, "ve-build")}
        return Target(name, definitions, env, signals, psets_take_signals=False, stops_running_jobs=False,
                      results_key="return")
    if name == "kubernetes":
        server, kubeconfig = services["kubernetes"]
        return Target(name, f"SPEC = xm.container(xm_local.Kubernetes.Spec(), {KUBERNETES_IMAGE!r})\n"
                            "EXECUTOR = xm_local.Kubernetes()\n", {"KUBECONFIG": kubeconfig}, signals,
                      driver=kubernetes_driver(server, signals))
    if name == "vertex":
        service, env = services["vertex"]
        return Target(name, f"SPEC = xm.container(xm_local.Vertex.Spec(), {VERTEX_IMAGE!r})\n"
                            "EXECUTOR = xm_local.Vertex()\n", dict(env), signals, returns_results=False,
                      driver=vertex_driver(service, signals))
    raise ValueError(f"no contract target {name!r}")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Returns once ``condition()`` holds; fails the test (naming ``what``) if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.02)
