"""Metrics over time on Slurm: the job appends points in its shared job folder; they are read while it runs."""

import time

import pytest
from xmanager import xm, xm_local

pytestmark = pytest.mark.integration

#: Reports 5 steps, waits for the gate file (so the reader sees it half-way), then 5 more.
STEPPER = """
import os, sys, time
from xmanager import xm
gate = sys.argv[1].split('=', 1)[1]
for step in range(10):
    if step == 5:
        deadline = time.time() + 60
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.05)
    xm.report(step=step, loss=10.0 - step)
"""


def test_points_of_a_running_slurm_job_are_read_from_its_shared_folder(slurm_cluster, script, tmp_path):
    gate = tmp_path / "gate"
    path = script(STEPPER)
    experiment = xm_local.create_experiment("slurm metrics")
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=path)])
    experiment.add(xm.Job(executable, xm_local.Slurm(), args={"gate": str(gate)}))
    reader = xm_local.get_experiment(experiment.experiment_id)  # Follows the unit as another process would.
    deadline, frame = time.time() + 120, None
    while time.time() < deadline:
        frame = reader.metrics()
        if len(frame) >= 5:
            break
        time.sleep(0.2)
    assert frame is not None and frame["step"].tolist() == [0, 1, 2, 3, 4]
    assert reader.work_units[1].get_status().is_active
    gate.touch()
    experiment.wait_until_complete()
    frame = xm_local.get_experiment(experiment.experiment_id).metrics()
    assert frame["step"].tolist() == list(range(10)) and frame["value"].tolist() == [10.0 - s for s in range(10)]
    assert experiment.to_dataframe()["loss"].tolist() == [1.0]
