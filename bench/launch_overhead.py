"""Launch overhead: N units of /bin/true through the launch API vs a bare Python loop.

    python bench/launch_overhead.py [--n 1000] [--repeat 3] [--peer-python PATH]

"ours" times create_experiment -> package -> N x add -> leaving the ``with`` block
(every unit has ended and the store is flushed), with max_parallel = os.cpu_count().
"bare" times a ThreadPoolExecutor(max_workers=cpu_count) running
subprocess.run(["/bin/true"]) N times. Each side runs --repeat times (interleaved) and
the median is reported. Imports and store creation happen in an untimed warm-up.
A diagnostic third side (no target) adds to the bare loop the per-job file work the
local backend does, to separate filesystem cost from the launcher's own.

With --peer-python, DeepMind XManager's equivalent script runs under that interpreter
(HOME set to a temporary folder, so its ~/.xmanager store is throwaway) and times
itself around create_experiment .. leaving the ``with`` block.
"""

from __future__ import annotations

import argparse
import json
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

from _common import scratch_dir, table

TARGET_MS_PER_UNIT = 0.5
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


def run_peer(peer_python: str, n: int, repeat: int, work: str) -> tuple[list[float], str]:
    found = shutil.which(peer_python)
    if found is None:
        return [], f"no executable interpreter at {peer_python!r}"
    peer_python = os.path.abspath(found)  # The runs use another cwd; keep venv symlinks unresolved.
    script = os.path.join(work, "peer_launch.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(PEER_SCRIPT)
    times = []
    for index in range(repeat):
        home = tempfile.mkdtemp(prefix=f"peer-home-{index}-", dir=work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("XM_")}
        env["HOME"] = home
        env.pop("XDG_DATA_HOME", None)
        env.pop("PYTHONPATH", None)
        proc = subprocess.run(
            [peer_python, script, f"--n={n}"], cwd=home, env=env, capture_output=True, text=True, timeout=600,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith(PEER_MARKER)]
        if proc.returncode != 0 or not lines:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            return times, f"peer run failed (exit {proc.returncode}):\n{tail}"
        times.append(float(json.loads(lines[-1][len(PEER_MARKER):])["seconds"]))
    return times, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="units per launch (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the median is reported (default 3)")
    parser.add_argument("--peer-python", metavar="PATH", help="interpreter with DeepMind XManager installed")
    parser.add_argument("--tmpdir", metavar="DIR", help="parent of the temporary data folder (e.g. /dev/shm); "
                        "default: the system temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    options = parser.parse_args()
    n, repeat = options.n, max(1, options.repeat)
    workers = os.cpu_count() or 1

    with scratch_dir("xm-bench-launch-", options.keep, options.tmpdir, use_as_store=True) as work:
        # Warm-up (untimed): imports, plugin lookup, store creation and migration, page cache.
        _, _, warm_id = run_ours(min(n, 2 * workers), workers, "bench-launch-warmup")
        check_ours(warm_id, min(n, 2 * workers))
        run_bare(min(n, 2 * workers), workers)

        bare_times, ours_times, add_times, logs_times = [], [], [], []
        for index in range(repeat):
            bare_times.append(run_bare(n, workers))
            elapsed, adds, experiment_id = run_ours(n, workers, f"bench-launch-{index}")
            check_ours(experiment_id, n)
            ours_times.append(elapsed)
            add_times.append(adds)
        for index in range(repeat):  # After the measured sides, so its file churn cannot disturb them.
            logs_times.append(run_bare_logs(n, workers, os.path.join(work, f"bare-files-{index}")))

        bare, ours, adds, logs = (statistics.median(t) for t in (bare_times, ours_times, add_times, logs_times))
        overhead_ms = (ours - bare) / n * 1000
        print(f"launch overhead: N={n} units of {TRUE}, concurrency={workers} (os.cpu_count), "
              f"median of {repeat} run(s)")
        print(f"python {sys.version.split()[0]} at {sys.executable}; data folder {work}")
        print()
        print(table(
            ["measure", "value", "target"],
            [
                ["bare total (s)", f"{bare:.3f}", ""],
                ["ours total (s)", f"{ours:.3f}", ""],
                ["ours add() loop (s)", f"{adds:.3f}", ""],
                ["ours per add() (us)", f"{adds / n * 1e6:.1f}", ""],
                ["bare per unit (ms)", f"{bare / n * 1000:.3f}", ""],
                ["ours per unit (ms)", f"{ours / n * 1000:.3f}", ""],
                ["overhead per unit (ms)", f"{overhead_ms:.3f}",
                 f"<= {TARGET_MS_PER_UNIT} {'PASS' if overhead_ms <= TARGET_MS_PER_UNIT else 'FAIL'}"],
                ["ratio ours/bare", f"{ours / bare:.2f}", ""],
            ],
        ))
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
            print("all runs (s): bare " + ", ".join(f"{t:.3f}" for t in bare_times)
                  + " | ours " + ", ".join(f"{t:.3f}" for t in ours_times)
                  + " | bare+files " + ", ".join(f"{t:.3f}" for t in logs_times))

        print()
        if not options.peer_python:
            print("peer (DeepMind XManager): skipped (pass --peer-python PATH to compare)")
            return 0
        peer_times, error = run_peer(options.peer_python, n, repeat, work)
        if error:
            print(f"peer (DeepMind XManager) with {options.peer_python}: {error}")
            return 1
        peer = statistics.median(peer_times)
        print(f"peer (DeepMind XManager) with {options.peer_python}: median of {len(peer_times)} run(s), "
              "timed inside its script around create_experiment .. with-exit; it runs all units at once")
        print(table(
            ["measure", "value"],
            [
                ["peer total (s)", f"{peer:.3f}"],
                ["peer per unit (ms)", f"{peer / n * 1000:.3f}"],
                ["ours per unit (ms)", f"{ours / n * 1000:.3f}"],
                ["ratio peer/ours", f"{peer / ours:.2f}"],
            ],
        ))
        return 0


if __name__ == "__main__":
    sys.exit(main())
