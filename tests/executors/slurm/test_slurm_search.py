"""examples/search_digits.py on the dev Slurm cluster: the search's trials are Slurm jobs, ASHA prunes through
scancel, and the best trial is found."""

import os
import sys

import pytest
from xmanager import xm_local

pytestmark = pytest.mark.integration

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")


def test_the_digits_search_runs_its_trials_on_slurm(slurm_cluster, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(os.path.abspath(EXAMPLES))
    import search_digits

    found = search_digits.launch("slurm", trials=6, parallel=3, seed=0, title="digits on slurm")
    frame = found.to_dataframe()
    assert list(frame["_trial_number"]) == list(range(6))
    assert set(frame["_status"]) <= {"completed", "pruned"} and "completed" in set(frame["_status"])
    best = found.best
    assert best is not None and 0 <= best.value < 0.2  # A linear model gets most digits right.
    experiment = xm_local.get_experiment(found.experiment.experiment_id)
    unit = experiment.work_units[best.work_unit_id]
    assert unit.get_status().is_completed and [job.executor for job in unit.jobs.values()] == ["slurm"]
    for trial in found.trials:
        if trial.state.value == "pruned":
            status = experiment.work_units[trial.work_unit_id].get_status()
            assert status.is_pruned and status.message.startswith("pruned: ASHA rung")
    del sys.modules["search_digits"]
