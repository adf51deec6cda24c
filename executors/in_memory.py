"""Statuses kept in the launching process's memory, for executors whose jobs run inside it (VectorEngine,
InProcess): another process cannot ask them, so their ``refresh`` says so for jobs it does not hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xmanager.executors.api import Handle, StatusUpdate
from xmanager.xm.status import Status

UNKNOWN = "not known to this process (the launcher that ran it has exited)"


def refresh(statuses: Mapping[tuple[int, str], Status], handles: Sequence[Handle]) -> list[StatusUpdate]:
    """The status of each handle's job in ``statuses`` (by work unit id and job name); failed when absent."""
    updates = []
    for handle in handles:
        status = statuses.get((handle.work_unit_id, handle.job_name))
        message = "" if status is not None else UNKNOWN
        updates.append(StatusUpdate(handle.experiment_id, handle.work_unit_id, handle.job_name,
                                    status or Status.FAILED, message=message))
    return updates
