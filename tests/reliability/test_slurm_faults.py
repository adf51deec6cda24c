"""Faults on a real Slurm dev cluster: the launcher killed mid-sweep, and a cancel from another process.

Slurm is a detached executor: its array tasks run on in the cluster queue whatever happens to the
process that submitted them. So a ``kill -9`` of ``xmanager launch`` must leave an experiment that a
fresh process can follow to its end and resume without running a pset twice, and ``xmanager cancel``
from another process must stop everything: pending tasks (more tasks than the node has CPUs),
running ones, jobs that ignore SIGTERM and jobs whose children moved to a session of their own.

Every job writes what it did to files (``S <value>`` when it starts, ``D <value>`` when it ends), so
the test counts runs on the filesystem, independently of the store.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest
from marked_processes import marked
from xmanager.xm_local import config
from xmanager.xm_local.store import Store

pytestmark = pytest.mark.integration

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")
TERMINAL = {"completed", "failed", "cancelled"}

#: A sweep job: logs its start and its end (one line each, O_APPEND), and reports its value.
SWEEP_JOB = """\
import os, sys, time
from xmanager import xm

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
def log(line):
    fd = os.open(args["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)
log("S " + args["value"])
time.sleep(0.2)
xm.report(value=int(args["value"]))
log("D " + args["value"])
"""

#: A launch script: a new sweep (or, with RESUME=<id>, the rest of that experiment's sweep).
LAUNCHER = """\
import json, os
from xmanager import xm, xm_local

def main(argv):
    del argv
    psets = json.loads(os.environ["SWEEP_PSETS"])
    resume = os.environ.get("RESUME")
    experiment = xm_local.get_experiment(resume) if resume else xm_local.create_experiment("slurm kill")
    with experiment:
        print("EXPERIMENT", experiment.experiment_id, flush=True)
        [executable] = experiment.package([xm.binary(xm_local.Slurm.Spec(), os.environ["SWEEP_PROGRAM"])])
        job = xm.Job(executable, xm_local.Slurm(max_array_size=int(os.environ["ARRAY_SIZE"])))
        experiment.add_sweep(job, psets, skip_completed=bool(resume))
"""

#: Follows an experiment from a fresh process until every unit has ended.
DRAIN = """\
import sys
from xmanager import xm_local

experiment = xm_local.get_experiment(sys.argv[1])
try:
    experiment.wait_until_complete()
except Exception as error:  # Failed units: the store says which, with their reasons.
    print(f"{type(error).__name__}: {error}", file=sys.stderr)
"""

#: A job for the cancel case. kinds: plain, ignore (SIGTERM ignored), setsid (a child in its own
#: session, ignoring SIGTERM), daemon (a grandchild in its own session, its parent gone).
CANCEL_JOB = """\
import os, signal, subprocess, sys, time

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
kind, signals = args["kind"], args["signals"]
role = args.get("role", "job")
if role == "job":
    with open(os.path.join(signals, args["value"] + ".started"), "w") as file:
        file.write(f"{time.time()} {os.getpid()}")
    if kind in ("ignore", "setsid", "daemon"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if kind in ("setsid", "daemon"):
        subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--role=" + ("child" if kind == "setsid" else "fork")])
elif role == "fork":  # Starts the grandchild in a new session and leaves it behind.
    os.setsid()
    subprocess.Popen([sys.executable, __file__, *sys.argv[1:-1], "--role=child"])
    sys.exit(0)
else:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
deadline = time.time() + 240  # Bounded even if nothing stops it.
while time.time() < deadline and not os.path.exists(os.path.join(signals, "release")):
    time.sleep(0.1)
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from slurm_support import start_or_skip

    cluster = start_or_skip(tmp_path_factory, "reliability-slurm", cpus=4)
    yield cluster
    cluster.stop()


def _program(folder, name: str, body: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as file:
        file.write(f"#!{sys.executable}\n{body}")
    os.chmod(path, 0o755)
    return path


def _store() -> Store:
    return Store(config.database_url())


def _launch(folder, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Starts ``xmanager launch`` of the sweep launcher; returns it once it printed its experiment id."""
    script = os.path.join(folder, "launcher.py")
    with open(script, "w") as file:
        file.write(LAUNCHER)
    process = subprocess.Popen([XMANAGER, "launch", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **env})
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("EXPERIMENT "):
            return process, line.split()[1]
    _, stderr = process.communicate(timeout=60)
    raise AssertionError(f"the launch script printed no experiment id: {stderr}")


def _submitted_without_a_record(experiment_id: str) -> list[int]:
    """Unfinished units of a Slurm job that has no stored handle."""
    store = _store()
    open_units = {unit.work_unit_id for unit in store.units(int(experiment_id)) if unit.status not in TERMINAL}
    return sorted({job.work_unit_id for job in store.jobs(int(experiment_id))
                   if job.handle is None and job.work_unit_id in open_units}
                  | (open_units - {job.work_unit_id for job in store.jobs(int(experiment_id))}))


def _drain(env: dict[str, str], experiment_id: str, timeout: float = 90) -> str:
    """Follows the experiment in a fresh process until every unit ended (or ``timeout``: then says so)."""
    try:
        result = subprocess.run([sys.executable, "-c", DRAIN, experiment_id], capture_output=True, text=True,
                                env={**os.environ, **env}, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"wait_until_complete() had not returned after {timeout:.0f} s"
    return result.stderr


def _squeue(env: dict[str, str], experiment_id: str) -> list[str]:
    """Tasks of the experiment's arrays (named ``xm-<experiment>-<batch>``) that Slurm still holds
    (pending, running or completing)."""
    result = subprocess.run(["squeue", "-h", "-r", "-o", "%j %i %T"], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=30)
    prefix = f"xm-{experiment_id}-"
    return [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith(prefix)]


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


# ---- kill -9 of the launcher mid-sweep -----------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_of_the_launcher_mid_sweep(slurm, tmp_path, seed, figures):
    rng = random.Random(seed)
    count = rng.randint(40, 60)
    log = str(tmp_path / "runs.log")
    program = _program(tmp_path, "sweep_job.py", SWEEP_JOB)
    psets = [{"value": value, "log": log} for value in range(count)]
    env = {**slurm.env, "SWEEP_PSETS": json.dumps(psets), "SWEEP_PROGRAM": program, "ARRAY_SIZE": "3"}
    # From the experiment's creation to the last sbatch of the sweep (6 units per array) and after.
    kill_after = rng.uniform(0.0, 0.2)

    launcher, experiment_id = _launch(tmp_path, env)
    time.sleep(kill_after)
    launcher.kill()
    launcher.communicate(timeout=30)
    # Killed during the submission, units are queued without stored handles: the drain recovers them.
    during_submission = bool(_submitted_without_a_record(experiment_id))
    drained = _drain(env, experiment_id)
    resumer = subprocess.run([XMANAGER, "launch", str(tmp_path / "launcher.py")], capture_output=True, text=True,
                             env={**os.environ, **env, "RESUME": experiment_id}, timeout=120)
    assert resumer.returncode == 0, resumer.stderr
    resumed = _drain(env, experiment_id)
    assert _wait(lambda: not _squeue(env, experiment_id), 60), "Slurm still runs tasks of the experiment"

    units = _store().units(int(experiment_id))
    runs = open(log).read().split() if os.path.exists(log) else []
    starts = {value: 0 for value in range(count)}
    ends = {value: 0 for value in range(count)}
    for kind, value in zip(runs[0::2], runs[1::2]):
        (starts if kind == "S" else ends)[int(value)] += 1
    non_terminal = [unit.work_unit_id for unit in units if unit.status not in TERMINAL]
    silent_failures = [unit.work_unit_id for unit in units if unit.status == "failed" and not unit.message]
    completed: dict[int, int] = {}
    for unit in units:
        if unit.status == "completed":
            completed[unit.args["value"]] = completed.get(unit.args["value"], 0) + 1
    wrong = sorted(value for value in range(count)
                   if starts[value] != 1 or ends[value] != 1 or completed.get(value) != 1)
    lost = len(set(wrong)) + len(non_terminal) + len(silent_failures)
    figures.add("kill -9 of `xmanager launch` mid-sweep, Slurm", tried=1, lost=lost)
    detail = {value: (starts[value], ends[value], completed.get(value, 0)) for value in wrong}
    assert not non_terminal, f"units never ended: {non_terminal}\n{drained}\n{resumed}"
    assert not silent_failures, f"units failed without a reason: {silent_failures}"
    assert not wrong, (f"killed after {kill_after:.2f} s (during the submission: {during_submission}): psets not "
                       "run and completed exactly once "
                       f"(value: starts, ends, completed rows): {detail}\n{drained}\n{resumed}")


# ---- cancel from a second process ----------------------------------------------------------------------
def test_cancel_from_a_second_process_stops_pending_running_and_stubborn_tasks(slurm, tmp_path, figures):
    signals = tmp_path / "signals"
    signals.mkdir()
    marker = f"xm-cancel-marker-{os.getpid()}-{time.time_ns()}"
    program = _program(tmp_path, "cancel_job.py", CANCEL_JOB)
    # 4 CPUs: the first four run (one of each kind), the other six wait in the queue.
    kinds = ["ignore", "setsid", "daemon", "plain", "ignore", "setsid", "daemon", "plain", "ignore", "plain"]
    psets = [{"value": value, "kind": kind, "signals": str(signals), "marker": marker}
             for value, kind in enumerate(kinds)]
    env = {**slurm.env, "SWEEP_PSETS": json.dumps(psets), "SWEEP_PROGRAM": program, "ARRAY_SIZE": "100"}
    launcher, experiment_id = _launch(tmp_path, env)
    try:
        started = lambda: sorted(int(path.split(".")[0]) for path in os.listdir(signals) if path.endswith(".started"))  # noqa: E731
        assert _wait(lambda: len(started()) == 4 and len(marked(marker, environ=False)) >= 6, 60), (
            f"the first four tasks did not start: {started()}, {_squeue(env, experiment_id)}")
        queue = _squeue(env, experiment_id)
        assert sum("PENDING" in line for line in queue) == 6, queue

        cancel = subprocess.run([XMANAGER, "cancel", experiment_id], capture_output=True, text=True,
                                env={**os.environ, **env}, timeout=120)
        assert cancel.returncode == 0, cancel.stderr
        assert f"cancelled {len(kinds)} work unit(s)" in cancel.stdout

        stopped = _wait(lambda: not _squeue(env, experiment_id) and not marked(marker, environ=False), 40)
        time.sleep(1.0)  # Anything Slurm would still start after the cancel would show by now.
        left_in_queue, left_processes = _squeue(env, experiment_id), marked(marker, environ=False)
        rows = {unit.work_unit_id: unit.status for unit in _store().units(int(experiment_id))}
    finally:
        (signals / "release").touch()  # Whatever was left behind ends within a second.
        launcher.communicate(timeout=120)
    late = [value for value in started() if value >= 4]
    not_cancelled = {unit_id: status for unit_id, status in rows.items() if status != "cancelled"}
    lost = len(left_in_queue) + len(left_processes) + len(late) + len(not_cancelled)
    figures.add("cancel from a second process, Slurm (pending, running, ignoring SIGTERM, setsid children)",
                tried=len(kinds), lost=lost)
    assert stopped, f"left after 40 s: tasks {left_in_queue}, processes {left_processes}"
    assert not late, f"tasks started after the cancel: {late}"
    assert not not_cancelled, not_cancelled
