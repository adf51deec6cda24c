"""Slurm executor: a 10,000-pset sweep submitted and refreshed, and 1,000 trivial tasks end to end vs submitit.

    python bench/slurm.py [--quick] [--peer-python PATH] [--tmpdir DIR] [--keep]

Starts its own single-node dev cluster (``xmanager.testing.slurm_cluster``, 16 CPUs,
``MaxArraySize=1001``, so arrays of 1,000 tasks) in the scratch folder, which is also the
data folder and metadata store (``XM_DATA_DIR``); needs Debian's slurm-wlm and root, else
it says so and exits 0. Three measurements, one run each:

1. Submission: ``add_sweep`` of N = 10,000 psets (``--quick``: 2,000) of ``/bin/true`` with
   ``Slurm(partition="debug", directives=("--hold",))``, so every task stays pending; the
   time until ``add_sweep`` returns (every array queued) and the ``sbatch`` calls
   (``Cluster.submit`` with ``test_only=False``; the ``--test-only`` checks are shown apart).
2. Refresh: ``experiment.refresh()`` of those N held tasks after the ``with`` block; the
   first call is the measured one (then the best of 3 more), with the Slurm commands it ran
   (``Cluster.run``, counted by argv[0]). The held arrays are then cancelled with ``scancel``.
3. End to end: M = 1,000 (``--quick``: 200) trivial tasks, timed from ``add_sweep`` to
   ``wait_until_complete()`` returning (``/bin/true``, plus a ``python_callable`` row for the
   like-for-like comparison with submitit's pickled functions), vs submitit's
   ``SlurmExecutor.map_array`` of a function returning its argument, timed from
   ``map_array`` until every ``job.result()`` returned. Both use ``--time=5``, partition
   ``debug`` and at most 16 tasks of the array at once (``%16``). No target: the ratio is
   reported. Our ``wait_until_complete()`` polls with a growing interval (0.2 s .. 5 s);
   submitit looks for each job's result file every second (it calls ``sacct`` too, which
   fails on the dev cluster, which has no accounting: it then relies on result files).

submitit runs in its own process under ``--peer-python`` or ``bench/.peer-submitit-venv``
(gitignored), created on first use with ``python -m venv`` and ``pip install submitit``;
when that is impossible the script prints ``peer: unavailable (reason)``. Every run is
checked outside the timing (statuses in our store, submitit's results).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any, Optional

from _common import scratch_dir, table
from _peer import MARKER, make_venv, package_version, ratio, run_script, verdict, write_script

TARGET_SUBMIT_S = 2.0
TARGET_SBATCH_CALLS = 10
TARGET_REFRESH_S = 1.0
SUBMIT_N, SUBMIT_N_QUICK = 10_000, 2_000
E2E_N, E2E_N_QUICK = 1_000, 200
CPUS = 16
PARALLELISM = 16
TIME_LIMIT_MIN = 5
TRUE = "/bin/true"
SUBMITIT_SPEC = "submitit"
VENV_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".peer-submitit-venv")

PEER_SCRIPT = textwrap.dedent(
    f'''\
    """submitit: map_array of a trivial function on the dev cluster, timed until every result is back."""
    import json
    import sys
    import time

    import submitit


    def trivial(x):
        return x


    def main():
        config = json.loads(sys.argv[1])
        n = config["n"]
        executor = submitit.SlurmExecutor(folder=config["folder"])
        executor.update_parameters(array_parallelism={PARALLELISM}, time={TIME_LIMIT_MIN}, partition="debug")
        start = time.perf_counter()
        jobs = executor.map_array(trivial, range(n))
        submitted = time.perf_counter() - start
        results = [job.result() for job in jobs]
        done = time.perf_counter() - start
        if results != list(range(n)):
            wrong = sum(1 for index, value in enumerate(results) if value != index)
            raise SystemExit(f"submitit: {{wrong}} of {{n}} results are wrong")
        arrays = sorted({{job.job_id.split("_")[0] for job in jobs}})
        print("{MARKER}" + json.dumps({{"submitted": submitted, "done": done, "arrays": len(arrays),
                                        "version": submitit.__version__}}), flush=True)


    if __name__ == "__main__":
        main()
    '''
)


# ---- the submitit peer ---------------------------------------------------------------------------
def _submitit_version(python: str) -> tuple[Optional[str], str]:
    return package_version(python, "submitit")


def find_submitit(peer_python: Optional[str]) -> tuple[Optional[str], str]:
    """(interpreter, description) of the peer, or (None, why it is unavailable).

    ``--peer-python`` wins; otherwise ``bench/.peer-submitit-venv``, created when missing or broken.
    """
    if peer_python:
        found = shutil.which(peer_python)
        if found is None:
            return None, f"no executable interpreter at {peer_python!r}"
        python = os.path.abspath(found)  # Keep venv symlinks unresolved.
        version, error = _submitit_version(python)
        return (python, f"submitit {version} under {python}") if version else (None, error)
    python = os.path.join(VENV_DIR, "bin", "python")
    if os.path.exists(python):
        version, _ = _submitit_version(python)
        if version:
            return python, f"submitit {version} under {python}"
    return make_venv(VENV_DIR, SUBMITIT_SPEC, _submitit_version, "submitit")


# ---- counting Slurm commands -----------------------------------------------------------------------
class Calls:
    """Slurm commands run while :func:`counting` is active."""

    def __init__(self) -> None:
        self.sbatch = 0  # Cluster.submit(test_only=False)
        self.test_only = 0  # Cluster.submit(test_only=True)
        self.job_ids: list[str] = []
        self.commands: collections.Counter[str] = collections.Counter()  # Cluster.run, by argv[0]

    def shown(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in sorted(self.commands.items())) or "none"


@contextlib.contextmanager
def counting() -> Iterator[Calls]:
    from xmanager.executors.slurm.cluster import Cluster

    calls = Calls()
    real_submit, real_run = Cluster.submit, Cluster.run

    def submit(self: Any, script: str, *, test_only: bool = False) -> str:
        answer = real_submit(self, script, test_only=test_only)
        if test_only:
            calls.test_only += 1
        else:
            calls.sbatch += 1
            calls.job_ids.append(answer)
        return answer

    def run(self: Any, command: Any, **kwargs: Any) -> str:
        calls.commands[os.path.basename(list(command)[0])] += 1
        return real_run(self, command, **kwargs)

    Cluster.submit, Cluster.run = submit, run  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        Cluster.submit, Cluster.run = real_submit, real_run  # type: ignore[method-assign]


def _slurm(*argv: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def cancel_and_wait(job_ids: list[str], timeout: float = 180.0) -> None:
    """scancel the arrays (by job id) and wait until Slurm no longer lists any of their tasks as open."""
    if not job_ids:
        return
    _slurm("scancel", *job_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _slurm("squeue", "-h", "-r", "-t", "PD,R,CG,CF", "-j", ",".join(job_ids), "-o", "%i").strip():
            return
        time.sleep(0.5)
    raise SystemExit(f"the cancelled arrays {', '.join(job_ids)} still have open tasks after {timeout:.0f} s")


# ---- ours ------------------------------------------------------------------------------------------
def trivial(x: int) -> dict[str, int]:
    return {"x": x}


def held_sweep(n: int, title: str) -> tuple[Any, float, Calls]:
    """add_sweep of n held /bin/true psets: (experiment, seconds until add_sweep returned, calls made)."""
    from xmanager import xm, xm_local

    params = xm.plist("a", range(n))
    with xm_local.create_experiment(title) as experiment:
        [executable] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=TRUE)])
        job = xm.Job(executable, xm_local.Slurm(partition="debug", directives=("--hold",)), args={})
        with counting() as calls:
            start = time.perf_counter()
            futures = experiment.add_sweep(job, params)
            elapsed = time.perf_counter() - start
    if len(futures) != n:
        raise SystemExit(f"ours: add_sweep of {n} psets returned {len(futures)} futures")
    return experiment, elapsed, calls


def timed_refresh(experiment: Any) -> tuple[float, Calls]:
    with counting() as calls:
        start = time.perf_counter()
        experiment.refresh()
        elapsed = time.perf_counter() - start
    return elapsed, calls


def end_to_end(n: int, callable_: bool, title: str) -> tuple[float, float]:
    """(seconds until add_sweep returned, seconds until wait_until_complete() returned), from add_sweep."""
    from xmanager import xm, xm_local

    params = xm.plist("x" if callable_ else "a", range(n))
    executor = xm_local.Slurm(partition="debug", time=str(TIME_LIMIT_MIN), array_parallelism=PARALLELISM)
    with xm_local.create_experiment(title) as experiment:
        spec = xm_local.Slurm.Spec()
        packageable = xm.python_callable(spec, trivial) if callable_ else xm.binary(executor_spec=spec, path=TRUE)
        [executable] = experiment.package([packageable])
        start = time.perf_counter()
        experiment.add_sweep(xm.Job(executable, executor, args={}), params)
        submitted = time.perf_counter() - start
    experiment.wait_until_complete()
    done = time.perf_counter() - start
    counts = experiment.status_counts
    if counts != {"completed": n}:
        raise SystemExit(f"ours ({title}): expected {n} completed units, found {counts}")
    if callable_:
        frame = experiment.to_dataframe()
        if sorted(frame["x"].tolist()) != list(range(n)):
            raise SystemExit(f"ours ({title}): the results do not match the psets")
    return submitted, done


# ---- main ------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{SUBMIT_N_QUICK:,} psets submitted and {E2E_N_QUICK:,} end to end")
    parser.add_argument("--peer-python", metavar="PATH",
                        help="interpreter with submitit installed (default: bench/.peer-submitit-venv, created if "
                             "missing)")
    parser.add_argument("--tmpdir", metavar="DIR",
                        help="parent of the temporary folder (default: system temp; the node must see it)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()

    from xmanager.testing import slurm_cluster

    missing = slurm_cluster.missing_programs()
    if missing:
        print(f"slurm: skipped: {', '.join(missing)} not found on PATH; {slurm_cluster.PACKAGE_HINT}")
        return 0
    if os.geteuid() != 0:
        print("slurm: skipped: the dev cluster's daemons run as root; run this benchmark as root")
        return 0
    n_submit = SUBMIT_N_QUICK if options.quick else SUBMIT_N
    n_e2e = E2E_N_QUICK if options.quick else E2E_N

    with scratch_dir("xm-bench-slurm-", options.keep, options.tmpdir, use_as_store=True) as work:
        saved_conf = os.environ.get("SLURM_CONF")
        cluster = slurm_cluster.start(os.path.join(work, "cluster"), cpus=CPUS)
        os.environ["SLURM_CONF"] = cluster.conf
        try:
            config = dict(map(str.strip, line.split("=", 1)) for line in _slurm("scontrol", "show", "config")
                          .splitlines() if "=" in line)
            max_array = int(config.get("MaxArraySize", "0"))
            slurm_version = config.get("SLURM_VERSION", "?")
            # Warm-up (untimed): imports, store creation, the Slurm modules; its arrays are cancelled.
            warm, _, warm_calls = held_sweep(20, "bench-slurm-warmup")
            cancel_and_wait(warm_calls.job_ids)

            # 1. Submission of n_submit held psets; 2. refreshes of them.
            experiment, submit_s, submit_calls = held_sweep(n_submit, "bench-slurm-submit")
            first_refresh, refresh_calls = timed_refresh(experiment)
            pending = experiment.status_counts
            more = [timed_refresh(experiment)[0] for _ in range(3)]
            cancel_and_wait(submit_calls.job_ids)
            if pending != {"pending": n_submit}:
                raise SystemExit(f"ours: after one refresh of {n_submit} held tasks the statuses are {pending}")

            # 3. End to end, ours (/bin/true, then python_callable), then submitit.
            e2e_true = end_to_end(n_e2e, False, "bench-slurm-e2e-true")
            e2e_call = end_to_end(n_e2e, True, "bench-slurm-e2e-callable")
            peer_python, peer_note = find_submitit(options.peer_python)
            peer: dict[str, Any] = {}
            if peer_python is not None:
                folder = os.path.join(work, "submitit", "%j")
                script = write_script(work, "peer_submitit.py", PEER_SCRIPT)
                result, error = run_script(peer_python, script, {"n": n_e2e, "folder": folder}, work, timeout=3600)
                if result is None:
                    peer_python, peer_note = None, f"peer run failed: {error}"
                else:
                    peer = result
                    peer_note = f"submitit {peer['version']}" + peer_note[peer_note.index(" under"):]
        finally:
            cluster.stop()
            if saved_conf is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved_conf

        arrays = math.ceil(n_submit / max(1, max_array - 1))
        print("slurm executor on a single-node dev cluster (slurm-wlm "
              f"{slurm_version}, {CPUS} CPUs declared, {os.cpu_count()} on the machine, "
              f"MaxArraySize={max_array}, no accounting: finished jobs come from the job completion file)")
        print(f"submission and refresh: add_sweep of {n_submit:,} held (--hold) psets of {TRUE}, "
              f"expected {arrays} arrays of <= {max_array - 1} tasks")
        print(f"end to end: {n_e2e:,} trivial tasks from add_sweep / map_array until all are done; "
              f"--time={TIME_LIMIT_MIN}, partition debug, %{PARALLELISM} on both sides; one run each")
        print(f"python {sys.version.split()[0]} at {sys.executable}; scratch, dev cluster and store in {work}")
        print("peer: " + (peer_note if peer_python is not None else f"unavailable ({peer_note})"))
        print()
        theirs_submit: Optional[float] = peer.get("submitted")
        theirs_done: Optional[float] = peer.get("done")
        na = "n/a"
        rows = [
            [f"submit {n_submit:,} psets: add_sweep returned (s)", f"{submit_s:.3f}", na, na,
             f"<= {TARGET_SUBMIT_S:g} s {verdict(submit_s, TARGET_SUBMIT_S, at_least=False)}"],
            [f"submit {n_submit:,} psets: sbatch calls (+ --test-only)",
             f"{submit_calls.sbatch} (+{submit_calls.test_only})", na, na,
             f"<= {TARGET_SBATCH_CALLS} {verdict(submit_calls.sbatch, TARGET_SBATCH_CALLS, at_least=False)}"],
            [f"refresh {n_submit:,} pending tasks, first call (s)", f"{first_refresh:.3f}", na, na,
             f"<= {TARGET_REFRESH_S:g} s {verdict(first_refresh, TARGET_REFRESH_S, at_least=False)}"],
            ["refresh: Slurm commands of the first call", refresh_calls.shown(), na, na, ""],
            ["refresh: best of 3 more calls (s)", f"{min(more):.3f}", na, na, ""],
            [f"end to end {n_e2e:,}: submitted (s)", f"{e2e_true[0]:.3f}",
             na if theirs_submit is None else f"{theirs_submit:.3f}", ratio(theirs_submit, e2e_true[0]), ""],
            [f"end to end {n_e2e:,} x {TRUE}: all done (s)", f"{e2e_true[1]:.2f}",
             na if theirs_done is None else f"{theirs_done:.2f}", ratio(theirs_done, e2e_true[1]), "(no target)"],
            [f"end to end {n_e2e:,} x python_callable: all done (s)", f"{e2e_call[1]:.2f}",
             na if theirs_done is None else f"{theirs_done:.2f}", ratio(theirs_done, e2e_call[1]), "(no target)"],
        ]
        print(table(["case", "ours", "submitit", "ratio submitit/ours", "target"], rows))
        print()
        print(f"targets: add_sweep of {n_submit:,} psets queued in <= {TARGET_SUBMIT_S:g} s with "
              f"<= {TARGET_SBATCH_CALLS} sbatch calls; one refresh of them in <= {TARGET_REFRESH_S:g} s"
              + (f" (--quick: {n_submit:,} psets instead of {SUBMIT_N:,})" if options.quick else ""))
        print(f"other Slurm commands during the timed add_sweep: {submit_calls.shown()}; "
              f"refreshes after the first: {', '.join(f'{t:.3f}' for t in more)} s; "
              f"python_callable submitted in {e2e_call[0]:.3f} s"
              + (f"; submitit used {peer['arrays']} array(s)" if peer else ""))
        return 0


if __name__ == "__main__":
    sys.exit(main())
