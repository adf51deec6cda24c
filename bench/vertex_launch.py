"""Vertex AI executor at scale: concurrent CustomJob creates vs one at a time, and a refresh over them.

    python bench/vertex_launch.py [--quick] [--units N] [--latency-ms 100] [--page-size 100] [--repeat 1] [--keep]

No Vertex AI project is available here, so the executor talks, through the real
``google-cloud-aiplatform`` GAPIC client over TLS, to the local ``JobService`` of the tests
(``tests/support/vertex_servicer.py``), run in its own process so that it does not
share our interpreter lock, with an artificial delay on every call (``--latency-ms``,
default 100 ms: a real CreateCustomJob takes 100-300 ms) and list pages capped at
``--page-size`` jobs (default 100). Measurements, each for N units (default 200; ``--quick``: 50)
of one ``xm.Container``:

1. launch: ``create_experiment`` -> ``add_sweep`` of N units -> leaving the ``with`` block
   (preflight, CustomJobs created, store written), with ``Vertex(max_concurrent_creates=1)``
   vs the default (8 in flight);
2. refresh: one ``experiment.refresh()`` over the N pending jobs (``ListCustomJobs`` filtered on
   the experiment label, page by page).

No peer exists for this, so the table gives our figures and the ratio to the sequential run
only. Each figure is the median of ``--repeat`` runs (default 1); every run is checked (N jobs
created, N pending statuses) outside the timing.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from _common import scratch_dir, table

_HERE = os.path.dirname(os.path.abspath(__file__))

UNITS, UNITS_QUICK = 200, 50
IMAGE = "us-docker.pkg.dev/xm-test/repo/trainer:1"
PROJECT = "xm-test"
SERVICER = os.path.join(_HERE, "..", "tests", "support", "vertex_servicer.py")


def _load_servicer() -> Any:
    spec = importlib.util.spec_from_file_location("vertex_servicer", SERVICER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["vertex_servicer"] = module
    spec.loader.exec_module(module)
    return module


def _serve(conn: Any, folder: str, latency: float, page_size: int) -> None:
    """The JobService's process: answers commands from the benchmark over ``conn``."""
    import json

    servicer = _load_servicer()
    ca_path, key, chain = servicer.make_tls(folder)
    key_file = os.path.join(folder, "service-account.json")
    with open(key_file, "w", encoding="utf-8") as file:
        json.dump(servicer.service_account_json(PROJECT), file)
    service = servicer.FakeJobService(projects=(PROJECT,))
    server = servicer.Server(service, key, chain, max_workers=64)
    conn.send((server.endpoint, ca_path, key_file))
    while True:
        command = conn.recv()
        if command == "reset":
            service.reset()
            service.latency["*"] = latency
            service.max_page_size = page_size
            conn.send(True)
        elif command == "stats":
            with service.lock:
                conn.send({"jobs": len(service.jobs), "max_in_flight": service.max_in_flight_creates,
                           "lists": service.methods().count("ListCustomJobs")})
        else:
            server.stop()
            conn.send(True)
            return


