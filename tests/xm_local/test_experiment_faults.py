"""The control plane under faults: NUL bytes refused early, cancellation as a state in the store, and
the units of a launcher killed with SIGKILL settled by the next process that opens the experiment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
from xmanager import xm, xm_local
from xmanager.xm_local.store.driver import sqlite_path

TIMEOUT_S = 60


def _sleeper(experiment):
    [executable] = experiment.package([xm.binary(xm_local.Local.Spec(), "/bin/sleep")])
    return executable


def test_nul_bytes_are_refused_at_add_naming_the_key():
    with xm_local.create_experiment("nul", max_parallel=1) as experiment:
        executable = _sleeper(experiment)
        experiment.add(xm.Job(executable, xm_local.Local(), args=["0"]))
        with pytest.raises(ValueError, match=r"arg 'name' of work unit 2 holds a NUL byte"):
            experiment.add(xm.Job(executable, xm_local.Local(), args={"name": "a\0b"}))
        with pytest.raises(ValueError, match=r"env var 'E' of work unit 2 holds a NUL byte"):
            experiment.add(xm.Job(executable, xm_local.Local(), args=["0"], env_vars={"E": "\0"}))
        with pytest.raises(ValueError, match=r"arg 'k' of work unit 3 holds a NUL byte"):
            experiment.add_sweep(xm.Job(executable, xm_local.Local()), [{"k": "0"}, {"k": "1\0"}])
    assert xm_local.get_experiment(experiment.experiment_id).status_counts == {"completed": 1}  # Nothing else.


def test_a_cancelled_experiment_starts_none_of_its_units_even_those_added_later():
    with xm_local.create_experiment("cancel-state", max_parallel=1) as experiment:
        executable = _sleeper(experiment)
        experiment.add(xm.Job(executable, xm_local.Local(), args=["30"]))
        experiment.add(xm.Job(executable, xm_local.Local(), args=["30"]))
        deadline = time.monotonic() + TIMEOUT_S
        while not experiment.work_units[1].get_status().is_active or experiment.work_units[1].jobs["sleep"].handle is None \
                or "pid" not in experiment.work_units[1].jobs["sleep"].handle.data:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        experiment._store.flush()
        assert xm_local.get_experiment(experiment.experiment_id).cancel() == 2  # As another process would.
        experiment.add(xm.Job(executable, xm_local.Local(), args=["30"]))  # Added after the cancel.
    statuses = {unit_id: unit.get_status() for unit_id, unit in
                xm_local.get_experiment(experiment.experiment_id).work_units.items()}
    assert [status.status.value for status in statuses.values()] == ["cancelled"] * 3
    assert "its experiment was cancelled" in statuses[3].message
    units = xm_local.get_experiment(experiment.experiment_id).work_units
    assert units[2].jobs["sleep"].handle is None or "pid" not in units[2].jobs["sleep"].handle.data
    assert units[3].jobs["sleep"].handle is None or "pid" not in units[3].jobs["sleep"].handle.data


KILLED = """
import sys
from xmanager import xm, xm_local
from xmanager.xm_local.store.driver import sqlite_path
with xm_local.create_experiment('killed', max_parallel=1) as e:
    [waits, quick] = e.package([xm.binary(xm_local.Local.Spec(), sys.argv[1]), xm.binary(xm_local.Local.Spec(), '/bin/true')])
    e.add(xm.Job(waits, xm_local.Local(experimental_stream_output=False)))
    e.add(xm.Job(quick, xm_local.Local()))
    e.add(xm.Job(quick, xm_local.Local()))
    print(e.experiment_id, flush=True)
"""

WAITS = """
import os, sys, time
from xmanager import xm
go = os.path.join(os.path.dirname(os.environ["XM_RESULTS_PATH"]), "go")
open(go + ".started", "w").close()
while not os.path.exists(go):
    time.sleep(0.02)
xm.report(answer=42)
"""


def test_units_of_a_killed_launcher_are_settled_adopted_and_resumed(tmp_path, python, script):
    launcher_script = tmp_path / "killed.py"
    launcher_script.write_text(KILLED)
    waits = script(WAITS, name="waits.py")
    launcher = subprocess.Popen([python, str(launcher_script), waits], stdout=subprocess.PIPE, text=True)
    try:
        experiment_id = int(launcher.stdout.readline())
        jobs = os.path.join(os.environ["XM_DATA_DIR"], "experiments", str(experiment_id))
        started = os.path.join(jobs, "1", "waits_py", "go.started")
        deadline = time.monotonic() + TIMEOUT_S
        while not os.path.exists(started):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        launcher.send_signal(signal.SIGKILL)
    finally:
        launcher.kill()
        launcher.wait(timeout=TIMEOUT_S)

    opened = xm_local.get_experiment(experiment_id)  # Settles: 1 runs on (adopted), 2 and 3 never will.
    statuses = {unit_id: unit.get_status() for unit_id, unit in opened.work_units.items()}
    assert statuses[1].status.value == "running"
    assert [(statuses[u].status.value, statuses[u].message) for u in (2, 3)] == [("failed", "launcher died")] * 2
    assert xm_local.list_experiments()[0].status_counts == {"running": 1, "failed": 2}
    xmanager = os.path.join(os.path.dirname(python), "xmanager")
    show = subprocess.run([xmanager, "show", str(experiment_id)], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert show.returncode == 0 and "launcher died" in show.stdout  # It settles, and does not wait for unit 1.

    open(os.path.join(jobs, "1", "waits_py", "go"), "w").close()
    with pytest.raises(xm.ExperimentFailedError, match="launcher died"):  # Follows the adopted unit to its end.
        opened.wait_until_complete()
    unit = opened.work_units[1]
    assert unit.get_status().is_completed and unit.results == {"answer": 42}
    assert xm_local.get_experiment(experiment_id).status_counts == {"completed": 1, "failed": 2}


def test_a_unit_whose_jobs_ended_but_whose_own_end_was_not_committed_is_settled_from_its_jobs():
    """A launcher killed between two commits of its store writer leaves a unit ``running`` whose jobs
    all ended: whoever settles it records the unit's end from its jobs' (else it stays unfinished
    for ever and a resumed sweep runs its pset again)."""
    with xm_local.create_experiment("torn", max_parallel=1) as experiment:
        [true] = experiment.package([xm.binary(xm_local.Local.Spec(), "/bin/true")])
        experiment.add_sweep(xm.Job(true, xm_local.Local()), [{"n": 1}])
    experiment_id = experiment.experiment_id
    dead = subprocess.Popen(["/bin/true"])
    dead.wait()
    store = experiment._store
    store.flush()
    import sqlite3

    path = sqlite_path(store.url)
    assert path is not None
    with sqlite3.connect(path) as conn:  # The state a kill between the job's and the unit's commit leaves.
        conn.execute("UPDATE work_units SET status = 'running', ended_at = NULL, launcher = ? "
                     "WHERE experiment_id = ?", (f"{socket.gethostname()} {dead.pid} 1", experiment_id))
    assert xm_local.get_experiment(experiment_id).status_counts == {"completed": 1}
    assert xm_local.get_experiment(experiment_id)._store.completed_pset_hashes(experiment_id)
