"""A unit's metrics over steps, through the public ``LocalWorkUnit.metrics()`` (what ``xm.report(step=...)`` records).

``work_unit.metrics()`` is a long-format DataFrame (``work_unit_id``, ``step``, ``time``, ``name``, ``value``).
An installation whose ``LocalWorkUnit`` has no ``metrics()`` yet answers "not available" instead of a chart.
Loaded experiments are kept (a few, most recently used) so that following a unit's metrics does not read the
experiment's units again at every poll.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Optional

from xmanager.xm_local.experiment import LocalExperiment, get_experiment
from xmanager.xm_local.work_unit import LocalWorkUnit

__all__ = ["MetricsReader", "available"]

_KEPT = 4


def available() -> bool:
    """Whether this installation's work units report metrics over steps (``LocalWorkUnit.metrics``)."""
    return callable(getattr(LocalWorkUnit, "metrics", None))


class MetricsReader:
    """Reads units' metrics from the store at ``database_url``."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._experiments: collections.OrderedDict[int, LocalExperiment] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _experiment(self, experiment_id: int) -> LocalExperiment:
        with self._lock:
            experiment = self._experiments.get(experiment_id)
            if experiment is not None:
                self._experiments.move_to_end(experiment_id)
                return experiment
        experiment = get_experiment(experiment_id, database_url=self.database_url)
        with self._lock:
            self._experiments[experiment_id] = experiment
            while len(self._experiments) > _KEPT:
                self._experiments.popitem(last=False)
        return experiment

    def unit_metrics(self, experiment_id: int, work_unit_id: int) -> Optional[Any]:
        """The unit's metrics DataFrame, or None when this installation has no ``work_unit.metrics()``.

        Raises:
          KeyError: the experiment has no such unit.
        """
        if not available():
            return None
        units = self._experiment(experiment_id).work_units
        if work_unit_id not in units:  # Added since the experiment was read: read it again.
            with self._lock:
                self._experiments.pop(experiment_id, None)
            units = self._experiment(experiment_id).work_units
        return units[work_unit_id].metrics()  # type: ignore[attr-defined, unused-ignore]