def _one_run(units: int, limit: int, conn: Any) -> dict[str, float]:
    from xmanager import xm, xm_local

    conn.send("reset")
    conn.recv()
    start = time.perf_counter()
    with xm_local.create_experiment(f"bench vertex x{limit}") as experiment:
        [executable] = experiment.package([xm.container(xm_local.Vertex.Spec(), IMAGE)])
        executor = xm_local.Vertex(max_concurrent_creates=limit)
        experiment.add_sweep(xm.Job(executable, executor), xm.pgrid([xm.plist("i", range(units))]))
    launched = time.perf_counter() - start
    conn.send("stats")
    stats = conn.recv()
    if stats["jobs"] != units:
        raise SystemExit(f"x{limit}: {stats['jobs']} CustomJobs in the servicer, expected {units}")

    start = time.perf_counter()
    experiment.refresh()
    refreshed = time.perf_counter() - start
    conn.send("stats")
    pages = conn.recv()["lists"] - stats["lists"]
    statuses = experiment.to_dataframe()["_status"]
    if len(statuses) != units or set(statuses) != {"pending"}:
        raise SystemExit(f"x{limit}: after the refresh: {statuses.value_counts().to_dict()}")
    return {"launch": launched, "refresh": refreshed, "in_flight": stats["max_in_flight"], "pages": pages}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{UNITS_QUICK} units instead of {UNITS}")
    parser.add_argument("--units", type=int, default=None)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="delay of every API call (default 100)")
    parser.add_argument("--page-size", type=int, default=100, help="most jobs per ListCustomJobs page (default 100)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    units = options.units or (UNITS_QUICK if options.quick else UNITS)
    if units < 1 or options.repeat < 1 or options.latency_ms < 0 or options.page_size < 1:
        parser.error("--units, --repeat and --page-size must be >= 1, --latency-ms >= 0")
    try:
        import google.cloud.aiplatform_v1  # noqa: F401
    except ImportError:
        print("skipped: google-cloud-aiplatform is not installed (pip install 'xmanager-launcher[vertex]')")
        return 0
    from xmanager.executors.vertex.executor import DEFAULT_CONCURRENT_CREATES

    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # No GOAWAY notes when the servicer stops.
    context = multiprocessing.get_context("spawn")  # The parent's gRPC must not be forked.
    tls = tempfile.mkdtemp(prefix="xm-bench-vertex-tls-", dir=options.tmpdir)
    ours, theirs = context.Pipe()
    server = context.Process(target=_serve, args=(theirs, tls, options.latency_ms / 1000, options.page_size),
                             daemon=True)
    server.start()
    try:
        endpoint, ca_path, key_file = ours.recv()
        os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = ca_path  # Read by gRPC at its first TLS channel.
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = key_file
        os.environ["XM_VERTEX_API_ENDPOINT"] = endpoint
        for name in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_REGION"):
            os.environ.pop(name, None)
        os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "localhost", "127.0.0.1"]))
        with scratch_dir("xm-bench-vertex-", options.keep, options.tmpdir, use_as_store=True):
            runs: dict[int, list[dict[str, float]]] = {1: [], DEFAULT_CONCURRENT_CREATES: []}
            for _ in range(options.repeat):
                for limit in runs:  # Interleaved.
                    runs[limit].append(_one_run(units, limit, ours))
    finally:
        ours.send("stop")
        ours.recv()
        server.join(10)
        import shutil

        shutil.rmtree(tls, ignore_errors=True)

    def median(limit: int, key: str) -> float:
        return statistics.median(run[key] for run in runs[limit])

    concurrent = DEFAULT_CONCURRENT_CREATES
    rows = []
    pages = runs[concurrent][0]["pages"]
    for key, label in [("launch", f"launch {units} units"), ("refresh", f"refresh, all pending ({pages:g} page(s))")]:
        one, many = median(1, key), median(concurrent, key)
        rows.append([label, f"{one:.2f} s", f"{many:.2f} s", f"{one / many:.1f}x"])
    print(f"Vertex AI executor vs the local JobService, {options.latency_ms:g} ms per call, {units} units, "
          f"median of {options.repeat}")
    print(table(["measurement", "1 at a time", f"{concurrent} at once (default)", "speed-up (ratio only)"], rows))
    print("(a refresh reads pages one after another, following page tokens: it does not depend on the limit)")
    print(f"\ncreates in flight at most: {max(r['in_flight'] for r in runs[1]):g} (x1), "
          f"{max(r['in_flight'] for r in runs[concurrent]):g} (x{concurrent}); per unit at x{concurrent}: "
          f"{median(concurrent, 'launch') / units * 1000:.1f} ms (ideal {options.latency_ms / concurrent:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
