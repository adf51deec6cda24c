"""The public objects of a local experiment: its work units, their jobs, its annotations.

They read the experiment's unit state machine (:mod:`.unit_state`) and ask the experiment to act;
they hold no status of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

import attrs
from xmanager.executors.api import Handle, LogFiles
from xmanager.xm import core
from xmanager.xm.job_blocks import Job
from xmanager.xm.status import ExperimentUnitStatus, Status
from xmanager.xm_local.unit_state import UnitState

if TYPE_CHECKING:
    from xmanager.xm_local.experiment import LocalExperiment

#: The role of units loaded from the store (roles are values; one serves them all).
_WORK_UNIT_ROLE = core.WorkUnitRole()


@attrs.frozen
class LocalJob:
    """One job of a work unit as last reported: its status, and where its executor finds it."""

    name: str
    #: The executor plugin's name (``local``, ``slurm``, ...).
    executor: str
    status: Status
    #: The executor's reason text (why it waits, how it ended).
    message: str
    exit_code: Optional[int]
    #: None until the job was launched (or, for a local job of another process, until it started).
    handle: Optional[Handle]

    @property
    def console_url(self) -> Optional[str]:
        """A link to the job in its executor's web console (Vertex AI), when there is one."""
        url = None if self.handle is None else self.handle.data.get("console_url")
        return None if url is None else str(url)


class LocalWorkUnit(core.WorkUnit):
    """A work unit of a local experiment (live, or loaded from the store)."""

    experiment: LocalExperiment

    def __init__(
        self, experiment: LocalExperiment, state: UnitState, params: dict[str, Any] | str,
        role: core.ExperimentUnitRole = _WORK_UNIT_ROLE, identity: str = "",
    ) -> None:
        super().__init__(experiment, role=role, identity=identity)
        self.work_unit_id = state.work_unit_id
        self._state = state
        self._params = params  # Or their JSON text as stored, decoded on first use.

    # ---- reading ---------------------------------------------------------------------------------
    @property
    def args(self) -> dict[str, Any]:
        if isinstance(self._params, str):
            self._params = json.loads(self._params)
        assert isinstance(self._params, dict)
        return dict(self._params)

    @property
    def results(self) -> dict[str, Any]:
        """What the unit's jobs reported (``xm.report``) or returned."""
        return dict(self._state.results)

    def metrics(self) -> Any:
        """The unit's metrics over time, like ``experiment.metrics()``: columns ``work_unit_id``, ``step``,
        ``time``, ``name``, ``value``, sorted by name and step (read while the unit runs, too)."""
        return self.experiment._unit_metrics(self)

    def get_status(self) -> ExperimentUnitStatus:
        state = self._state
        return ExperimentUnitStatus(state.status, state.message, state.exit_code)

    @property
    def jobs(self) -> dict[str, LocalJob]:
        """The unit's jobs by name, with their last reported statuses (read from the store for a loaded unit)."""
        return {
            job.name: LocalJob(job.name, job.executor, job.status, job.message, job.exit_code, job.handle)
            for job in self.experiment._jobs_of(self)
        }

    @property
    def launched_jobs(self) -> list[core.LaunchedJob]:
        return [core.LaunchedJob(name=job.name, logs=job.log) for job in self.experiment._jobs_of(self)]

    def logs(self, job_name: str) -> LogFiles:
        """Where the output of the unit's job ``job_name`` can be read (its executor may fetch it into a file)."""
        return self.experiment._logs(self, job_name)

    # ---- acting ----------------------------------------------------------------------------------
    def stop(self, *, mark_as_failed: bool = False, mark_as_completed: bool = False, message: Optional[str] = None) -> None:
        """Cancels the unit's unfinished jobs, from any process (does not wait; ``wait_until_complete`` does)."""
        del mark_as_failed, mark_as_completed
        self.experiment._cancel([self._state], message or "stopped")

    # ---- the control plane's side ------------------------------------------------------------------
    def _launch_jobs(self, jobs: list[Job], *, gang: bool) -> None:
        del gang  # A unit's jobs on one executor always start together.
        self.experiment._launch(self, jobs)

    def _generator_finished(self, error: Optional[BaseException]) -> None:
        self.experiment._seal(self, error)

    def _wait_blocking(self) -> None:
        self.experiment._wait_for(lambda machine: self._state.status.is_terminal)

    async def _wait_async(self) -> None:
        import asyncio

        if not self._state.status.is_terminal:
            await asyncio.to_thread(self._wait_blocking)

    def _raise_if_unsuccessful(self) -> None:
        if self._state.status is Status.FAILED:  # Seen by the caller: not reported again at exit.
            self.experiment._reported.add(self.work_unit_id)
        super()._raise_if_unsuccessful()


class LocalContextAnnotations(core.ContextAnnotations):
    """Title, tags and notes; the setters persist to the store."""

    def __init__(self, experiment: LocalExperiment, title: str, tags: Sequence[str], notes: str) -> None:
        super().__init__(title=title, tags=list(tags), notes=notes)
        self._experiment = experiment

    def _save(self) -> None:
        self._experiment._save_annotations(self.title, self.tags, self.notes)

    def set_title(self, title: str) -> None:
        self.title = title
        self._save()

    def add_tags(self, *tags: str) -> None:
        self.tags.extend(tag for tag in tags if tag not in self.tags)
        self._save()

    def remove_tags(self, *tags: str) -> None:
        self.tags[:] = [tag for tag in self.tags if tag not in tags]
        self._save()

    def set_notes(self, notes: str) -> None:
        self.notes = notes
        self._save()
