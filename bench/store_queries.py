"""Store queries: listing 10,000 experiments and a 100,000-unit experiment as a DataFrame.

    python bench/store_queries.py [--experiments 10000] [--units 100000] [--small-units 5]

A fresh SQLite store (temporary folder) gets --experiments experiments in all: a few
through ``Store.insert_experiment``, the rest by ``executemany`` on the store's
connection, each with --small-units work units; one of them (the "big" experiment)
has --units work units with args {"a": i, "b": i * 0.5} and results {"loss": ...}.

Timed (after one untimed warm-up call each, which also imports pandas):
``xm_local.list_experiments(database_url=url)`` (median of 5) and
``xm_local.get_experiment(big, database_url=url).to_dataframe()`` (median of 3).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import scratch_dir, table

TARGET_LIST_S = 0.100
TARGET_FRAME_S = 1.0
API_INSERTS = 5
STATUSES = ("completed", "completed", "completed", "failed", "cancelled")



def timed(function: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    times, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return times, value


def fill(url: str, experiments: int, big_units: int, small_units: int) -> tuple[int, float]:
    """Fills the store; returns (id of the big experiment, seconds taken)."""
    from xmanager.xm_local.store import Store

    start = time.perf_counter()
    store = Store(url)
    conn = store._conn  # Bulk rows go straight through the store's connection.
    base = time.time() - experiments * 60.0  # One experiment a minute, oldest first.

    ids = []
    for index in range(min(API_INSERTS, experiments)):
        ids.append(store.insert_experiment(
            10_000_000 + index, f"api experiment {index}", ["bench", "api"], "inserted through Store",
            "bench", "/tmp/launch.py", ["launch.py", f"--seed={index}"],
        ))
    next_id = max(ids, default=10_000_000) + 1
    bulk = []
    for index in range(experiments - len(ids)):
        experiment_id = next_id + index
        tags = ["bench", f"group{index % 10}"]
        bulk.append({
            "experiment_id": experiment_id, "title": f"sweep {index}", "tags": json.dumps(tags),
            "notes": "", "creator": "bench", "created_at": base + index * 60.0,
            "launch_script": "/tmp/launch.py", "launch_argv": json.dumps(["launch.py", f"--seed={index}"]),
        })
    all_ids = ids + [row["experiment_id"] for row in bulk]
    big_id = all_ids[-1]  # The newest experiment is the big one.

    unit_rows = []
    for experiment_id in all_ids:
        if experiment_id == big_id:
            continue
        for unit in range(1, small_units + 1):
            created = base + (experiment_id - next_id) * 60.0
            status = STATUSES[(experiment_id + unit) % len(STATUSES)]
            unit_rows.append({
                "experiment_id": experiment_id, "work_unit_id": unit, "args": json.dumps({"seed": unit}),
                "status": status, "message": "" if status == "completed" else status, "exit_code": 0 if status == "completed" else 1,
                "host": "bench-host", "created_at": created, "started_at": created + 1.0, "ended_at": created + 5.0,
            })
    big_created = time.time()
    big_rows, result_rows = [], []
    for unit in range(1, big_units + 1):
        index = unit - 1
        big_rows.append({
            "experiment_id": big_id, "work_unit_id": unit, "args": json.dumps({"a": index, "b": index * 0.5}),
            "status": "completed", "message": "", "exit_code": 0, "host": "bench-host",
            "created_at": big_created, "started_at": big_created + index * 0.001, "ended_at": big_created + index * 0.001 + 2.0,
        })
        result_rows.append({
            "experiment_id": big_id, "work_unit_id": unit, "data": json.dumps({"loss": 1.0 / (1.0 + index) + math.sin(index) * 1e-3}),
        })

    with conn.transaction():
        conn.executemany(
            "INSERT INTO experiments (experiment_id, title, tags, notes, creator, created_at, launch_script, launch_argv) "
            "VALUES (:experiment_id, :title, :tags, :notes, :creator, :created_at, :launch_script, :launch_argv)",
            bulk,
        )
        conn.executemany(
            "INSERT INTO experiment_tags (experiment_id, tag) VALUES (:experiment_id, :tag)",
            [{"experiment_id": row["experiment_id"], "tag": tag} for row in bulk for tag in json.loads(row["tags"])],
        )
        unit_sql = (
            "INSERT INTO work_units (experiment_id, work_unit_id, args, status, message, exit_code, host, "
            "created_at, started_at, ended_at) VALUES (:experiment_id, :work_unit_id, :args, :status, :message, "
            ":exit_code, :host, :created_at, :started_at, :ended_at)"
        )
        conn.executemany(unit_sql, unit_rows)
        conn.executemany(unit_sql, big_rows)
        conn.executemany(
            "INSERT INTO results (experiment_id, work_unit_id, data) VALUES (:experiment_id, :work_unit_id, :data)",
            result_rows,
        )
    conn.execute("ANALYZE")
    store.close()
    return big_id, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=10_000, help="experiments in all (default 10000)")
    parser.add_argument("--units", type=int, default=100_000, help="work units of the big experiment (default 100000)")
    parser.add_argument("--small-units", type=int, default=5, help="work units of every other experiment (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    options = parser.parse_args()
    if options.experiments < 1:
        parser.error("--experiments must be at least 1")

    with scratch_dir("xm-bench-store-", options.keep, use_as_store=True):
        url = os.environ["XM_DATABASE_URL"]
        big_id, fill_seconds = fill(url, options.experiments, options.units, options.small_units)
        size_mb = os.path.getsize(url[len("sqlite:///"):]) / 1e6

        from xmanager import xm_local
        from xmanager.xm_local.store import Store

        # Cold calls (untimed in the medians): the first DataFrame call imports pandas.
        cold_list, listed = timed(lambda: xm_local.list_experiments(database_url=url), 1)
        cold_frame, frame = timed(lambda: xm_local.get_experiment(big_id, database_url=url).to_dataframe(), 1)

        list_times, listed = timed(lambda: xm_local.list_experiments(database_url=url), 5)
        frame_times, frame = timed(lambda: xm_local.get_experiment(big_id, database_url=url).to_dataframe(), 3)

        # Break-downs (no targets): where the time of the two calls goes.
        store = Store(url)
        open_times, _ = timed(lambda: Store(url).close(), 5)
        rows_times, _ = timed(lambda: store.list_experiments(), 5)
        tuples_times, _ = timed(lambda: store.unit_tuples(big_id), 3)
        units_times, units = timed(lambda: xm_local.get_experiment(big_id, database_url=url).work_units, 3)
        store.close()

        # Sanity checks on what came back.
        if len(listed) != options.experiments:
            raise SystemExit(f"list_experiments returned {len(listed)} experiments, expected {options.experiments}")
        big = next((e for e in listed if e.experiment_id == big_id), None)
        if big is None or big.work_unit_count != options.units:
            raise SystemExit(f"list_experiments shows the big experiment as {big!r}, expected {options.units} units")
        if len(frame) != options.units or not {"a", "b", "loss", "_status", "_pset_runtime"} <= set(frame.columns):
            raise SystemExit(f"DataFrame has {len(frame)} rows and columns {list(frame.columns)}")
        if frame["a"].iloc[-1] != options.units - 1 or len(units) != options.units:
            raise SystemExit("DataFrame or work_units content does not match what was inserted")

        small_total = (options.experiments - 1) * options.small_units
        print(f"store queries: SQLite at {url}")
        print(f"{options.experiments} experiments ({min(API_INSERTS, options.experiments)} via Store.insert_experiment), "
              f"{small_total} small-experiment units, 1 experiment with {options.units} units + results; "
              f"{size_mb:.1f} MB, filled in {fill_seconds:.1f} s")
        print()
        list_median, frame_median = statistics.median(list_times), statistics.median(frame_times)
        print(table(
            ["query", "runs", "median (s)", "min (s)", "target (s)", "verdict"],
            [
                [f"list_experiments() over {options.experiments}", len(list_times), f"{list_median:.4f}",
                 f"{min(list_times):.4f}", f"<= {TARGET_LIST_S}", "PASS" if list_median <= TARGET_LIST_S else "FAIL"],
                [f"get_experiment().to_dataframe() {options.units} units", len(frame_times), f"{frame_median:.4f}",
                 f"{min(frame_times):.4f}", f"<= {TARGET_FRAME_S}", "PASS" if frame_median <= TARGET_FRAME_S else "FAIL"],
            ],
        ))
        print()
        print("break-down and cold calls (no targets):")
        print(table(
            ["measure", "runs", "median (s)", "min (s)"],
            [
                ["first list_experiments() (cold)", 1, f"{cold_list[0]:.4f}", f"{cold_list[0]:.4f}"],
                ["first to_dataframe() (imports pandas)", 1, f"{cold_frame[0]:.4f}", f"{cold_frame[0]:.4f}"],
                ["Store(url) open + close", len(open_times), f"{statistics.median(open_times):.4f}", f"{min(open_times):.4f}"],
                ["Store.list_experiments() on an open store", len(rows_times),
                 f"{statistics.median(rows_times):.4f}", f"{min(rows_times):.4f}"],
                ["Store.unit_tuples(big) (the query alone)", len(tuples_times),
                 f"{statistics.median(tuples_times):.4f}", f"{min(tuples_times):.4f}"],
                ["get_experiment(big).work_units", len(units_times),
                 f"{statistics.median(units_times):.4f}", f"{min(units_times):.4f}"],
            ],
        ))
        return 0


if __name__ == "__main__":
    sys.exit(main())
