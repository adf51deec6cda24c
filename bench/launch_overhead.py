"""Launch overhead: N units of /bin/true through the launch API vs a bare Python loop, and vs DeepMind XManager.

    python bench/launch_overhead.py [--n 1000] [--repeat 3] [--peer-python PATH] [--tmpdir DIR] [--keep]

"ours" times create_experiment -> package -> N x add -> leaving the ``with`` block
(every unit has ended and the store is flushed), with max_parallel = os.cpu_count().
"bare" times a ThreadPoolExecutor(max_workers=cpu_count) running
subprocess.run(["/bin/true"]) N times. Each side runs --repeat times (interleaved) and
the median is reported. Imports and store creation happen in an untimed warm-up.
Target: (ours - bare) / N <= 0.3 ms per unit, on the medians; the same from the best run
of each side is printed too (no verdict), as it is less exposed to load from elsewhere.
A diagnostic side (no target) adds to the bare loop the per-job file work the
local backend does, to separate filesystem cost from the launcher's own.

With --peer-python (there is no default peer interpreter; none is created), DeepMind
XManager 0.8.5's equivalent script runs under that interpreter, interleaved with the two
sides above (HOME set to a temporary folder, so its ~/.xmanager store is throwaway), and
times itself around create_experiment .. leaving the ``with`` block. Its overhead is
(peer - bare) / N over the same bare loop; target: XManager's overhead >= 10x ours.
Without --peer-python that row is n/a; when the peer fails, the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from _common import load_note, scratch_dir, table
from _peer import package_version

TARGET_MS_PER_UNIT = 0.3
TARGET_PEER_RATIO = 10.0  # XManager's overhead over ours.
PEER_VERSION = "0.8.5"
TRUE = "/bin/true"
PEER_MARKER = "XM_BENCH_RESULT "

PEER_SCRIPT = textwrap.dedent(
    f'''\
    """DeepMind XManager: N units of /bin/true on the local executor, timed from inside."""
    import json
    import sys
    import time

    from absl import app, flags
    from xmanager import xm, xm_local

    _N = flags.DEFINE_integer("n", 1000, "units")


    def main(argv):
        del argv
        start = time.perf_counter()
        with xm_local.create_experiment(experiment_title="bench-launch-peer") as experiment:
            [executable] = experiment.package(
                [xm.binary(path="{TRUE}", executor_spec=xm_local.Local.Spec())]
            )
            for _ in range(_N.value):
                experiment.add(xm.Job(executable, xm_local.Local(experimental_stream_output=False)))
        elapsed = time.perf_counter() - start
        sys.stdout.flush()
        print("{PEER_MARKER}" + json.dumps({{"seconds": elapsed, "n": _N.value}}), flush=True)


    if __name__ == "__main__":
        app.run(main)
    '''
)


def _time_pool(one: Callable[[int], int], n: int, workers: int, label: str) -> float:
    """Seconds to run ``one(0..n-1)`` on ``workers`` threads; every call must return 0."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"{label}: {sum(1 for c in codes if c)} of {n} runs of {TRUE} failed")
    return elapsed


def run_bare(n: int, workers: int) -> float:
    def one(_: int) -> int:
        return subprocess.run([TRUE]).returncode

    return _time_pool(one, n, workers, "bare loop")


def run_bare_logs(n: int, workers: int, root: str) -> float:
    """Diagnostic baseline: the bare loop plus the per-job file work the local backend does
    (job dir, stdout/stderr log files, full env copy, own session, results-file probe)."""
    base_env = dict(os.environ)

    def one(index: int) -> int:
        work_dir = os.path.join(root, str(index), "true")
        os.makedirs(work_dir, exist_ok=True)
        with open(os.path.join(work_dir, "stdout.log"), "wb") as out, open(os.path.join(work_dir, "stderr.log"), "wb") as err:
            process = subprocess.Popen(
                [TRUE], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env={**base_env, "XM_WORK_UNIT_ID": str(index)}, start_new_session=True,
            )
        code = process.wait()
        try:
            with open(os.path.join(work_dir, "results.json"), encoding="utf-8"):
                pass
        except FileNotFoundError:
            pass
        return code

    return _time_pool(one, n, workers, "bare+logs loop")


