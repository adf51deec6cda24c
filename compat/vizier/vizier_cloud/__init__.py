"""Vizier studies on Vertex AI: the names XManager's launch scripts use, each failing with one clear error.

``VizierExploration(...).launch()``, ``VizierController`` and ``VizierWorker`` need Vertex AI's
Vizier service (a study, trial suggestions, measurements), which this launcher does not drive.
"""

from __future__ import annotations

from typing import Any, Optional

from xmanager.executors.api import ServiceUnavailableError

_WHY = (
    "needs the Vizier service (Vertex AI hyperparameter tuning), which this launcher does not drive; "
    "for the same study without it, run experiment.add_search(job, space, objective=, mode=, n_trials=, "
    "max_parallel=) with the study config's parameters as xm.search domains (docs/search.md)"
)


class StudyFactory:
    """Where a Vizier study comes from (a new one, or an existing one by name)."""

    def __init__(self, project: Optional[str] = None, location: Optional[str] = None) -> None:
        self.project = project
        self.location = location

    @property
    def study(self) -> str:
        raise ServiceUnavailableError(f"xmanager.vizier.vizier_cloud: a study {_WHY}")


class NewStudy(StudyFactory):
    """A study to create from ``study_config`` (a Vertex AI ``StudySpec``)."""

    def __init__(self, study_config: Any, display_name: Optional[str] = None, project: Optional[str] = None,
                 location: Optional[str] = None) -> None:
        super().__init__(project, location)
        self.study_config = study_config
        self.display_name = display_name


class VizierExploration:
    """Trials of ``job`` suggested by a Vizier study; :meth:`launch` raises: it needs the Vizier service."""

    def __init__(self, experiment: Any, job: Any, study_factory: StudyFactory, num_trials_total: int,
                 num_parallel_trial_runs: int) -> None:
        self.experiment = experiment
        self.job = job
        self.study_factory = study_factory
        self.num_trials_total = num_trials_total
        self.num_parallel_trial_runs = num_parallel_trial_runs

    def launch(self, **kwargs: Any) -> None:
        raise ServiceUnavailableError(f"xmanager.vizier: VizierExploration {_WHY}")


class VizierController:
    """Drives a study's trials; it needs the Vizier service."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ServiceUnavailableError(f"xmanager.vizier: VizierController {_WHY}")


class VizierWorker:
    """Reports a trial's measurements from inside a job; it needs the Vizier service."""

    def __init__(self, trial_name: str) -> None:
        raise ServiceUnavailableError(f"xmanager.vizier: VizierWorker for trial {trial_name!r} {_WHY}")


__all__ = ["NewStudy", "StudyFactory", "VizierController", "VizierExploration", "VizierWorker"]
