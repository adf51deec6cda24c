"""Store queries: listing 10,000 experiments; 100,000- and 1,000,000-unit experiments as DataFrames and work units.

    python bench/store_queries.py [--experiments 10000] [--units 100000] [--huge-units 1000000]
                                  [--small-units 5] [--repeat 3] [--quick] [--tracemalloc] [--tmpdir DIR] [--keep]

A fresh SQLite store (temporary folder) gets --experiments experiments, each made with
``xm_local.create_experiment`` (public API, a ``with`` block and no units). Their work
units are written by the store's own bulk path for units that already ran,
``Store(url).insert_finished_units(experiment_id, columns)`` (the one non-public call; no
launches; ``insert_finished_units(rows)`` in stores before it): every
experiment gets --small-units units, except the "big" one, which gets --units units with
args {"a": i, "b": i * 0.5} and results {"loss": ...}, in chunks of 100,000 units.

Timed in this process, after one untimed warm-up call each (which also imports pandas):
``xm_local.list_experiments(database_url=url)`` (median of 5),
``xm_local.get_experiment(big, database_url=url).to_dataframe()`` and ``.work_units``
(median of --repeat). Then, unless --quick or --huge-units 0, one more experiment gets
--huge-units units the same way, and its ``to_dataframe()`` is timed likewise. Break-down
rows (no targets) time the cold calls and some ``Store`` internals ("n/a" once those are renamed),
and ``list_experiments()`` again once the huge experiment is in the store.

Peak memory of ``to_dataframe()`` is measured in a fresh subprocess per experiment: pandas
imported, the experiment loaded with ``get_experiment`` and one small experiment's
``to_dataframe()`` run first; then the peak RSS (``VmHWM``, reset through
``/proc/self/clear_refs`` just before the call; not ru_maxrss, which a child inherits from
its parent) minus the RSS just before the call, divided by ``df.memory_usage(deep=True).sum()``.
That peak includes the DataFrame the call returns, the SQLite rows and malloc slack. With
--tracemalloc, a second subprocess also reports the tracemalloc peak of the call (Python and
NumPy allocations only; slower). There is no peer: the figures are checked against the targets only.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Optional

from _common import load_note, scratch_dir, table

TARGET_LIST_S = 0.100
TARGET_FRAME_S = 0.5  # 100,000 units.
TARGET_HUGE_FRAME_S = 5.0  # 1,000,000 units.
TARGET_UNITS_S = 0.5  # work_units of 100,000 units.
TARGET_PEAK_RATIO = 2.0  # Peak memory of to_dataframe() over the DataFrame's own size (1,000,000 units).
LIST_RUNS = 5
CHUNK = 100_000
STATUSES = ("completed", "completed", "completed", "failed", "cancelled")
SWEEP_COLUMNS = ("pset_hash", "pset_id", "run_id", "run_seq", "pset_seq", "calc_dir")
MARKER = "XM_BENCH_RESULT "

MEMORY_SCRIPT = f'''\
import gc, json, sys, time
url, experiment_id, small_id, trace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
import pandas  # noqa: F401
from xmanager import xm_local

xm_local.get_experiment(small_id, database_url=url).to_dataframe()  # Lazy imports and first-call costs.
experiment = xm_local.get_experiment(experiment_id, database_url=url)
gc.collect()


def status(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field + " not in /proc/self/status")


try:  # Resets VmHWM (peak RSS) to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    reset = True
except OSError:
    reset = False
before, hwm_before = status("VmRSS"), status("VmHWM")
if trace:
    import tracemalloc
    tracemalloc.start()
start = time.perf_counter()
frame = experiment.to_dataframe()
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1] if trace else None
hwm_after = status("VmHWM")
size = int(frame.memory_usage(deep=True).sum())
print("{MARKER}" + json.dumps({{
    "rows": len(frame), "seconds": seconds, "frame_bytes": size, "rss_before": before, "reset": reset,
    "hwm_before": hwm_before, "hwm_after": hwm_after, "traced_peak": traced,
}}), flush=True)
'''


def timed(function: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    """Seconds of each of ``runs`` calls and the last value (the previous one is dropped before each call)."""
    times, value = [], None
    for _ in range(runs):
        value = None
        gc.collect()
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return times, value


def insert_units(store: Any, experiment_id: int, columns: dict[str, list[Any]]) -> None:
    """The store's bulk write path for units that already ran, one transaction per call: column-wise
    ``insert_finished_units(experiment_id, columns)``, or ``insert_finished_units(rows)`` in stores before it."""
    insert = getattr(store, "insert_finished_units", None)
    if insert is None:
        raise SystemExit("Store.insert_finished_units is gone: point insert_units() in bench/store_queries.py at "
                         "the store's new bulk write path for finished units")
    if "columns" in inspect.signature(insert).parameters:
        insert(experiment_id, columns)
        return
    fixed = {"experiment_id": experiment_id, **dict.fromkeys(SWEEP_COLUMNS)}
    insert([{**fixed, **dict(zip(columns, values))} for values in zip(*columns.values())])


def unit_columns(ids: range, args: list[str], statuses: list[str], created: list[float], results: list[Optional[str]],
                 runtime: float) -> dict[str, list[Any]]:
    """``work_units`` columns of finished units (JSON as text); sweep columns and exit codes left out (NULL)."""
    return {
        "work_unit_id": list(ids), "args": args, "status": statuses,
        "message": ["" if status == "completed" else status for status in statuses],
        "host": ["bench-host"] * len(ids), "created_at": created, "started_at": [t + 1.0 for t in created],
        "ended_at": [t + 1.0 + runtime for t in created], "results": results,
    }


def fill_units(store: Any, experiment_id: int, units: int) -> None:
    """``units`` completed units with args {"a", "b"} and results {"loss"}, CHUNK units per transaction."""
    created = time.time()
    for first in range(0, units, CHUNK):
        indices = range(first, min(units, first + CHUNK))
        insert_units(store, experiment_id, unit_columns(
            range(first + 1, indices.stop + 1),
            [f'{{"a": {index}, "b": {index * 0.5!r}}}' for index in indices],
            ["completed"] * len(indices),
            [created + index * 0.001 for index in indices],
            [f'{{"loss": {1.0 / (1.0 + index) + math.sin(index) * 1e-3!r}}}' for index in indices],
            2.0,
        ))


def create_experiments(url: str, count: int) -> list[int]:
    """``count`` experiments through the public API, oldest first."""
    from xmanager import xm_local

    ids = []
    for index in range(count):
        with xm_local.create_experiment(f"sweep {index}", tags=["bench", f"group{index % 10}"],
                                        database_url=url) as experiment:
            ids.append(experiment.experiment_id)
    return ids


def fill(url: str, experiments: int, big_units: int, small_units: int) -> tuple[int, int, float]:
    """Fills the store; returns (id of the big experiment, id of a small one (or the big one), seconds taken)."""
    from xmanager.xm_local.store import Store

    start = time.perf_counter()
    ids = create_experiments(url, experiments)
    big_id = ids[-1]  # The newest experiment is the big one.
    store = Store(url)
    try:
        created = time.time()
        units = range(1, small_units + 1)
        args = [json.dumps({"seed": unit}) for unit in units]
        for experiment_id in ids[:-1] if small_units else ():
            statuses = [STATUSES[(experiment_id + unit) % len(STATUSES)] for unit in units]
            insert_units(store, experiment_id, unit_columns(units, args, statuses, [created] * small_units,
                                                            [None] * small_units, 4.0))
        fill_units(store, big_id, big_units)
    finally:
        store.close()
    small_id = ids[0] if experiments > 1 and small_units else big_id
    return big_id, small_id, time.perf_counter() - start


def measure_memory(url: str, experiment_id: int, small_id: int, trace: bool) -> dict[str, Any]:
    """One fresh subprocess running ``to_dataframe()`` of ``experiment_id``; its figures (see MEMORY_SCRIPT)."""
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, url, str(experiment_id), str(small_id), "1" if trace else "0"],
        capture_output=True, text=True, timeout=1800,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"memory subprocess for experiment {experiment_id} exited {proc.returncode}:\n{tail}")
    result = json.loads(lines[-1][len(MARKER):])
    result["peak"] = result["hwm_after"] - result["rss_before"]
    result["ratio"] = result["peak"] / result["frame_bytes"] if result["frame_bytes"] else math.inf
    return result


def optional(label: str, function: Callable[[], Any], runs: int) -> list[object]:
    """A break-down row through store internals; "n/a" when the refactored store has no such call."""
    try:
        times, _ = timed(function, runs)
    except AttributeError as error:
        return [label, 0, "n/a", f"({error})"]
    return [label, len(times), f"{statistics.median(times):.4f}", f"{min(times):.4f}"]


def row(label: str, times: list[float], target: float) -> list[object]:
    median = statistics.median(times)
    return [label, len(times), f"{median:.4f} s", f"{min(times):.4f} s", f"<= {target:g} s",
            "PASS" if median <= target else "FAIL"]


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def check_frame(frame: Any, units: int, what: str) -> None:
    if len(frame) != units or not {"a", "b", "loss", "_status", "_pset_runtime"} <= set(frame.columns):
        raise SystemExit(f"{what}: DataFrame has {len(frame)} rows and columns {list(frame.columns)}")
    if units and frame["a"].iloc[-1] != units - 1:
        raise SystemExit(f"{what}: DataFrame content does not match what was inserted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=10_000, help="experiments in all (default 10000)")
    parser.add_argument("--units", type=int, default=100_000, help="work units of the big experiment (default 100000)")
    parser.add_argument("--huge-units", type=int, default=1_000_000,
                        help="work units of the huge experiment, added after the listing is timed (default 1000000; "
                        "0 skips it)")
    parser.add_argument("--small-units", type=int, default=5, help="work units of every other experiment (default 5)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed to_dataframe() and work_units calls per experiment; the median is judged "
                        "(default 3; list_experiments() always 5)")
    parser.add_argument("--quick", action="store_true", help="skip the huge experiment (same as --huge-units 0)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report the tracemalloc peak of to_dataframe() (one more subprocess per experiment)")
    parser.add_argument("--tmpdir", metavar="DIR", help="parent of the temporary data folder (e.g. /dev/shm); "
                        "default: the system temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    options = parser.parse_args()
    if options.experiments < 1 or options.units < 1:
        parser.error("--experiments and --units must be at least 1")
    huge_units = 0 if options.quick else max(0, options.huge_units)
    repeat = max(1, options.repeat)

    with scratch_dir("xm-bench-store-", options.keep, options.tmpdir, use_as_store=True):
        url = os.environ["XM_DATABASE_URL"]
        path = url[len("sqlite:///"):]
        print(f"store queries: SQLite at {url}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
              f"{load_note()} at the start", flush=True)
        big_id, small_id, fill_seconds = fill(url, options.experiments, options.units, options.small_units)
        size_mb = os.path.getsize(path) / 1e6

        from xmanager import xm_local
        from xmanager.xm_local.store import Store

        # Cold calls (untimed in the medians): the first DataFrame call imports pandas.
        cold_list, listed = timed(lambda: xm_local.list_experiments(database_url=url), 1)
        cold_frame, frame = timed(lambda: xm_local.get_experiment(big_id, database_url=url).to_dataframe(), 1)
        cold_units, units = timed(lambda: xm_local.get_experiment(big_id, database_url=url).work_units, 1)

        list_times, listed = timed(lambda: xm_local.list_experiments(database_url=url), LIST_RUNS)
        frame = units = None
        frame_times, frame = timed(lambda: xm_local.get_experiment(big_id, database_url=url).to_dataframe(), repeat)
        check_frame(frame, options.units, f"experiment {big_id}")
        frame = None
        units_times, units = timed(lambda: xm_local.get_experiment(big_id, database_url=url).work_units, repeat)
        if len(units) != options.units:
            raise SystemExit(f"work_units has {len(units)} units, expected {options.units}")
        units = None

        # Break-downs (no targets): where the time of the calls goes (store internals; n/a if renamed).
        store = Store(url)
        breakdown = [
            optional("Store(url) open + close", lambda: Store(url).close(), 5),
            optional("Store.list_experiments() on an open store", lambda: store.list_experiments(), 5),
            optional(f"Store.unit_tuples(big) (the query alone, {options.units} units)",
                     lambda: store.unit_tuples(big_id), repeat) if hasattr(store, "unit_tuples") else
            optional(f"list(Store.unit_chunks(big)) (the query alone, {options.units} units)",
                     lambda: list(store.unit_chunks(big_id)), repeat),
        ]
        store.close()

        # Sanity checks on what came back.
        if len(listed) != options.experiments:
            raise SystemExit(f"list_experiments returned {len(listed)} experiments, expected {options.experiments}")
        big = next((e for e in listed if e.experiment_id == big_id), None)
        if big is None or big.work_unit_count != options.units:
            raise SystemExit(f"list_experiments shows the big experiment as {big!r}, expected {options.units} units")
        listed = None

        memory = [(options.units, measure_memory(url, big_id, small_id, False))]
        huge_id, huge_fill, huge_times, after_list, cold_huge = None, 0.0, [], [], []
        if huge_units:
            start = time.perf_counter()
            [huge_id] = create_experiments(url, 1)
            store = Store(url)
            try:
                fill_units(store, huge_id, huge_units)
            finally:
                store.close()
            huge_fill = time.perf_counter() - start
            cold_huge, _ = timed(lambda: xm_local.get_experiment(huge_id, database_url=url).to_dataframe(), 1)
            huge_times, frame = timed(lambda: xm_local.get_experiment(huge_id, database_url=url).to_dataframe(),
                                      repeat)
            check_frame(frame, huge_units, f"experiment {huge_id}")
            frame = None
            gc.collect()
            after_list, _ = timed(lambda: xm_local.list_experiments(database_url=url), LIST_RUNS)
            memory.append((huge_units, measure_memory(url, huge_id, small_id, False)))
        traced = (
            {count: measure_memory(url, eid, small_id, True)["traced_peak"]
             for count, eid in ((options.units, big_id), (huge_units, huge_id)) if count}
            if options.tracemalloc else {}
        )

        small_total = (options.experiments - 1) * options.small_units
        print(f"{options.experiments} experiments via xm_local.create_experiment, {small_total} small-experiment "
              f"units, 1 experiment with {options.units} units + results; {size_mb:.1f} MB, filled in "
              f"{fill_seconds:.1f} s (units via Store.insert_finished_units)")
        if huge_units:
            print(f"then 1 more experiment with {huge_units} units + results: "
                  f"{os.path.getsize(path) / 1e6:.1f} MB in all, filled in {huge_fill:.1f} s")
        print()
        rows = [
            row(f"list_experiments() over {options.experiments}", list_times, TARGET_LIST_S),
            row(f"get_experiment().to_dataframe() {options.units} units", frame_times, TARGET_FRAME_S),
            row(f"get_experiment().work_units {options.units} units", units_times, TARGET_UNITS_S),
        ]
        if huge_units:
            rows.append(row(f"get_experiment().to_dataframe() {huge_units} units", huge_times, TARGET_HUGE_FRAME_S))
            ratio = memory[-1][1]["ratio"]
            rows.append([f"to_dataframe() {huge_units} units: peak / df size", 1, f"{ratio:.2f}x", f"{ratio:.2f}x",
                         f"<= {TARGET_PEAK_RATIO:g}x", "PASS" if ratio <= TARGET_PEAK_RATIO else "FAIL"])
        else:
            rows.append([f"get_experiment().to_dataframe() {options.huge_units} units", 0, "skipped", "", "", ""])
        print(table(["measure", "runs", "median", "best", "target", "verdict"], rows))
        print()
        print("peak memory of to_dataframe(): fresh subprocess, peak RSS (VmHWM, reset just before the call) minus RSS "
              "just before it, over df.memory_usage(deep=True).sum()")
        memory_rows = []
        for count, result in memory:
            memory_rows.append([
                f"{count} units", f"{result['seconds']:.3f}", mb(result["frame_bytes"]), mb(result["peak"]),
                f"{result['ratio']:.2f}x", "yes" if result["reset"] else mb(max(0, result["hwm_before"] - result["rss_before"])),
                *([mb(traced[count])] if traced else []),
            ])
        print(table(["experiment", "call (s)", "df size", "peak growth", "peak / df", "peak reset (else slack)",
                     *(["tracemalloc peak"] if traced else [])], memory_rows))
        print()
        print("break-down and cold calls (no targets):")
        print(table(
            ["measure", "runs", "median (s)", "min (s)"],
            [
                ["first list_experiments() (cold)", 1, f"{cold_list[0]:.4f}", f"{cold_list[0]:.4f}"],
                ["first to_dataframe() (imports pandas)", 1, f"{cold_frame[0]:.4f}", f"{cold_frame[0]:.4f}"],
                ["first work_units", 1, f"{cold_units[0]:.4f}", f"{cold_units[0]:.4f}"],
                *([[f"first to_dataframe() {huge_units} units", 1, f"{cold_huge[0]:.4f}", f"{cold_huge[0]:.4f}"]]
                  if cold_huge else []),
                *breakdown,
                *([[f"list_experiments() over {options.experiments + 1} incl. the {huge_units}-unit one",
                    len(after_list), f"{statistics.median(after_list):.4f}", f"{min(after_list):.4f}"]]
                  if after_list else []),
            ],
        ))
        print()
        print(f"{load_note()} at the end")
        return 0


if __name__ == "__main__":
    sys.exit(main())
