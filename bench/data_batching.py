"""Mini-batch throughput: ``xmanager.xm.data`` vs batchup 0.2.3, side by side in the same run.

    python bench/data_batching.py [--quick] [--rounds 3] [--repeats 3] [--peer-python PATH] [--keep]

Data: X = 1,000,000 x 32 float32 (``RandomState(0)``; ``--quick``: 200,000 rows), batch size 256, full epochs of
``ArrayDataSource([X]).batch_iterator(256, shuffle=...)``. Cases:

* in order (``shuffle=False``); raw NumPy baseline: ``X[i:i + 256]`` slices (ours also slices, so its in-order
  batches are views of X, as documented in ``data_source``; batchup gathers with ``np.arange`` indices, i.e. copies);
* shuffled with ``shuffle=RandomState(12345)``; raw NumPy baseline: ``X[perm[i:i + 256]]`` with the same permutation;
* a source whose batches each cost about 1 ms of pure-Python work (a counting loop calibrated once in this process,
  the same loop count for both libraries) on top of the gather, over 200,000 rows (``--quick``: 100,000), shuffled:
  serial ``batch_iterator`` vs ``WorkerProcessPool(2).parallel_data_source(ds, batch_buffer_size=20)``.

Both libraries run the *same* harness script (written to the scratch folder) in a fresh process of their own
interpreter: ours under this interpreter, batchup under ``--peer-python`` or ``bench/.peer-batchup-venv`` (made on
first use with ``pip install batchup==0.2.3``, which pulls numpy, scipy, tables, joblib and six). The two alternate for
``--rounds`` rounds so that load from other work on the machine hits both alike; each round times every case
``--repeats`` times after an untimed warm-up epoch. Every figure is the BEST over all rounds and repeats (the least
disturbed run); the spread (worst..best) is printed under the table, and for the 1 ms case also the median of the
pool/serial ratios of back-to-back pairs (serial and pooled epochs alternate within a round). Pools are created once
per round, outside the timing, and warmed up with one epoch. Before timing, each harness checks that the pool's first
40 batches equal the serial ones.

Targets (issue 6): in order >= 2x batchup; shuffled >= batchup and >= 0.9x the raw gather; 1 ms per batch with 2
process workers >= 1.7x serial. The last needs two otherwise idle cores; on a loaded machine it drops.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import textwrap
import time
from typing import Any, Optional

from _common import scratch_dir, table
from _peer import MARKER, make_venv, package_version, run_script, verdict, write_script

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_DIR = os.path.join(HERE, ".peer-batchup-venv")
PEER_SPEC = "batchup==0.2.3"
BATCH = 256
PROCESSES = 2
BUFFER = 20
TARGET_IN_ORDER = 2.0
TARGET_SHUFFLED = 1.0
TARGET_VS_RAW = 0.9
TARGET_POOL = 1.7

HARNESS = textwrap.dedent(
    f'''\
    """One library's figures for bench/data_batching.py; config as JSON in argv[1], result on one marker line."""
    import json
    import os
    import sys
    import time

    import numpy as np

    config = json.loads(sys.argv[1])
    if config["lib"] == "batchup":
        from batchup import data_source, work_pool
    else:
        from xmanager.xm.data import data_source, work_pool

    BATCH = config["batch"]


    def spin(loops):
        total = 0
        for i in range(loops):
            total += i
        return total


    class WorkSource(data_source.ArrayDataSource):
        """Each batch costs ``loops`` iterations of a Python loop on top of the gather."""

        def __init__(self, data, loops):
            super().__init__(data)
            self.loops = loops

        def samples_by_indices_nomapping(self, indices):
            spin(self.loops)
            return super().samples_by_indices_nomapping(indices)


    def epoch(batches):
        start = time.perf_counter()
        n = 0
        for batch in batches:
            n += len(batch[0])
        return time.perf_counter() - start, n


    def timed(make, repeats, expect):
        epoch(make())  # warm-up
        times = []
        for _ in range(repeats):
            seconds, n = epoch(make())
            if n != expect:
                raise SystemExit(f"{{config['lib']}}: an epoch gave {{n}} samples, expected {{expect}}")
            times.append(seconds)
        return times


    def cpu_seconds():
        """CPU time of this process and of its live child processes (the pool's workers), from /proc."""
        total = time.process_time()
        me = str(os.getpid())
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or entry == me:
                continue
            try:
                with open(f"/proc/{{entry}}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                total += (int(fields[11]) + int(fields[12])) / tick
        return total


    def raw_slices(x):
        for i in range(0, len(x), BATCH):
            yield (x[i:i + BATCH],)


    def raw_gather(x, seed):
        perm = np.random.RandomState(seed).permutation(len(x))
        for i in range(0, len(x), BATCH):
            yield (x[perm[i:i + BATCH]],)


    def same_batches(a, b, count):
        for _, (x, y) in zip(range(count), zip(a, b)):
            if len(x) != len(y) or any(not np.array_equal(p, q) for p, q in zip(x, y)):
                return False
        return True


    def main():
        n, repeats, seed = config["rows"], config["repeats"], config["seed"]
        x = np.random.RandomState(0).random_sample((n, 32)).astype(np.float32)
        ds = data_source.ArrayDataSource([x])
        out = {{"lib": config["lib"], "numpy": np.__version__, "checksum": float(x[:1000].sum(dtype=np.float64))}}
        out["in_order"] = timed(lambda: ds.batch_iterator(BATCH, shuffle=False), repeats, n)
        out["raw_slices"] = timed(lambda: raw_slices(x), repeats, n)
        out["shuffled"] = timed(lambda: ds.batch_iterator(BATCH, shuffle=np.random.RandomState(seed)), repeats, n)
        out["raw_gather"] = timed(lambda: raw_gather(x, seed), repeats, n)

        m = config["pool_rows"]
        work = WorkSource([x[:m].copy()], config["loops"])
        pool = work_pool.WorkerProcessPool(processes=config["processes"])
        try:
            pds = pool.parallel_data_source(work, batch_buffer_size=config["buffer"])
            shuffled = lambda: np.random.RandomState(seed)  # noqa: E731
            if not same_batches(pds.batch_iterator(BATCH, shuffle=shuffled()),
                                work.batch_iterator(BATCH, shuffle=shuffled()), 40):
                raise SystemExit(f"{{config['lib']}}: the process pool's batches differ from the serial ones")
            serial, pooled, serial_cpu, pooled_cpu = [], [], [], []
            epoch(work.batch_iterator(BATCH, shuffle=shuffled()))
            epoch(pds.batch_iterator(BATCH, shuffle=shuffled()))
            for _ in range(repeats):  # alternate, so that a burst of outside load hits both
                cpu = cpu_seconds()
                seconds, got = epoch(work.batch_iterator(BATCH, shuffle=shuffled()))
                serial_cpu.append(cpu_seconds() - cpu)
                serial.append(seconds)
                cpu = cpu_seconds()
                seconds, got_pooled = epoch(pds.batch_iterator(BATCH, shuffle=shuffled()))
                pooled_cpu.append(cpu_seconds() - cpu)
                pooled.append(seconds)
                if got != m or got_pooled != m:
                    lib = config["lib"]
                    raise SystemExit(f"{{lib}}: 1 ms case gave {{got}} / {{got_pooled}} samples, expected {{m}}")
            out["work_serial_cpu"], out["work_pool_cpu"] = serial_cpu, pooled_cpu
            out["work_serial"], out["work_pool"] = serial, pooled
        finally:
            close = getattr(pool, "close", None)
            if close is not None:
                close()
        print("{MARKER}" + json.dumps(out), flush=True)


    if __name__ == "__main__":
        main()
    '''
)


def spin(loops: int) -> int:
    """The same counting loop as the harness's, for calibration."""
    total = 0
    for i in range(loops):
        total += i
    return total


def calibrate(seconds: float = 0.001) -> int:
    """Loop count that takes ``seconds`` here (best of 15 timings of a >= 20 ms loop)."""
    loops = 20_000
    best = 0.0
    for _ in range(20):
        best = min(_time_spin(loops) for _ in range(15))
        if best >= 0.02:
            break
        loops *= 2
    return max(1, int(loops * seconds / best))


def _time_spin(loops: int) -> float:
    start = time.perf_counter()
    spin(loops)
    return time.perf_counter() - start


def find_batchup(peer_python: Optional[str]) -> tuple[Optional[str], str]:
    """(interpreter, description) of the batchup peer, or (None, why it is unavailable)."""

    def version_of(python: str) -> tuple[Optional[str], str]:
        return package_version(python, "batchup")

    if peer_python:
        found = shutil.which(peer_python)
        if found is None:
            return None, f"no executable interpreter at {peer_python!r}"
        python = os.path.abspath(found)  # keep venv symlinks unresolved
        version, error = version_of(python)
        return (python, f"batchup {version} under {python}") if version else (None, error)
    python = os.path.join(VENV_DIR, "bin", "python")
    if os.path.exists(python):
        version, _ = version_of(python)
        if version:
            return python, f"batchup {version} under {python}"
    return make_venv(VENV_DIR, PEER_SPEC, version_of, "batchup")


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(value: Optional[float], what: str) -> str:
    return "n/a" if value is None else f"{value:.2f}x {what}"


def _spread(times: list[float], per: float, scale: float) -> str:
    """worst..best throughput of a list of epoch times."""
    return f"{per / max(times) / scale:.2f}..{per / min(times) / scale:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows (100,000 for the 1 ms case), 2 rounds")
    parser.add_argument("--rounds", type=int, help="alternating rounds of ours/batchup (default 3, --quick 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per case per round (default 3)")
    parser.add_argument("--peer-python", metavar="PATH",
                        help="interpreter with batchup installed (default: bench/.peer-batchup-venv, made if missing)")
    parser.add_argument("--tmpdir", metavar="DIR", help="parent of the temporary folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    rounds = options.rounds if options.rounds is not None else (2 if options.quick else 3)
    if rounds < 1:
        parser.error(f"--rounds must be >= 1, not {rounds}")
    if options.repeats < 1:
        parser.error(f"--repeats must be >= 1, not {options.repeats}")
    rows = 200_000 if options.quick else 1_000_000
    pool_rows = 100_000 if options.quick else 200_000

    loops = calibrate()
    config: dict[str, Any] = {
        "rows": rows, "pool_rows": pool_rows, "batch": BATCH, "repeats": options.repeats, "seed": 12345,
        "loops": loops, "processes": PROCESSES, "buffer": BUFFER,
    }
    peer_python, peer_note = find_batchup(options.peer_python)
    runs: dict[str, list[dict[str, Any]]] = {"xmanager": [], "batchup": []}
    with scratch_dir("xm-bench-data-batching-", options.keep, options.tmpdir) as work:
        script = write_script(work, "batching_harness.py", HARNESS)
        for index in range(rounds):
            for lib, python in (("xmanager", sys.executable), ("batchup", peer_python)):
                if python is None:
                    continue
                print(f"round {index + 1}/{rounds}: {lib} ...", file=sys.stderr, flush=True)
                result, error = run_script(python, script, {**config, "lib": lib}, work, timeout=1800)
                if result is None:
                    if lib == "xmanager":
                        raise SystemExit(f"our harness failed: {error}")
                    peer_python, peer_note = None, f"peer run failed: {error}"
                    continue
                runs[lib].append(result)

    def merged(lib: str, case: str) -> Optional[list[float]]:
        times = [t for run in runs[lib] for t in run[case]]
        return times or None

    if runs["batchup"] and runs["batchup"][0]["checksum"] != runs["xmanager"][0]["checksum"]:
        print("WARNING: the two processes generated different data (checksums differ)")

    def rate(times: Optional[list[float]], per: float, scale: float) -> Optional[float]:
        return None if times is None else per / min(times) / scale

    m_samples = 1e6
    ours = {case: rate(merged("xmanager", case), rows, m_samples)
            for case in ("in_order", "shuffled", "raw_slices", "raw_gather")}
    peer = {case: rate(merged("batchup", case), rows, m_samples)
            for case in ("in_order", "shuffled", "raw_slices", "raw_gather")}
    n_work_batches = -(-pool_rows // BATCH)
    ours_serial = rate(merged("xmanager", "work_serial"), n_work_batches, 1.0)
    ours_pool = rate(merged("xmanager", "work_pool"), n_work_batches, 1.0)
    peer_serial = rate(merged("batchup", "work_serial"), n_work_batches, 1.0)
    peer_pool = rate(merged("batchup", "work_pool"), n_work_batches, 1.0)

    def over(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return None if a is None or b is None or b <= 0 else a / b

    in_order_ratio = over(ours["in_order"], peer["in_order"])
    shuffled_ratio = over(ours["shuffled"], peer["shuffled"])
    vs_raw = over(ours["shuffled"], ours["raw_gather"])
    pool_speedup = over(ours_pool, ours_serial)
    peer_speedup = over(peer_pool, peer_serial)
    rows_out = [
        ["in-order epoch (M samples/s)", _fmt(ours["in_order"]), _fmt(peer["in_order"]),
         _fmt(ours["raw_slices"]) + " (slices)", _ratio(in_order_ratio, "batchup"),
         f">= {TARGET_IN_ORDER:g}x batchup", verdict(in_order_ratio, TARGET_IN_ORDER)],
        ["shuffled epoch, RandomState (M samples/s)", _fmt(ours["shuffled"]), _fmt(peer["shuffled"]),
         _fmt(ours["raw_gather"]) + " (gather)", _ratio(shuffled_ratio, "batchup"),
         f">= {TARGET_SHUFFLED:g}x batchup", verdict(shuffled_ratio, TARGET_SHUFFLED)],
        ["shuffled epoch vs raw gather", _fmt(ours["shuffled"]), "", _fmt(ours["raw_gather"]),
         _ratio(vs_raw, "raw"), f">= {TARGET_VS_RAW:g}x raw gather", verdict(vs_raw, TARGET_VS_RAW)],
        ["raw X[perm[i:i+256]] gather (M samples/s)", _fmt(ours["raw_gather"]), _fmt(peer["raw_gather"]),
         "", "same code, each venv's numpy", "", ""],
        ["1 ms/batch source, serial (batches/s)", _fmt(ours_serial, 0), _fmt(peer_serial, 0), "", "", "", ""],
        [f"1 ms/batch source, process pool({PROCESSES}) (batches/s)", _fmt(ours_pool, 0), _fmt(peer_pool, 0), "",
         _ratio(pool_speedup, "serial") + " (batchup " + _ratio(peer_speedup, "serial") + ")",
         f">= {TARGET_POOL:g}x serial", verdict(pool_speedup, TARGET_POOL)],
    ]
    print(f"mini-batch throughput: X = {rows:,} x 32 float32, batch {BATCH}; 1 ms case: {pool_rows:,} rows "
          f"({n_work_batches} batches of {loops:,} Python loop iterations + the gather), {PROCESSES} processes, "
          f"batch_buffer_size={BUFFER}")
    print(f"best of {rounds} alternating rounds x {options.repeats} timed epochs per case (after a warm-up epoch); "
          f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the end")
    numpy_versions = ", ".join(f"{lib} numpy {r[0]['numpy']}" for lib, r in runs.items() if r)
    print("peer: " + (peer_note if peer_python is not None else f"unavailable ({peer_note})") + f"; {numpy_versions}")
    print()
    print(table(["case", "ours", "batchup", "raw numpy", "ratio", "target", "met?"], rows_out))
    print()
    spreads = []
    for lib, label in (("xmanager", "ours"), ("batchup", "batchup")):
        if not runs[lib]:
            continue
        parts = [f"{case} {_spread(merged(lib, case) or [1.0], rows, m_samples)}"
                 for case in ("in_order", "shuffled", "raw_slices", "raw_gather")]
        parts += [f"{case} {_spread(merged(lib, case) or [1.0], n_work_batches, 1.0)}"
                  for case in ("work_serial", "work_pool")]
        spreads.append(f"{label}: " + "; ".join(parts))
    print("spread over all timed epochs, worst..best (M samples/s; batches/s for work_*):")
    print("\n".join("  " + line for line in spreads))
    print("1 ms case, CPU time per batch (this process + its child processes, median over epochs) and the speedup "
          "that CPU use would allow on 2 idle cores with perfect overlap (2 x serial / pool; CPU accounting is "
          "itself unreliable on a loaded VM):")
    for lib, label in (("xmanager", "ours"), ("batchup", "batchup")):
        serial_cpu = [t for run in runs[lib] for t in run.get("work_serial_cpu", [])]
        pool_cpu = [t for run in runs[lib] for t in run.get("work_pool_cpu", [])]
        if serial_cpu and pool_cpu:
            a, b = statistics.median(serial_cpu), statistics.median(pool_cpu)
            print(f"  {label}: serial {a / n_work_batches * 1e6:.0f} us, pool {b / n_work_batches * 1e6:.0f} us "
                  f"-> at most {2 * a / b:.2f}x")
    for lib, label in (("xmanager", "ours"), ("batchup", "batchup")):
        pairs = sorted(a / b for run in runs[lib] for a, b in zip(run["work_serial"], run["work_pool"]))
        if pairs:
            print(f"{label} process pool / serial, per back-to-back pair: median {statistics.median(pairs):.2f}x, "
                  f"range {pairs[0]:.2f}..{pairs[-1]:.2f}x over {len(pairs)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