def run_ours(n: int, workers: int, title: str) -> tuple[float, float, int]:
    """(total seconds, seconds spent in the add() loop, experiment id)."""
    from xmanager import xm, xm_local

    start = time.perf_counter()
    with xm_local.create_experiment(title, max_parallel=workers) as experiment:
        [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=TRUE)])
        adds_start = time.perf_counter()
        for _ in range(n):
            experiment.add(xm.Job(executable, xm_local.Local()))
        adds = time.perf_counter() - adds_start
    elapsed = time.perf_counter() - start
    return elapsed, adds, experiment.experiment_id


def check_ours(experiment_id: int, n: int) -> None:
    """Outside the timing: the store holds n completed units for the experiment."""
    from xmanager import xm_local

    counts = xm_local.get_experiment(experiment_id).status_counts
    if counts != {"completed": n}:
        raise SystemExit(f"experiment {experiment_id}: expected {n} completed units in the store, found {counts}")


def peer_version(peer_python: str) -> tuple[Optional[str], str]:
    """(interpreter, "DeepMind XManager <version> under <path>") or (None, why it cannot be the peer)."""
    found = shutil.which(peer_python)
    if found is None:
        return None, f"no executable interpreter at {peer_python!r}"
    python = os.path.abspath(found)  # The runs use another cwd; keep venv symlinks unresolved.
    version, error = package_version(python, "xmanager")
    if version is None:
        return None, error
    note = "" if version.split(".post")[0] == PEER_VERSION else f" (NOT the {PEER_VERSION} the target refers to)"
    return python, f"DeepMind XManager {version}{note} under {python}"


