"""Pruners: stop hopeless trials early, from the objective's intermediate values.

A trial reports ``xm.report(step=N, loss=...)`` while it runs; the search hands the pruner the
trial and every other trial of the search, and the pruner answers None (go on) or the reason to
stop it. The unit is then stopped through its executor and recorded ``pruned`` with that reason.

- :class:`MedianPruner`: stop a trial whose best value so far is worse than the median of the best
  values that the completed trials had reached by the same step.
- :class:`ASHAPruner`: asynchronous successive halving. Rungs sit at steps ``min_resource * eta^k``;
  a trial reaching a rung goes on only if its value there is among the best ``1/eta`` of the values
  every trial had at that rung so far (at least the best one goes on).
"""

from __future__ import annotations

import abc
import math
import statistics
from collections.abc import Sequence
from typing import Optional

from xmanager.xm.search.trials import Trial, TrialState, better


class Pruner(abc.ABC):
    """Decides, from intermediate values, whether a running trial stops now."""

    @abc.abstractmethod
    def prune(self, trial: Trial, trials: Sequence[Trial], mode: str) -> Optional[str]:
        """None to let ``trial`` go on, or why it stops. ``trials``: every trial of the search."""


def _check(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class MedianPruner(Pruner):
    """Median stopping: prune when the trial's best value by its latest step is worse than the median of
    the completed trials' best values by that step.

    It prunes nothing until ``n_startup_trials`` trials have completed, nor before step
    ``n_warmup_steps``, nor when fewer than ``n_min_trials`` completed trials had reported by that step.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0, n_min_trials: int = 1) -> None:
        self.n_startup_trials = _check("MedianPruner n_startup_trials", n_startup_trials, 0)
        self.n_warmup_steps = _check("MedianPruner n_warmup_steps", n_warmup_steps, 0)
        self.n_min_trials = _check("MedianPruner n_min_trials", n_min_trials, 1)

    def prune(self, trial: Trial, trials: Sequence[Trial], mode: str) -> Optional[str]:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return None
        completed = [other for other in trials if other.state is TrialState.COMPLETED and other is not trial]
        if len(completed) < self.n_startup_trials:
            return None
        current = trial.best_report(mode)
        if current is None:
            return None
        bests = [best for other in completed if (best := other.best_report(mode, until=step)) is not None]
        if len(bests) < max(1, self.n_min_trials):
            return None
        median = statistics.median(bests)
        if better(median, current, mode):
            return (f"median stopping at step {step}: best so far {current:.6g} is worse than the median "
                    f"{median:.6g} of {len(bests)} completed trials")
        return None

    def __repr__(self) -> str:
        return (f"MedianPruner(n_startup_trials={self.n_startup_trials}, n_warmup_steps={self.n_warmup_steps}, "
                f"n_min_trials={self.n_min_trials})")


class ASHAPruner(Pruner):
    """Asynchronous successive halving (ASHA).

    Rung ``k`` is at step ``min_resource * reduction_factor ** (min_early_stopping_rate + k)`` (below
    ``max_resource`` when given). A trial is judged once at each rung it reaches, on the value it
    reported at the first step at or after the rung, against the values every trial of the search
    had there: it goes on when it is among the best ``len // reduction_factor`` (at least one).
    """

    def __init__(self, min_resource: int = 1, reduction_factor: int = 3, min_early_stopping_rate: int = 0,
                 max_resource: Optional[int] = None) -> None:
        self.min_resource = _check("ASHAPruner min_resource", min_resource, 1)
        self.reduction_factor = _check("ASHAPruner reduction_factor", reduction_factor, 2)
        self.min_early_stopping_rate = _check("ASHAPruner min_early_stopping_rate", min_early_stopping_rate, 0)
        self.max_resource = None if max_resource is None else _check("ASHAPruner max_resource", max_resource, 1)
        #: (trial number, rung) pairs already judged and let through: each rung is judged once per trial.
        self._promoted: set[tuple[int, int]] = set()

    def rungs(self, until: int) -> list[int]:
        """The rungs' steps up to step ``until``."""
        steps: list[int] = []
        rung = 0
        while True:
            step = self.min_resource * self.reduction_factor ** (self.min_early_stopping_rate + rung)
            if step > until or (self.max_resource is not None and step >= self.max_resource):
                return steps
            steps.append(step)
            rung += 1

    def prune(self, trial: Trial, trials: Sequence[Trial], mode: str) -> Optional[str]:
        last = trial.last_step
        if last is None:
            return None
        for rung, step in enumerate(self.rungs(last)):
            if (trial.number, rung) in self._promoted:
                continue
            value = trial.value_at(step)
            if value is None or math.isnan(value):
                return None if value is None else f"ASHA rung {rung} (step {step}): the objective is NaN"
            competing = sorted(
                (other_value for other in trials
                 if (other_value := other.value_at(step)) is not None and not math.isnan(other_value)),
                reverse=mode == "max",
            )
            keep = max(1, len(competing) // self.reduction_factor)
            threshold = competing[keep - 1]
            if better(threshold, value, mode):
                return (f"ASHA rung {rung} (step {step}): {value:.6g} is not among the best {keep} of "
                        f"{len(competing)} trials there (needs {threshold:.6g})")
            self._promoted.add((trial.number, rung))
        return None

    def __repr__(self) -> str:
        return (f"ASHAPruner(min_resource={self.min_resource}, reduction_factor={self.reduction_factor}, "
                f"min_early_stopping_rate={self.min_early_stopping_rate}, max_resource={self.max_resource})")
