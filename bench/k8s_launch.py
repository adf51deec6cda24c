"""Kubernetes executor at scale: concurrent Job creates vs one at a time, and a refresh over them.

    python bench/k8s_launch.py [--quick] [--units N] [--latency-ms 20] [--repeat 1] [--keep]

No real API server runs on our machines, so the executor talks (through the real
``kubernetes`` client) to the loopback fake API server of the tests
(``tests/support/fake_apiserver.py``), run in its own process so that it does
not share our interpreter lock, with schema validation off and an artificial delay on every
request (``--latency-ms``, default 20 ms: a real API server takes 20-50 ms per create).
Measurements, each for N units (default 1,000; ``--quick``: 200) of one ``xm.Container``:

1. launch: ``create_experiment`` -> ``add_sweep`` of N units -> leaving the ``with`` block
   (Jobs created, store written), with ``Kubernetes(max_concurrent_creates=1)`` (one create
   after another) vs the default (8 in flight);
2. refresh, all pending: one ``experiment.refresh()`` over the N Jobs (a paginated Job
   list: 500 per page);
3. refresh, all ended: every Job finished in the fake server, then one ``refresh()``: the
   Job list, the pod list and N log reads, one at a time vs 8 at once.

No peer exists for this, so the table gives our figures and the ratio to the sequential
run only. Each figure is the median of ``--repeat`` runs (default 1); every run is checked
(N Jobs created, N statuses, N logs read) outside the timing.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import statistics
import sys
import time
from typing import Any

from _common import scratch_dir, table

_HERE = os.path.dirname(os.path.abspath(__file__))

UNITS, UNITS_QUICK = 1000, 200
IMAGE = "127.0.0.1:5000/xm/bench:1"
TOKEN = "bench-token"
FAKE = os.path.join(_HERE, "..", "tests", "support", "fake_apiserver.py")


def _load_fake() -> Any:
    spec = importlib.util.spec_from_file_location("fake_apiserver", FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve(conn: Any, latency: float) -> None:
    """The fake API server's process: answers commands from the benchmark over ``conn``."""
    server = _load_fake().FakeApiServer(token=TOKEN, validate=False)
    server.latency = latency
    server.start()
    conn.send(server.url)
    while True:
        command = conn.recv()
        if command == "finish_all":
            for _, name in list(server.jobs):
                server.finish_job(name, log="done\nXM_RESULTS_JSON: {\"ok\": 1}\n")
            conn.send(len(server.jobs))
        elif command == "reset":
            with server.lock:
                server.jobs.clear()
                server.pods.clear()
                server.logs.clear()
                server.max_in_flight_creates = 0
            conn.send(True)
        elif command == "stats":
            conn.send({"jobs": len(server.jobs), "max_in_flight": server.max_in_flight_creates})
        else:
            server.stop()
            conn.send(True)
            return


def _kubeconfig(path: str, url: str) -> str:
    with open(path, "w", encoding="utf-8") as file:
        file.write(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: bench\n  cluster:\n    server: {url}\n"
            f"users:\n- name: bench\n  user:\n    token: {TOKEN}\n"
            "contexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n"
            "current-context: bench\n"
        )
    return path


def _one_run(units: int, limit: int, conn: Any) -> dict[str, float]:
    from xmanager import xm, xm_local
    from xmanager.executors.kubernetes import backend

    conn.send("reset")
    conn.recv()
    backend.CONCURRENCY = limit  # Log reads (and deletes) as many at once as the creates, for the comparison.
    start = time.perf_counter()
    with xm_local.create_experiment(f"bench k8s x{limit}") as experiment:
        [executable] = experiment.package([xm.container(executor_spec=xm_local.Kubernetes.Spec(), image_path=IMAGE)])
        executor = xm_local.Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=limit)
        experiment.add_sweep(xm.Job(executable, executor), xm.pgrid([xm.plist("i", range(units))]))
    launched = time.perf_counter() - start
    conn.send("stats")
    stats = conn.recv()
    if stats["jobs"] != units:
        raise SystemExit(f"x{limit}: {stats['jobs']} Jobs in the fake server, expected {units}")

    start = time.perf_counter()
    experiment.refresh()
    pending = time.perf_counter() - start
    statuses = experiment.to_dataframe()["_status"]
    if len(statuses) != units or set(statuses) != {"pending"}:
        raise SystemExit(f"x{limit}: after the first refresh: {statuses.value_counts().to_dict()}")

    conn.send("finish_all")
    conn.recv()
    start = time.perf_counter()
    experiment.refresh()
    ended = time.perf_counter() - start
    frame = experiment.to_dataframe()
    if set(frame["_status"]) != {"completed"} or frame["ok"].tolist() != [1] * units:
        raise SystemExit(f"x{limit}: after the last refresh: {frame['_status'].value_counts().to_dict()}")
    return {"launch": launched, "pending": pending, "ended": ended, "in_flight": stats["max_in_flight"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{UNITS_QUICK} units instead of {UNITS}")
    parser.add_argument("--units", type=int, default=None)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay of every API request (default 20)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    units = options.units or (UNITS_QUICK if options.quick else UNITS)
    if units < 1 or options.repeat < 1 or options.latency_ms < 0:
        parser.error("--units and --repeat must be >= 1, --latency-ms >= 0")
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        print("skipped: the kubernetes client is not installed (pip install 'xmanager-launcher[kubernetes]')")
        return 0
    from xmanager.executors.kubernetes.executor import DEFAULT_CONCURRENT_CREATES

    ours, theirs = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(theirs, options.latency_ms / 1000),
                                                         daemon=True)
    server.start()
    try:
        url = ours.recv()
        with scratch_dir("xm-bench-k8s-", options.keep, options.tmpdir, use_as_store=True) as work:
            os.environ["KUBECONFIG"] = _kubeconfig(os.path.join(work, "kubeconfig"), url)
            os.environ.pop("KUBERNETES_SERVICE_HOST", None)
            runs: dict[int, list[dict[str, float]]] = {1: [], DEFAULT_CONCURRENT_CREATES: []}
            for _ in range(options.repeat):
                for limit in runs:  # Interleaved.
                    runs[limit].append(_one_run(units, limit, ours))
    finally:
        ours.send("stop")
        ours.recv()
        server.join(10)

    def median(limit: int, key: str) -> float:
        return statistics.median(run[key] for run in runs[limit])

    concurrent = DEFAULT_CONCURRENT_CREATES
    rows = []
    for key, label in [("launch", f"launch {units} units"), ("pending", "refresh, all pending"),
                       ("ended", f"refresh, all ended ({units} log reads)")]:
        one, many = median(1, key), median(concurrent, key)
        rows.append([label, f"{one:.2f} s", f"{many:.2f} s", f"{one / many:.1f}x"])
    print(f"Kubernetes executor vs the fake API server, {options.latency_ms:g} ms per request, {units} units, "
          f"median of {options.repeat}")
    print(table(["measurement", "1 at a time", f"{concurrent} at once (default)", "speed-up (ratio only)"], rows))
    print(f"\ncreates in flight at most: {max(r['in_flight'] for r in runs[1]):g} (x1), "
          f"{max(r['in_flight'] for r in runs[concurrent]):g} (x{concurrent}); per unit at x{concurrent}: "
          f"{median(concurrent, 'launch') / units * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
