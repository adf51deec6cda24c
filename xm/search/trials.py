"""A search's trials as samplers and pruners see them, and the errors of a bad objective."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any, Optional

import attrs


class ObjectiveError(ValueError):
    """The search's objective is unusable: a mode other than min/max, or a trial that did not report the
    objective, or reported NaN. The message names the field."""


class TrialState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"


#: Directions a search optimises in.
MODES = ("min", "max")


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ObjectiveError(f"search mode must be 'min' or 'max', got {mode!r}")
    return str(mode)


@attrs.define(eq=False)
class Trial:
    """One trial: its number in the search, its parameters, what it reported, how it ended."""

    number: int
    params: dict[str, Any]
    state: TrialState = TrialState.RUNNING
    #: The objective's final value (completed trials; the last reported one for pruned trials).
    value: Optional[float] = None
    #: The objective's intermediate values, ``(step, value)`` in step order (``xm.report(step=...)``).
    reports: list[tuple[int, float]] = attrs.Factory(list)
    #: The work unit that runs it (None in a simulation).
    work_unit_id: Optional[int] = None
    message: str = ""

    @property
    def last_step(self) -> Optional[int]:
        return self.reports[-1][0] if self.reports else None

    def best_report(self, mode: str, until: Optional[int] = None) -> Optional[float]:
        """The best intermediate value (by ``mode``), up to step ``until``; NaNs are ignored."""
        values = [value for step, value in self.reports if (until is None or step <= until) and not math.isnan(value)]
        if not values:
            return None
        return min(values) if mode == "min" else max(values)

    def value_at(self, step: int) -> Optional[float]:
        """The value it reported at the first step at or after ``step`` (None: it has not got there)."""
        for at, value in self.reports:
            if at >= step:
                return value
        return None


def better(a: float, b: float, mode: str) -> bool:
    """``a`` is strictly better than ``b``."""
    return a < b if mode == "min" else a > b


def best_trial(trials: Sequence[Trial], mode: str) -> Optional[Trial]:
    """The completed trial with the best value (the first of equals)."""
    best: Optional[Trial] = None
    for trial in trials:
        if trial.state is TrialState.COMPLETED and trial.value is not None and not math.isnan(trial.value):
            if best is None or better(trial.value, best.value, mode):  # type: ignore[arg-type]
                best = trial
    return best
