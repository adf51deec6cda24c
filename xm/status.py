"""One status vocabulary for every executor, with the executor's own reason text."""

from __future__ import annotations

import enum
from typing import Optional

import attrs


class Status(enum.StrEnum):
    """Where a job or work unit is in its life. Terminal states never change again."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Stopped early by a search's pruner (``experiment.add_search``): not a failure; the message says why.
    PRUNED = "pruned"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PRUNED})
TERMINAL_VALUES = tuple(sorted(s.value for s in _TERMINAL))


def combine(statuses: list[Status]) -> Status:
    """A work unit's status from its jobs': any failure fails it, then cancelled, pruned, running, ..."""
    if not statuses:
        return Status.PENDING
    present = set(statuses)
    for status in (Status.FAILED, Status.CANCELLED, Status.PRUNED):
        if status in present:
            return status
    if present == {Status.COMPLETED}:
        return Status.COMPLETED
    if Status.RUNNING in present or Status.COMPLETED in present:
        return Status.RUNNING
    return Status.PENDING


@attrs.frozen
class ExperimentUnitStatus:
    """A unit's status as XManager exposes it (``is_active``, ``is_completed``, ...)."""

    status: Status
    message: str = ""
    exit_code: Optional[int] = None

    @property
    def is_active(self) -> bool:
        return not self.status.is_terminal

    @property
    def is_completed(self) -> bool:
        return self.status is Status.COMPLETED

    @property
    def is_failed(self) -> bool:
        return self.status is Status.FAILED

    @property
    def is_cancelled(self) -> bool:
        return self.status is Status.CANCELLED

    @property
    def is_pruned(self) -> bool:
        """Stopped early by a search's pruner (its message says why)."""
        return self.status is Status.PRUNED
