"""xmanager.vizier: the names import; using them says the Vizier service is needed."""

import pytest
from xmanager.executors.api import ServiceUnavailableError
from xmanager.vizier import vizier_cloud


def test_an_exploration_needs_the_vizier_service():
    exploration = vizier_cloud.VizierExploration(
        experiment=None, job=None, study_factory=vizier_cloud.NewStudy(study_config={}),
        num_trials_total=3, num_parallel_trial_runs=2,
    )
    with pytest.raises(ServiceUnavailableError, match="needs the Vizier service"):
        exploration.launch()
    with pytest.raises(ServiceUnavailableError, match="needs the Vizier service"):
        vizier_cloud.VizierWorker("trial-1")
