"""The search's bookkeeping with no I/O: which trial runs next, what its objective was, who is best.

:class:`Study` is driven by a runner (``xm_local.search`` on executors, or a loop in a test or a
benchmark): it asks :meth:`Study.ask` for trials to start while :attr:`Study.free` slots remain,
hands it each running trial's intermediate values (:meth:`Study.report`, which answers whether to
prune) and each trial's end (:meth:`Study.finish`). A restarted runner first gives it the trials
the store holds (:meth:`Study.restore`): finished ones are told to the sampler, unfinished ones run on,
and trials that never ran (their launcher died first) run again with the same number and parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union

from xmanager.xm.search.pruners import Pruner
from xmanager.xm.search.samplers import GridSampler, RandomSampler, Sampler
from xmanager.xm.search.space import Space, SpaceError, grid
from xmanager.xm.search.trials import ObjectiveError, Trial, TrialState, best_trial, check_mode

#: The ``run_id`` of a search's units starts with this, then ``<mode>:<objective>``.
RUN_PREFIX = "search:"


def run_id(objective: str, mode: str) -> str:
    """The tag a search's units carry in the store (their ``run_id``); their ``pset_seq`` is the trial number."""
    return f"{RUN_PREFIX}{mode}:{objective}"


def parse_run_id(value: Any) -> Optional[tuple[str, str]]:
    """``(objective, mode)`` of a search's ``run_id``, or None for units that are not trials."""
    if not isinstance(value, str) or not value.startswith(RUN_PREFIX):
        return None
    mode, _, objective = value[len(RUN_PREFIX):].partition(":")
    return (objective, mode) if mode in ("min", "max") and objective else None


