"""VE kernel sweep: N units through the VectorEngine executor vs N direct VEO API calls.

    python bench/ve_sweep.py [--n 1000] [--repeat 3] [--contexts 1] [--keep]

Both sides run the same gcc-built kernel (``scale``: x[i] *= alpha over 64 doubles) on
the host backend, each in isolated mode (a worker process, the executor's default) and
in-process mode, and both do the same staging per call: alloc_mem, async write, call,
async read, free_mem, wait.

"executor" times create_experiment's ``with`` block from ``add_sweep`` of N psets to
leaving the block (every unit has ended, its results are in the SQLite store); the
kernel is packaged (compiled) before the clock starts, as a launch script would. "direct"
times a plain loop over the VEO API on one open proc and context. The difference per unit
is the executor's own overhead: creating the units and their store rows (the control
plane's share, shown as the time until ``add_sweep`` returned, which includes binding and
checking every unit's args), queueing, status updates and result rows in the store.
Each side runs --repeat times (interleaved); the median is reported. Target: at most
0.5 ms of overhead per unit (``launch_overhead.py`` holds local processes to 0.3 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import scratch_dir, table  # noqa: E402

SOURCE = "int scale(double *x, int n, double alpha) { for (int i = 0; i < n; i++) x[i] *= alpha; return n; }\n"
ARGS = ("x: double *", "n: int", "alpha: double")
SIZE = 64
TARGET_OVERHEAD_US = 500.0


def direct(n: int, library: str, isolated: bool) -> float:
    from xmanager.executors.vector_engine import veo_api as veo

    proc = veo.VeoProc(0, backend="host", isolated=isolated)
    try:
        function = proc.load_library(library).find_function("scale")
        function.args_type("double *", "int", "double")
        function.ret_type("int")
        ctx = proc.open_context()
        data = np.arange(float(SIZE))
        start = time.perf_counter()
        for index in range(n):
            host = data.copy()
            addr = proc.alloc_mem(host.nbytes)
            write = ctx.async_write_mem(addr, host, host.nbytes)
            request = function(ctx, addr, SIZE, float(index))
            read = ctx.async_read_mem(host, addr, host.nbytes)
            write.wait_result()
            assert request.wait_result() == SIZE
            read.wait_result()
            proc.free_mem(addr)
            host.tolist()  # The executor turns small outputs into lists for the store.
        return time.perf_counter() - start
    finally:
        proc.proc_destroy()


def through_executor(n: int, build_dir: str, isolated: bool, contexts: int) -> tuple[float, float]:
    """(seconds until add_sweep returned, seconds until every result was stored)."""
    from xmanager import xm, xm_local

    spec = xm_local.VectorEngineSpec(backend="host", build_dir=build_dir)
    with xm_local.create_experiment("ve bench") as experiment:
        [kernel] = experiment.package([xm.ve_kernel(spec, "scale", ARGS, {"scale": SOURCE})])
        executor = xm_local.VectorEngine(backend="host", isolated=isolated, contexts=contexts)
        job = xm.Job(kernel, executor, args={"x": xm.VeBuffer(np.arange(float(SIZE)), intent="inout"), "n": SIZE})
        start = time.perf_counter()
        experiment.add_sweep(job, [{"alpha": float(index)} for index in range(n)])
        added = time.perf_counter() - start
    elapsed = time.perf_counter() - start
    counts = experiment.status_counts
    if counts != {"completed": n}:
        raise RuntimeError(f"not every unit completed: {counts}")
    return added, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="units (and direct calls)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--contexts", type=int, default=1, help="the executor's contexts")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    options = parser.parse_args()
    with scratch_dir("xm-bench-ve-", options.keep, use_as_store=True) as work:
        from xmanager.executors.vector_engine.build import build_library

        build_dir = os.path.join(work, "ve-build")
        library = build_library(sources={"scale": SOURCE}, language="c", backend="host", build_dir=build_dir)
        rows = []
        for isolated in (True, False):
            through_executor(20, build_dir, isolated, options.contexts)  # Warm-up: imports, store, worker start.
            direct(20, library, isolated)
            ours, adds, bare = [], [], []
            for _ in range(options.repeat):
                added, total = through_executor(options.n, build_dir, isolated, options.contexts)
                ours.append(total)
                adds.append(added)
                bare.append(direct(options.n, library, isolated))
            ours_s, bare_s, add_s = statistics.median(ours), statistics.median(bare), statistics.median(adds)
            overhead_us = (ours_s - bare_s) / options.n * 1e6
            rows.append([
                "isolated worker" if isolated else "in-process",
                f"{ours_s:.3f}", f"{ours_s / options.n * 1e6:.0f}", f"{add_s / options.n * 1e6:.0f}",
                f"{bare_s:.3f}", f"{bare_s / options.n * 1e6:.0f}",
                f"{overhead_us:.0f}", f"{ours_s / bare_s:.1f}x",
                "PASS" if overhead_us <= TARGET_OVERHEAD_US else "FAIL",
            ])
    print(f"{options.n} units of scale(x[{SIZE}], n, alpha) on the host backend, contexts={options.contexts}, "
          f"median of {options.repeat}")
    print(table(
        ["mode", "executor s", "us/unit", "of which add_sweep us/unit", "direct s", "us/call", "overhead us/unit",
         "ratio",
         f"target <= {TARGET_OVERHEAD_US:.0f} us"],
        rows,
    ))


if __name__ == "__main__":
    main()
