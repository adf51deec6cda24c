"""Sweep extend: many successive run() calls, each adding 100 new psets to one calc dir, ours vs psweep 0.16.0.

    python bench/sweep_extend.py [--calls 100] [--quick] [--repeat 3] [--peer-python PATH] [--tmpdir DIR] [--keep]

Call k (k = 0 .. calls-1) is ``run(func, pgrid([plist("a", range(100*k, 100*(k+1))),
plist("b", [7])]), calc_dir=<one calc dir>, save=True)`` with the default ``df=None``,
so each call takes the database of the previous calls from ``database.pk`` (psweep's
workflow for extending a study) and writes it back with 100 more rows.
``func(pset) = {"r": pset["a"] * pset["b"]}``. ``--quick`` means ``--calls 30``.

Both tools run in a warm process (an untimed 3-call extend of a separate calc dir
first, in the measuring process). Reported: the total of all calls, the first 10 and
the last 10 calls (their ratio shows whether the per-call cost grows with the study),
best of --repeat sequences by total (default 3; psweep takes 30 s to 2 minutes per
100-call sequence, so a full run takes a few minutes: use --repeat 1 or --calls to shorten).
Ours runs in this process with its store in a scratch XM_DATA_DIR; each call is timed
until ``wait_recorded()`` returns (calls of 100 psets are recorded inline anyway).

Ours keeps, in memory, the database it last wrote and reuses it while the file's inode,
size and mtime are unchanged, so in one process a call does not re-read database.pk.
A diagnostic row (no target) empties that cache before every call, which is what a
fresh process per call (psweep's usual ``python run.py`` workflow) costs in reading.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any, Optional

from _common import scratch_dir, table
from _peer import MARKER, find_psweep, ratio, run_script, verdict, write_script

TARGET_RATIO = 50.0
PER_CALL = 100
WARMUP_CALLS = 3
EDGE = 10  # The first and last EDGE calls are reported separately.

PEER_SCRIPT = textwrap.dedent(
    f'''\
    """psweep: successive run() calls extending one calc dir, timed in a warm process."""
    import gc
    import json
    import os
    import sys
    import time

    import pandas as pd
    import psweep as ps


    def func(pset):
        return {{"r": pset["a"] * pset["b"]}}


    def extend(calc_dir, calls):
        times = []
        for k in range(calls):
            params = ps.pgrid([ps.plist("a", range({PER_CALL} * k, {PER_CALL} * (k + 1))), ps.plist("b", [7])])
            gc.collect()
            start = time.perf_counter()
            df = ps.run(func, params, calc_dir=calc_dir, save=True)
            times.append(time.perf_counter() - start)
            if len(df) != {PER_CALL} * (k + 1):
                raise SystemExit(f"psweep: call {{k}} returned {{len(df)}} rows, expected {{{PER_CALL} * (k + 1)}}")
        db = pd.read_pickle(os.path.join(calc_dir, "database.pk"))
        if len(db) != {PER_CALL} * calls or sorted(db["a"].tolist()) != list(range({PER_CALL} * calls)):
            raise SystemExit(f"psweep: database.pk has {{len(db)}} rows, expected {{{PER_CALL} * calls}}")
        return times


    def main():
        config = json.loads(sys.argv[1])
        work = config["work"]
        extend(os.path.join(work, "peer-warmup"), {WARMUP_CALLS})
        runs = [extend(os.path.join(work, f"peer-{{index}}"), config["calls"]) for index in range(config["repeat"])]
        print("{MARKER}" + json.dumps(runs), flush=True)


    if __name__ == "__main__":
        main()
    '''
)


def func(pset: dict[str, Any]) -> dict[str, Any]:
    return {"r": pset["a"] * pset["b"]}


def check_ours(calc_dir: str, calls: int) -> None:
    """Outside the timing: database.pk and the store hold every pset once, in order."""
    import pandas as pd
    from xmanager.xm_local import config
    from xmanager.xm_local.store import Store
    from xmanager.xm_local.sweep.record import study_tag

    n = PER_CALL * calls
    db = pd.read_pickle(os.path.join(calc_dir, "database.pk"))
    store = Store(config.database_url())
    try:
        found = store.list_experiments(tag=study_tag(calc_dir), limit=2)
        units = len(store.pset_ids(found[0].experiment_id)) if len(found) == 1 else -1
    finally:
        store.close()
    problems = []
    if len(db) != n:
        problems.append(f"database.pk has {len(db)} rows")
    elif db["a"].tolist() != list(range(n)) or db["_pset_seq"].tolist() != list(range(n)):
        problems.append("database.pk rows are not a = _pset_seq = 0 .. n-1 in order")
    elif sorted(set(db["_run_seq"].tolist())) != list(range(calls)):
        problems.append(f"_run_seq values are not 0 .. {calls - 1}")
    if units != n:
        problems.append(f"the store has {units} units (experiments for the calc dir: {len(found)})")
    if problems:
        raise SystemExit(f"ours, {calc_dir}: expected {n} psets; " + "; ".join(problems))


def extend_ours(calc_dir: str, calls: int, before_call: Optional[Callable[[], None]] = None) -> list[float]:
    from xmanager.xm_local import sweep as ps
    from xmanager.xm_local.sweep.runner import wait_recorded

    times = []
    for k in range(calls):
        params = ps.pgrid([ps.plist("a", range(PER_CALL * k, PER_CALL * (k + 1))), ps.plist("b", [7])])
        if before_call is not None:
            before_call()
        gc.collect()
        start = time.perf_counter()
        df = ps.run(func, params, calc_dir=calc_dir, save=True)
        wait_recorded()
        times.append(time.perf_counter() - start)
        if len(df) != PER_CALL * (k + 1):
            raise SystemExit(f"ours: call {k} returned {len(df)} rows, expected {PER_CALL * (k + 1)}")
    check_ours(calc_dir, calls)
    return times


def has_cache() -> bool:
    from xmanager.xm_local.sweep import runner

    return isinstance(getattr(runner, "_CACHE", None), dict)


def drop_cache() -> None:
    from xmanager.xm_local.sweep import runner

    runner._CACHE.clear()  # Diagnostic only: as if each call ran in a new process.


def best(runs: list[list[float]]) -> list[float]:
    return min(runs, key=sum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help=f"run() calls of {PER_CALL} psets each (default 100)")
    parser.add_argument("--quick", action="store_true", help="30 calls")
    parser.add_argument("--repeat", type=int, default=3, help="sequences per tool; the best total is reported "
                        "(default 3)")
    parser.add_argument("--peer-python", metavar="PATH",
                        help="interpreter with psweep installed (default: bench/.peer-venv, created if missing)")
    parser.add_argument("--tmpdir", metavar="DIR", help="parent of the temporary folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    calls = 30 if options.quick else max(2, options.calls)
    repeat = max(1, options.repeat)
    edge = min(EDGE, calls // 2)

    with scratch_dir("xm-bench-sweep-extend-", options.keep, options.tmpdir, use_as_store=True) as work:
        extend_ours(os.path.join(work, "ours-warmup"), WARMUP_CALLS)  # Untimed: imports, store creation.
        ours = best([extend_ours(os.path.join(work, f"ours-{index}"), calls) for index in range(repeat)])
        cold: Optional[list[float]] = None
        if has_cache():
            cold = best([extend_ours(os.path.join(work, f"ours-cold-{index}"), calls, drop_cache)
                         for index in range(repeat)])

        peer_python, peer_note = find_psweep(options.peer_python)
        peer: Optional[list[float]] = None
        if peer_python is not None:
            script = write_script(work, "peer_sweep_extend.py", PEER_SCRIPT)
            result, error = run_script(peer_python, script, {"work": work, "calls": calls, "repeat": repeat}, work)
            if result is None:
                peer_python, peer_note = None, f"peer run failed: {error}"
            else:
                peer = best(result)

        print(f"sweep extend: {calls} successive run() calls of {PER_CALL} new psets each on one calc dir "
              f"(df=None, save=True), {PER_CALL * calls:,} psets in the end")
        print(f"warm process: both tools first extend a separate calc dir {WARMUP_CALLS} times, untimed, in the "
              f"measuring process; best of {repeat} sequence(s) by total")
        print(f"python {sys.version.split()[0]} at {sys.executable}; scratch and metadata store in {work}")
        print("peer: " + (peer_note if peer_python is not None else f"unavailable ({peer_note})"))
        print()

        def part(times: Optional[list[float]], which: str) -> Optional[float]:
            if times is None:
                return None
            return {"total": sum(times), "first": sum(times[:edge]), "last": sum(times[-edge:])}[which]

        def fmt(value: Optional[float]) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        rows = []
        for label, which in (("total", "total"), (f"first {edge} calls", "first"), (f"last {edge} calls", "last")):
            mine, theirs = part(ours, which), part(peer, which)
            target = ""
            if which == "total":
                value = theirs / mine if theirs is not None else None
                target = f">= {TARGET_RATIO:g}x {verdict(value, TARGET_RATIO)}"
            rows.append([f"{label} (s)", fmt(mine), fmt(theirs), ratio(theirs, mine), target, fmt(part(cold, which))])
        growth = [
            "last/first (growth)", f"{part(ours, 'last') / part(ours, 'first'):.2f}",
            "n/a" if peer is None else f"{part(peer, 'last') / part(peer, 'first'):.2f}", "", "",
            "n/a" if cold is None else f"{part(cold, 'last') / part(cold, 'first'):.2f}",
        ]
        rows.append(growth)
        print(table(["case", "ours", "psweep", "ratio psweep/ours", "target",
                     "ours, cache dropped each call (diagnostic)"], rows))
        print()
        print(f"targets: extending a study >= {TARGET_RATIO:g}x faster than psweep in total; the per-call cost "
              f"should not grow much with the study (last {edge} / first {edge} calls near 1)")
        print(f"ours per call (ms): first {1000 * ours[0]:.1f}, median "
              f"{1000 * sorted(ours)[len(ours) // 2]:.1f}, last {1000 * ours[-1]:.1f}"
              + ("" if peer is None else f"; psweep per call (ms): first {1000 * peer[0]:.1f}, median "
                 f"{1000 * sorted(peer)[len(peer) // 2]:.1f}, last {1000 * peer[-1]:.1f}"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
