"""``SlurmBackend.recover``: the handles of arrays whose launcher died before storing them, rebuilt from
the batch folders and Slurm's own records, and batches that never reached ``sbatch`` kept from ever
running (a late ``sbatch`` of a dead launcher queues tasks that run nothing)."""

import json
import os
import subprocess
import time

import pytest
from xmanager import xm, xm_local
from xmanager.executors.api import BackendSettings, JobLaunch, JobRef, UnitLaunch
from xmanager.executors.slurm import backend as backend_module
from xmanager.executors.slurm import cluster as cluster_module
from xmanager.executors.slurm.task import VOID, VOID_MESSAGE
from xmanager.xm.status import Status
from xmanager.xm_local import registry

pytestmark = pytest.mark.integration

#: Marks that it ran (a file named after its value), then reports the value.
MARKER = """
import os, sys
from xmanager import xm
args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
open(os.path.join(args["marks"], args["value"]), "w").close()
xm.report(value=int(args["value"]))
"""


def _units(tmp_path, path, values, experiment_id=7, **executor):
    """Launch requests as the control plane makes them (work folders ``<experiment>/<unit>/<job>``)."""
    executable = registry.plugin("slurm").package(xm.binary(xm_local.Slurm.Spec(), path))
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    root = tmp_path / "jobs" / str(experiment_id)
    return [UnitLaunch(experiment_id, unit_id, (JobLaunch(
        job_name="job", executable=executable, executor=xm_local.Slurm(**executor),
        args=(f"--value={value}", f"--marks={marks}"), kwargs={}, env={}, work_dir=str(root / str(unit_id) / "job"),
    ),)) for unit_id, value in enumerate(values, start=1)]


def _refs(units):
    return [JobRef(unit.experiment_id, unit.work_unit_id, job.job_name, job.work_dir)
            for unit in units for job in unit.jobs]


def _backend():
    return backend_module.SlurmBackend(lambda update: None, BackendSettings())


def _batches(units):
    root = os.path.dirname(os.path.dirname(units[0].jobs[0].work_dir))
    return sorted(os.path.join(root, "slurm", name) for name in os.listdir(os.path.join(root, "slurm")))