class Study:
    """One search: its space (or grid), sampler, pruner, objective and budget, and its trials so far."""

    def __init__(
        self,
        space: Union[Mapping[str, Any], Sequence[Mapping[str, Any]], Space],
        objective: str = "loss",
        mode: str = "min",
        n_trials: Optional[int] = None,
        max_parallel: int = 1,
        sampler: Optional[Sampler] = None,
        pruner: Optional[Pruner] = None,
    ) -> None:
        if not isinstance(objective, str) or not objective:
            raise ObjectiveError(f"search objective must be a metric name (a non-empty string), got {objective!r}")
        self.objective = objective
        self.mode = check_mode(mode)
        self.space: Optional[Space]
        if isinstance(space, (Mapping, Space)):
            self.space = Space(space)
            if sampler is None:
                sampler = RandomSampler()
            elif isinstance(sampler, GridSampler):
                raise SpaceError("search space: a GridSampler takes a grid (a list of psets), not a dict of domains")
        elif isinstance(space, Sequence) and not isinstance(space, (str, bytes)):
            psets = grid(space)
            self.space = None
            if sampler is not None and not isinstance(sampler, GridSampler):
                raise SpaceError(f"search space is a grid of {len(psets)} psets: it is run in order, "
                                 f"without a sampler (got {sampler!r})")
            sampler = GridSampler(psets)
            if n_trials is None:
                n_trials = len(psets)
            elif n_trials > len(psets):
                raise SpaceError(f"search n_trials={n_trials} is more than the grid's {len(psets)} psets")
        else:
            raise SpaceError(f"search space must be a dict of parameter name to domain or a grid (a list of "
                             f"psets), got {type(space).__name__}")
        if not isinstance(sampler, Sampler):
            raise TypeError(f"search sampler must be an xm.search sampler (RandomSampler, SobolSampler, "
                            f"OptunaSampler), got {type(sampler).__name__}")
        if pruner is not None and not isinstance(pruner, Pruner):
            raise TypeError(f"search pruner must be an xm.search pruner (MedianPruner, ASHAPruner), got "
                            f"{type(pruner).__name__}")
        for name, value in (("n_trials", n_trials), ("max_parallel", max_parallel)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"search {name} must be a positive integer, got {value!r}")
        assert n_trials is not None
        self.n_trials = n_trials
        self.max_parallel = max_parallel
        self.sampler = sampler
        self.pruner = pruner
        sampler.bind(self.space, self.mode)
        #: Every trial by number (the latest attempt of each).
        self.trials: dict[int, Trial] = {}
        self._retry: list[Trial] = []  # Trials whose unit never ran: started again first.
        self._next = 0

    @property
    def run_id(self) -> str:
        return run_id(self.objective, self.mode)

    # ---- restoring --------------------------------------------------------------------------------
    def restore(self, trials: Iterable[Trial], rerun: Iterable[Trial] = ()) -> None:
        """Trials of an earlier run of this search: ended ones are told to the sampler (in trial order),
        running ones are in flight; ``rerun``: trials that never ran, started again first."""
        for trial in sorted(trials, key=lambda trial: trial.number):
            self.trials[trial.number] = trial
            if trial.state is not TrialState.RUNNING:
                self.sampler.tell(trial)
        for trial in sorted(rerun, key=lambda trial: trial.number):
            if trial.number not in self.trials:
                self._retry.append(Trial(trial.number, dict(trial.params)))
        numbers = [*self.trials, *(trial.number for trial in self._retry)]
        self._next = max(numbers, default=-1) + 1

    # ---- running ----------------------------------------------------------------------------------
    @property
    def running(self) -> list[Trial]:
        return [trial for trial in self.trials.values() if trial.state is TrialState.RUNNING]

    @property
    def free(self) -> int:
        """How many trials may start now."""
        started = len(self.trials)
        return max(0, min(self.max_parallel - len(self.running), self.n_trials - started))

    @property
    def done(self) -> bool:
        return len(self.trials) >= self.n_trials and not self.running

    def ask(self) -> Optional[Trial]:
        """The next trial to start (recorded as running), or None when none may start now."""
        if self.free <= 0:
            return None
        if self._retry:
            trial = self._retry.pop(0)
        else:
            number, self._next = self._next, self._next + 1
            trial = Trial(number, self.sampler.ask(number))
        self.trials[trial.number] = trial
        return trial

    def report(self, number: int, reports: Sequence[tuple[int, float]]) -> Optional[str]:
        """The running trial's intermediate values so far (step order); returns why to prune it, or None."""
        trial = self.trials[number]
        if trial.state is not TrialState.RUNNING:
            return None
        new = len(reports) != len(trial.reports)
        trial.reports = list(reports)
        if not new or self.pruner is None or not reports:
            return None
        return self.pruner.prune(trial, list(self.trials.values()), self.mode)

    def finish(self, number: int, state: TrialState, results: Mapping[str, Any] = {},  # noqa: B006 - read only.
               reports: Optional[Sequence[tuple[int, float]]] = None, message: str = "",
               metric_names: Sequence[str] = ()) -> Trial:
        """Trial ``number`` ended. A completed trial's objective is its result of that name, else its last
        intermediate value; one that has neither, or NaN, raises :class:`ObjectiveError` naming the field."""
        trial = self.trials[number]
        if reports is not None:
            trial.reports = list(reports)
        trial.state, trial.message = state, message
        try:
            if state is TrialState.COMPLETED:
                trial.value = self.objective_value(trial, results, metric_names)
            elif trial.reports:
                trial.value = trial.reports[-1][1]
        finally:
            self.sampler.tell(trial)
        return trial

    def objective_value(self, trial: Trial, results: Mapping[str, Any], metric_names: Sequence[str] = ()) -> float:
        where = f"trial {trial.number}" + ("" if trial.work_unit_id is None else f" (work unit {trial.work_unit_id})")
        if self.objective in results:
            value = results[self.objective]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ObjectiveError(f"search objective {self.objective!r}: {where} reported "
                                     f"{type(value).__name__} {value!r}, not a number")
        elif trial.reports:
            value = trial.reports[-1][1]
        else:
            names = sorted({*results, *metric_names})
            raise ObjectiveError(
                f"search objective {self.objective!r}: {where} completed without reporting it as a result or a "
                f"metric (it reported: {', '.join(names) if names else 'nothing'})"
            )
        if math.isnan(value):
            raise ObjectiveError(f"search objective {self.objective!r}: {where} reported NaN")
        return float(value)

    @property
    def best(self) -> Optional[Trial]:
        return best_trial(list(self.trials.values()), self.mode)