def run_peer(peer_python: str, n: int, index: int, work: str) -> tuple[Optional[float], str]:
    """Seconds of one peer run (timed inside its script), or (None, error)."""
    script = os.path.join(work, "peer_launch.py")
    if not os.path.exists(script):
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(PEER_SCRIPT)
    home = tempfile.mkdtemp(prefix=f"peer-home-{index}-", dir=work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XM_")}
    env["HOME"] = home
    env.pop("XDG_DATA_HOME", None)
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(
            [peer_python, script, f"--n={n}"], cwd=home, env=env, capture_output=True, text=True, timeout=600,
        )
    except subprocess.TimeoutExpired:
        return None, "peer run timed out after 600 s"
    lines = [line for line in proc.stdout.splitlines() if line.startswith(PEER_MARKER)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return None, f"peer run failed (exit {proc.returncode}):\n{tail}"
    return float(json.loads(lines[-1][len(PEER_MARKER):])["seconds"]), ""


def _ratio(peer_ms: float, ours_ms: float) -> float:
    return peer_ms / ours_ms if ours_ms > 0 else math.inf


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="units per launch (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the median is reported (default 3)")
    parser.add_argument("--peer-python", metavar="PATH",
                        help=f"interpreter with DeepMind XManager {PEER_VERSION} installed (no default: without it "
                        "the peer target is n/a)")
    parser.add_argument("--tmpdir", metavar="DIR", help="parent of the temporary data folder (e.g. /dev/shm); "
                        "default: the system temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    options = parser.parse_args()
    n, repeat = options.n, max(1, options.repeat)
    workers = os.cpu_count() or 1

    peer_python, peer_note = None, "skipped (pass --peer-python PATH to compare)"
    if options.peer_python:
        peer_python, peer_note = peer_version(options.peer_python)

    with scratch_dir("xm-bench-launch-", options.keep, options.tmpdir, use_as_store=True) as work:
        print(f"launch overhead: N={n} units of {TRUE}, concurrency={workers} (os.cpu_count); {load_note()} at the "
              "start", flush=True)
        # Warm-up (untimed): imports, plugin lookup, store creation and migration, page cache.
        _, _, warm_id = run_ours(min(n, 2 * workers), workers, "bench-launch-warmup")
        check_ours(warm_id, min(n, 2 * workers))
        run_bare(min(n, 2 * workers), workers)

        bare_times, ours_times, add_times, logs_times, peer_times = [], [], [], [], []
        peer_error = ""
        for index in range(repeat):  # Interleaved, so a burst of load from elsewhere hits every side alike.
            bare_times.append(run_bare(n, workers))
            elapsed, adds, experiment_id = run_ours(n, workers, f"bench-launch-{index}")
            check_ours(experiment_id, n)
            ours_times.append(elapsed)
            add_times.append(adds)
            if peer_python and not peer_error:
                seconds, peer_error = run_peer(peer_python, n, index, work)
                if seconds is not None:
                    peer_times.append(seconds)
        for index in range(repeat):  # After the measured sides, so its file churn cannot disturb them.
            logs_times.append(run_bare_logs(n, workers, os.path.join(work, f"bare-files-{index}")))

        bare, ours, adds, logs = (statistics.median(t) for t in (bare_times, ours_times, add_times, logs_times))
        overhead_ms = (ours - bare) / n * 1000
        best_overhead_ms = (min(ours_times) - min(bare_times)) / n * 1000  # Less exposed to bursts of load.
        peer = statistics.median(peer_times) if peer_times and not peer_error else None
        rows = [
            ["bare total (s)", f"{bare:.3f}", ""],
            ["ours total (s)", f"{ours:.3f}", ""],
            ["ours add() loop (s)", f"{adds:.3f}", ""],
            ["ours per add() (us)", f"{adds / n * 1e6:.1f}", ""],
            ["bare per unit (ms)", f"{bare / n * 1000:.3f}", ""],
            ["ours per unit (ms)", f"{ours / n * 1000:.3f}", ""],
            ["overhead per unit (ms)", f"{overhead_ms:.3f}",
             f"<= {TARGET_MS_PER_UNIT} {'PASS' if overhead_ms <= TARGET_MS_PER_UNIT else 'FAIL'}"],
            ["overhead per unit, best runs (ms)", f"{best_overhead_ms:.3f}", "(no verdict)"],
            ["ratio ours/bare", f"{ours / bare:.2f}", ""],
        ]
        if peer is None:
            rows.append(["XManager overhead / ours", "n/a", f">= {TARGET_PEER_RATIO:g} n/a"])
        else:
            peer_overhead_ms = (peer - bare) / n * 1000
            best_peer_overhead_ms = (min(peer_times) - min(bare_times)) / n * 1000
            rows += [
                ["XManager total (s)", f"{peer:.3f}", ""],
                ["XManager per unit (ms)", f"{peer / n * 1000:.3f}", ""],
                ["XManager overhead per unit (ms)", f"{peer_overhead_ms:.3f}", ""],
                ["XManager overhead / ours", f"{_ratio(peer_overhead_ms, overhead_ms):.2f}",
                 f">= {TARGET_PEER_RATIO:g} "
                 f"{'PASS' if _ratio(peer_overhead_ms, overhead_ms) >= TARGET_PEER_RATIO else 'FAIL'}"],
                ["XManager overhead / ours, best runs", f"{_ratio(best_peer_overhead_ms, best_overhead_ms):.2f}",
                 "(no verdict)"],
            ]
        print(f"python {sys.version.split()[0]} at {sys.executable}; data folder {work}; median of {repeat} run(s)")
        print(f"peer: {peer_note}" + (f"; {peer_error}" if peer_error else ""))
        if peer is not None:
            print("  (timed inside its script around create_experiment .. with-exit; it runs all units at once; "
                  "its overhead is over the same bare loop)")
        print()
        print(table(["measure", "value", "target"], rows))
        print()
        print("diagnostic (no target): bare loop + the backend's per-job files (job dir, 2 log files, env copy, "
              "own session, results probe)")
        print(table(
            ["measure", "value"],
            [
                ["bare+files total (s)", f"{logs:.3f}"],
                ["bare+files over bare per unit (ms)", f"{(logs - bare) / n * 1000:.3f}"],
                ["ours over bare+files per unit (ms)", f"{(ours - logs) / n * 1000:.3f}"],
            ],
        ))
        if repeat > 1:
            print()
            print(f"all runs (s): bare {_runs(bare_times)} | ours {_runs(ours_times)} | bare+files {_runs(logs_times)}"
                  + (f" | XManager {_runs(peer_times)}" if peer_times else ""))
        print(f"{load_note()} at the end")
        return 1 if options.peer_python and peer is None else 0


if __name__ == "__main__":
    sys.exit(main())