def _wait_ended(backend, handles, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        updates = backend.refresh(handles)
        if len(updates) == len(handles) and all(update.status.is_terminal for update in updates):
            return updates
        assert time.monotonic() < deadline, updates
        time.sleep(0.2)


def test_recover_rebuilds_the_handles_launch_returned(slurm_cluster, script, tmp_path):
    # Held: no task starts (a task writes the job id file too) until the recovery was checked.
    units = _units(tmp_path, script(MARKER), range(5), max_array_size=2, directives=("--hold",))
    launched = _backend().launch(units)
    assert len(_batches(units)) == 3  # 5 units, 2 tasks per array.
    assert _backend().recover(_refs(units)) == launched  # From each batch's job_id file.
    for folder in _batches(units):  # Killed between sbatch and writing the job id: found by name.
        os.remove(os.path.join(folder, backend_module.JOB_ID_FILE))
    assert _backend().recover(_refs(units)) == launched
    assert not any(os.path.exists(os.path.join(folder, VOID)) for folder in _batches(units))
    subprocess.run(["scontrol", "release", ",".join(sorted({h.data["job_id"] for h in launched}))], check=True,
                   timeout=30)
    updates = _wait_ended(_backend(), launched)
    assert all(os.path.exists(os.path.join(folder, backend_module.JOB_ID_FILE)) for folder in _batches(units))
    assert [(update.status, update.results) for update in updates] == [
        (Status.COMPLETED, {"value": value}) for value in range(5)]


def test_jobs_never_submitted_recover_as_none(slurm_cluster, script, tmp_path):
    units = _units(tmp_path, script(MARKER), range(2))
    other = JobRef(7, 99, "job", str(tmp_path / "jobs" / "7" / "99" / "job"))  # Its unit reached no batch.
    assert _backend().recover([other]) == [None]  # No batch folder at all.
    _backend().launch(units)
    assert _backend().recover([*_refs(units), other])[2] is None


def test_a_batch_whose_sbatch_came_too_late_runs_nothing(slurm_cluster, script, tmp_path, monkeypatch):
    """The launcher died with its ``sbatch`` in flight: another process found no job of the batch's name,
    so it answered None (the units fail there) and voided the batch; the late ``sbatch`` then queues the
    array, whose tasks run nothing and record why."""
    units = _units(tmp_path, script(MARKER), range(3))
    scripts = []

    def dies_before_sbatch(self, text, *, test_only=False):
        if test_only:
            return ""
        scripts.append(text)
        raise KeyboardInterrupt  # Stands for the launcher's death: nothing after this line runs.

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(cluster_module.Cluster, "submit", dies_before_sbatch)
        _backend().launch(units)
    [folder] = _batches(units)
    assert _backend().recover(_refs(units)) == [None, None, None]
    assert os.path.exists(os.path.join(folder, VOID))

    job_id = subprocess.run(["sbatch", "--parsable"], input=scripts[0], capture_output=True, text=True,
                            check=True, timeout=30).stdout.strip().split(";")[0]
    recovered = _backend().recover(_refs(units))  # Asked again later: now the job exists, by its name.
    assert [handle.data["job_id"] if handle else None for handle in recovered] == [job_id] * 3
    updates = _wait_ended(_backend(), recovered)
    assert {(update.status, update.message) for update in updates} == {(Status.FAILED, VOID_MESSAGE)}
    assert os.listdir(tmp_path / "marks") == []  # No job ran.


def test_the_array_name_is_found_in_the_completion_file_once_squeue_forgot_it(slurm_cluster, script, tmp_path,
                                                                                  monkeypatch):
    units = _units(tmp_path, script(MARKER), range(2))
    launched = _backend().launch(units)
    _wait_ended(_backend(), launched)
    for folder in _batches(units):
        os.remove(os.path.join(folder, backend_module.JOB_ID_FILE))
    info = json.loads(open(os.path.join(_batches(units)[0], backend_module.BATCH_FILE)).read())
    deadline = time.monotonic() + 30
    while not cluster_module._named_in_jobcomp(cluster_module.Cluster().jobcomp_file, {info["name"]}):
        assert time.monotonic() < deadline, "the array never reached the job completion file"
        time.sleep(0.2)
    real_run = cluster_module.Cluster.run

    def no_squeue(self, command, **options):  # MinJobAge is 10 minutes here: as if squeue had forgotten.
        return "" if command[0] == "squeue" else real_run(self, command, **options)

    monkeypatch.setattr(cluster_module.Cluster, "run", no_squeue)
    assert _backend().recover(_refs(units)) == launched


#: A launch script whose ``launch`` holds its handles until ``<signals>/release`` exists (a long submission),
#: then stays alive until ``<signals>/done``: units are read meanwhile by a process that must pick the
#: handles up once they are stored.
SLOW_LAUNCHER = """
import os, time
from xmanager import xm, xm_local
from xmanager.executors.slurm import backend as backend_module

signals = os.environ["SIGNALS"]

def wait_for(name):
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(signals, name)) and time.monotonic() < deadline:
        time.sleep(0.05)

launch = backend_module.SlurmBackend.launch

def slow_launch(self, units):
    handles = launch(self, units)
    open(os.path.join(signals, "queued"), "w").close()
    wait_for("release")
    return handles

backend_module.SlurmBackend.launch = slow_launch

def main(argv):
    with xm_local.create_experiment("slow submission") as experiment:
        print("EXPERIMENT", experiment.experiment_id, flush=True)
        [executable] = experiment.package([xm.binary(xm_local.Slurm.Spec(), os.environ["PROGRAM"])])
        experiment.add_sweep(xm.Job(executable, xm_local.Slurm()),
                             [{"value": value, "marks": os.environ["MARKS"]} for value in range(3)])
    wait_for("done")
"""

#: Reads the experiment while its launcher still holds the handles, says so, then waits for every unit.
FOLLOWER = """
import os, sys
from xmanager import xm_local
experiment = xm_local.get_experiment(sys.argv[1])
experiment.refresh()
open(os.path.join(sys.argv[2], "loaded"), "w").close()
experiment.wait_until_complete()
print(sorted(unit.results["value"] for unit in experiment.work_units.values()))
"""


def test_a_follower_picks_up_handles_its_live_launcher_stores_after_it_read_the_jobs(slurm_cluster, script,
                                                                                          tmp_path):
    import sys

    signals, marks = tmp_path / "signals", tmp_path / "marks"
    signals.mkdir()
    marks.mkdir()
    env = {**os.environ, "SIGNALS": str(signals), "MARKS": str(marks), "PROGRAM": script(MARKER)}
    launcher_script = tmp_path / "launcher.py"
    launcher_script.write_text(SLOW_LAUNCHER)
    xmanager = os.path.join(os.path.dirname(sys.executable), "xmanager")
    launcher = subprocess.Popen([xmanager, "launch", str(launcher_script)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
    follower = None
    try:
        assert launcher.stdout is not None
        experiment_id = next(line.split()[1] for line in launcher.stdout if line.startswith("EXPERIMENT "))
        deadline = time.monotonic() + 60
        while not (signals / "queued").exists():
            assert time.monotonic() < deadline and launcher.poll() is None, launcher.stderr and launcher.stderr.read()
            time.sleep(0.05)
        follower = subprocess.Popen([sys.executable, "-c", FOLLOWER, experiment_id, str(signals)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        while not (signals / "loaded").exists():  # It read the jobs without handles.
            assert time.monotonic() < deadline and follower.poll() is None, follower.communicate()
            time.sleep(0.05)
        (signals / "release").touch()  # The launcher stores the handles now, and stays alive.
        out, err = follower.communicate(timeout=120)
        assert follower.returncode == 0, err
        assert out.split("\n")[0] == "[0, 1, 2]"
    finally:
        (signals / "release").touch()
        (signals / "done").touch()
        if follower is not None and follower.poll() is None:
            follower.kill()
        launcher.communicate(timeout=60)
    assert sorted(os.listdir(marks)) == ["0", "1", "2"]
