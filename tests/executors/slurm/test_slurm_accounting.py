"""Final states of jobs Slurm no longer queues: from sacct (slurmdbd + MariaDB) or, without
accounting, from the job completion file. Units are cancelled behind the launcher's back (a plain
``scancel``), so no exit record exists and only Slurm can say what happened."""

import json
import os
import subprocess
import time

import pytest
from slurm_support import start_or_skip
from xmanager import xm, xm_local
from xmanager.executors.slurm import cluster as cluster_module

pytestmark = pytest.mark.integration

SLEEPER = """
import sys, time
time.sleep(float(sys.argv[1].split('=')[1]))
"""


@pytest.fixture(scope="module")
def _accounting_daemons(tmp_path_factory):
    cluster = start_or_skip(tmp_path_factory, "slurm-acct", accounting=True, min_job_age=2)
    yield cluster
    cluster.stop()


@pytest.fixture
def accounting_cluster(_accounting_daemons, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", _accounting_daemons.conf)
    return _accounting_daemons


def _launch_and_scancel(script):
    path = script(SLEEPER)
    with xm_local.create_experiment("cancelled behind our back") as experiment:
        [exe] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=path)])
        experiment.add_sweep(xm.Job(exe, xm_local.Slurm()), xm.plist("seconds", [300, 300]))
    job_ids = {row.handle["data"]["job_id"] for row in experiment._store.jobs(experiment.experiment_id)}
    subprocess.run(["scancel", *job_ids], check=True, env=os.environ)
    return experiment, job_ids


def test_sacct_gives_final_states_once_squeue_forgot_the_jobs(accounting_cluster, script, monkeypatch):
    experiment, job_ids = _launch_and_scancel(script)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and cluster_module.Cluster().queue(job_ids):
        time.sleep(1)  # MinJobAge=2: squeue soon forgets them.
    assert cluster_module.Cluster().queue(job_ids) == {}
    asked = []
    real = cluster_module.Cluster._sacct

    def counting(self, ids):
        asked.append(list(ids))
        return real(self, ids)

    monkeypatch.setattr(cluster_module.Cluster, "_sacct", counting)
    loaded = xm_local.get_experiment(experiment.experiment_id)
    loaded.refresh()
    assert asked == [sorted(job_ids)]
    assert xm_local.get_experiment(experiment.experiment_id).status_counts == {"cancelled": 2}
    messages = set(loaded.to_dataframe()["_message"])
    assert all("CANCELLED" in message for message in messages)


def test_without_accounting_the_completion_file_gives_final_states(slurm_cluster, script, monkeypatch):
    assert not cluster_module.Cluster().has_accounting
    experiment, job_ids = _launch_and_scancel(script)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = cluster_module.Cluster().queue(job_ids)
        if states and all(state.state == "CANCELLED" for state in states.values()):
            break
        time.sleep(0.2)
    # MinJobAge is 10 minutes on this cluster: as if squeue had forgotten the jobs already.
    monkeypatch.setattr(cluster_module.Cluster, "queue", lambda self, ids: {})
    loaded = xm_local.get_experiment(experiment.experiment_id)
    loaded.refresh()
    assert xm_local.get_experiment(experiment.experiment_id).status_counts == {"cancelled": 2}


def test_sacct_finds_an_array_by_name_once_squeue_forgot_it(accounting_cluster, script, tmp_path):
    """``recover`` of an array whose job id file is missing (the launcher died right after sbatch), once
    squeue no longer lists it: its name is looked up in sacct."""
    from xmanager.executors.api import BackendSettings, JobLaunch, JobRef, UnitLaunch
    from xmanager.executors.slurm import backend as backend_module
    from xmanager.xm_local import registry

    executable = registry.plugin("slurm").package(xm.binary(xm_local.Slurm.Spec(), script(SLEEPER)))
    root = tmp_path / "jobs" / "3"
    units = [UnitLaunch(3, unit_id, (JobLaunch("job", executable, xm_local.Slurm(), ("--seconds=0",), {}, {},
                                               str(root / str(unit_id) / "job")),)) for unit_id in (1, 2)]
    backend = backend_module.SlurmBackend(lambda update: None, BackendSettings())
    launched = backend.launch(units)
    job_ids = {handle.data["job_id"] for handle in launched}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and cluster_module.Cluster().queue(job_ids):
        time.sleep(1)  # MinJobAge=2: squeue soon forgets them.
    assert cluster_module.Cluster().queue(job_ids) == {}
    [folder] = [os.path.join(root, "slurm", name) for name in os.listdir(root / "slurm")]
    os.remove(os.path.join(folder, backend_module.JOB_ID_FILE))
    refs = [JobRef(3, unit.work_unit_id, "job", unit.jobs[0].work_dir) for unit in units]
    name = json.loads(open(os.path.join(folder, backend_module.BATCH_FILE)).read())["name"]
    while time.monotonic() < deadline and not cluster_module.Cluster().named([name], time.time() - 60):
        time.sleep(1)  # slurmdbd records the job a moment after it ends.
    assert backend_module.SlurmBackend(lambda update: None, BackendSettings()).recover(refs) == launched
    assert not os.path.exists(os.path.join(folder, "void"))
