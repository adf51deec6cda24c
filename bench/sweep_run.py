"""Sweep run: ``run(func, params, save=True)`` on a new study of N psets, ours vs psweep 0.16.0.

    python bench/sweep_run.py [--quick] [--peer-python PATH] [--tmpdir DIR] [--keep]

``func(pset) = {"r": pset["a"] * pset["b"]}``, params =
``pgrid([plist("a", range(10)), plist("b", range(N // 10))])`` for N = 1,000, 10,000
and 100,000 (``--quick`` drops 100,000). Every measurement writes a fresh calc dir.
Both tools are measured in a warm process: each first does an untimed 100-pset run
in that same process (imports, pandas/numpy start-up, store creation), then the timed
runs; params are built outside the timing. Best of 3 for N <= 10,000, of 2 for 100,000.

Ours runs in this process (its metadata store in a scratch XM_DATA_DIR) and gives two
figures: "run() returned" (``<calc_dir>/database.pk`` is written; for >= 500 psets a
forked child is still recording the run in the metadata store) and "recorded in store"
(until ``wait_recorded()`` returns, timed from the same start). psweep runs in its own
process under the peer interpreter (``--peer-python`` or ``bench/.peer-venv``, see
``_peer.py``); it has no store, so its run() returns when everything is done.
Outside the timing, every run is checked: rows returned, rows in database.pk and,
for ours, units in the store.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import textwrap
import time
from typing import Any, Optional

from _common import scratch_dir, table
from _peer import MARKER, find_psweep, ratio, run_script, verdict, write_script

TARGET_RATIO = 5.0
SIZES = (1_000, 10_000, 100_000)
WARMUP_N = 100

PEER_SCRIPT = textwrap.dedent(
    f'''\
    """psweep: run(func, params, save=True) on fresh calc dirs, timed in a warm process."""
    import gc
    import json
    import os
    import shutil
    import sys
    import time

    import pandas as pd
    import psweep as ps


    def func(pset):
        return {{"r": pset["a"] * pset["b"]}}


    def params_for(n):
        return ps.pgrid([ps.plist("a", range(10)), ps.plist("b", range(n // 10))])


    def check(df, calc_dir, n):
        rows = len(pd.read_pickle(os.path.join(calc_dir, "database.pk")))
        if len(df) != n or rows != n:
            raise SystemExit(f"psweep: expected {{n}} rows, run() returned {{len(df)}}, database.pk has {{rows}}")


    def main():
        config = json.loads(sys.argv[1])
        work = config["work"]
        calc_dir = os.path.join(work, "peer-warmup")
        check(ps.run(func, params_for({WARMUP_N}), calc_dir=calc_dir, save=True), calc_dir, {WARMUP_N})
        times = {{}}
        for n, repeat in config["cases"]:
            runs = []
            for index in range(repeat):
                params = params_for(n)
                calc_dir = os.path.join(work, f"peer-{{n}}-{{index}}")
                gc.collect()
                start = time.perf_counter()
                df = ps.run(func, params, calc_dir=calc_dir, save=True)
                runs.append(time.perf_counter() - start)
                check(df, calc_dir, n)
                del df
                shutil.rmtree(calc_dir)
            times[str(n)] = runs
        print("{MARKER}" + json.dumps(times), flush=True)


    if __name__ == "__main__":
        main()
    '''
)


def func(pset: dict[str, Any]) -> dict[str, Any]:
    return {"r": pset["a"] * pset["b"]}


def params_for(n: int) -> list[dict[str, Any]]:
    from xmanager.xm_local import sweep as ps

    return ps.pgrid([ps.plist("a", range(10)), ps.plist("b", range(n // 10))])


def check_ours(df: Any, calc_dir: str, n: int) -> None:
    """Outside the timing: rows returned, rows in database.pk, units in the store, no journal left."""
    import pandas as pd
    from xmanager.xm_local import config
    from xmanager.xm_local.store import Store
    from xmanager.xm_local.sweep.record import study_tag

    rows = len(pd.read_pickle(os.path.join(calc_dir, "database.pk")))
    store = Store(config.database_url())
    try:
        found = store.list_experiments(tag=study_tag(calc_dir), limit=2)
        units = len(store.pset_ids(found[0].experiment_id)) if len(found) == 1 else -1
    finally:
        store.close()
    journal = os.path.join(calc_dir, ".xm_journal")
    left = os.listdir(journal) if os.path.isdir(journal) else []
    if len(df) != n or rows != n or units != n or left:
        raise SystemExit(f"ours: expected {n} rows; run() returned {len(df)}, database.pk has {rows}, "
                         f"the store has {units} units (experiments for the calc dir: {len(found)}), "
                         f"journal files left: {left}")


def run_ours(n: int, calc_dir: str) -> tuple[float, float]:
    """(seconds until run() returned, seconds until wait_recorded() returned)."""
    from xmanager.xm_local import sweep as ps
    from xmanager.xm_local.sweep.runner import wait_recorded

    params = params_for(n)
    gc.collect()
    start = time.perf_counter()
    df = ps.run(func, params, calc_dir=calc_dir, save=True)
    returned = time.perf_counter() - start
    wait_recorded()
    recorded = time.perf_counter() - start
    check_ours(df, calc_dir, n)
    return returned, recorded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only N = 1,000 and 10,000")
    parser.add_argument("--peer-python", metavar="PATH",
                        help="interpreter with psweep installed (default: bench/.peer-venv, created if missing)")
    parser.add_argument("--tmpdir", metavar="DIR", help="parent of the temporary folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    sizes = SIZES[:2] if options.quick else SIZES
    cases = [(n, 3 if n <= 10_000 else 2) for n in sizes]

    with scratch_dir("xm-bench-sweep-run-", options.keep, options.tmpdir, use_as_store=True) as work:
        # Warm-up (untimed): imports, pandas start-up, store creation and migration.
        run_ours(WARMUP_N, os.path.join(work, "ours-warmup"))
        ours: dict[int, tuple[list[float], list[float]]] = {}
        for n, repeat in cases:
            returned, recorded = [], []
            for index in range(repeat):
                calc_dir = os.path.join(work, f"ours-{n}-{index}")
                first, second = run_ours(n, calc_dir)
                returned.append(first)
                recorded.append(second)
                shutil.rmtree(calc_dir)
            ours[n] = (returned, recorded)

        peer_python, peer_note = find_psweep(options.peer_python)
        peer: dict[str, list[float]] = {}
        if peer_python is not None:
            script = write_script(work, "peer_sweep_run.py", PEER_SCRIPT)
            result, error = run_script(peer_python, script, {"work": work, "cases": cases}, work)
            if result is None:
                peer_python, peer_note = None, f"peer run failed: {error}"
            else:
                peer = result

        print("sweep run: run(func, params, save=True) on a new study, fresh calc dir each time")
        print(f"func = {{'r': a * b}}, params = pgrid([plist('a', range(10)), plist('b', range(N // 10))]); "
              f"best of {' / '.join(f'{r} (N={n:,})' for n, r in cases)}")
        print(f"warm process: both tools first do an untimed {WARMUP_N}-pset run in the measuring process, "
              "so import and start-up costs are excluded; params are built outside the timing")
        print(f"python {sys.version.split()[0]} at {sys.executable}; scratch and metadata store in {work}")
        print("peer: " + (peer_note if peer_python is not None else f"unavailable ({peer_note})"))
        print()
        rows = []
        for n, _ in cases:
            mine, stored = min(ours[n][0]), min(ours[n][1])
            theirs: Optional[float] = min(peer[str(n)]) if str(n) in peer else None
            run_ratio = theirs / mine if theirs is not None else None
            rows.append([
                f"N={n:,}", f"{mine:.3f}", f"{stored:.3f}", "n/a" if theirs is None else f"{theirs:.3f}",
                ratio(theirs, mine), ratio(theirs, stored),
                f">= {TARGET_RATIO:g}x {verdict(run_ratio, TARGET_RATIO)}",
            ])
        print(table(
            ["case", "ours run() returned (s)", "ours recorded in store (s)", "psweep run() (s)",
             "ratio psweep/ours (returned)", "ratio psweep/ours (recorded)", "target (returned)"],
            rows,
        ))
        print()
        print(f"targets: run() with save=True >= {TARGET_RATIO:g}x faster than psweep (psweep/ours on "
              "'run() returned'); 'recorded' adds the metadata-store write psweep does not have "
              "(runs of >= 500 psets record it in a forked child, so it overlaps the database write)")
        print("all runs (s): " + "; ".join(
            f"N={n:,} ours returned " + ", ".join(f"{t:.3f}" for t in ours[n][0])
            + " / recorded " + ", ".join(f"{t:.3f}" for t in ours[n][1])
            + (" / psweep " + ", ".join(f"{t:.3f}" for t in peer[str(n)]) if str(n) in peer else "")
            for n, _ in cases
        ))
        return 0


if __name__ == "__main__":
    sys.exit(main())
