"""The statuses of an experiment's units and their jobs: one owner, one set of rules.

A :class:`UnitStateMachine` holds every unit of an experiment that this process knows (created
here or loaded from the store), each with its jobs, and counts the units that have not ended.
Every change goes through one of its event methods, which returns a :class:`Change` saying what
to record in the store and what to do next. The rules:

- A terminal status (completed, failed, cancelled, pruned) is never overwritten by an event. Late and
  duplicate events (a report after the end, a poll that finds nothing new) change nothing.
- A unit ends once it is sealed (no more jobs will be added) and all its jobs have ended. It then
  takes its jobs' combined status (any failure fails it), or failed if its job generator raised.
- A group fails as a whole: a job that fails while others run makes the change list those others
  to stop, and the unit ends failed whatever they end as.
- A unit pruned by a search (stopped early, :meth:`UnitStateMachine.prune`) ends pruned at once, its
  unfinished jobs with it; what they report after they are stopped changes nothing.
- A terminal status that another process recorded in the store first (``xmanager cancel``, the
  launcher of a unit followed from here) is adopted as it is; the store keeps the first record.
- A unit whose launcher died is this process's to settle: its jobs still running are adopted
  (followed by polling their processes, waited for like units launched here), and jobs whose
  process is gone without an exit record, or that never started, end failed: "launcher died".

Pure: no I/O, no threads, no clock. The caller serialises calls and records the changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

import attrs
from xmanager.executors.api import Handle, StatusUpdate
from xmanager.xm.status import Status, combine


@attrs.define(eq=False)
class JobState:
    """One job of a unit: its executor's name, its last status, and where it can be found."""

    name: str
    executor: str
    status: Status = Status.PENDING
    message: str = ""
    exit_code: Optional[int] = None
    handle: Optional[Handle] = None
    #: The log file a failure report points to.
    log: Optional[str] = None


@attrs.define(eq=False)
class UnitState:
    """One work unit: its status (derived from its jobs'), results, and how it is followed."""

    work_unit_id: int
    status: Status = Status.PENDING
    message: str = ""
    exit_code: Optional[int] = None
    results: dict[str, Any] = attrs.Factory(dict)
    jobs: dict[str, JobState] = attrs.Factory(dict)
    #: No more jobs will be added (its job generator returned or raised).
    sealed: bool = False
    #: Why the unit fails whatever its jobs do: its job generator raised.
    generator_error: Optional[str] = None
    #: Followed by polling, not waited for: its jobs run on without this process (a detached
    #: executor), or another process launched it.
    detached: bool = False
    #: Launched by this process (its jobs' backends are this process's own).
    launched_here: bool = True
    #: The process that launched it (``host pid start-ticks``), for a unit read from the store.
    launcher: Optional[str] = None
    #: Its launcher died while its jobs ran on; this process follows them by polling their processes.
    adopted: bool = False


@attrs.frozen
class Change:
    """What one event changed: what to record in the store, which jobs to stop, whether to wake waiters."""

    #: A job whose status changed (record it with the event's time, host and handle).
    job: Optional[JobState] = None
    #: The unit's results after the event, when it brought some (record all of them).
    results: Optional[Mapping[str, Any]] = None
    #: A unit whose status changed here (record it); None when nothing is to be recorded.
    unit: Optional[UnitState] = None
    #: Jobs to stop: the rest of a failed group, or of a unit whose generator failed or that was cancelled.
    stop: tuple[JobState, ...] = ()
    #: The unit reached a terminal status with this event.
    ended: bool = False
    #: More jobs whose status changed (record each, as :attr:`job`).
    jobs: tuple[JobState, ...] = ()


NO_CHANGE = Change()


class UnitStateMachine:
    """Every unit this process knows, and the counts of those not yet terminal."""

    def __init__(self) -> None:
        self.units: dict[int, UnitState] = {}
        #: Units not yet terminal.
        self.active = 0
        #: Of those, the units followed by polling (:attr:`UnitState.detached`).
        self.detached = 0
        #: Of the followed units, those adopted from a launcher that died (:attr:`UnitState.adopted`).
        self.adopted = 0

    @property
    def waited_here(self) -> int:
        """Units not yet terminal whose end this process waits for: it runs their jobs, or it adopted
        them from a launcher that died."""
        return self.active - self.detached + self.adopted

    # ---- units and jobs come in ------------------------------------------------------------------
    def add_unit(self, work_unit_id: int) -> UnitState:
        """A unit created by this process: pending, open for jobs."""
        if work_unit_id in self.units:
            raise ValueError(f"work unit {work_unit_id} exists already")
        unit = self.units[work_unit_id] = UnitState(work_unit_id)
        self.active += 1
        return unit

    def load_unit(
        self, work_unit_id: int, status: Status, message: str, exit_code: Optional[int], results: dict[str, Any],
        launcher: Optional[str] = None,
    ) -> UnitState:
        """A unit as the store holds it (launched before, maybe by another process): sealed; followed if unfinished."""
        unfinished = not status.is_terminal
        unit = self.units[work_unit_id] = UnitState(
            work_unit_id, status, message, exit_code, results, {}, True, None, unfinished, False, launcher
        )
        if unfinished:
            self.active += 1
            self.detached += 1
        return unit

    def load_job(self, work_unit_id: int, job: JobState) -> None:
        """A job of a loaded unit as the store holds it."""
        unit = self.units[work_unit_id]
        if unit.launched_here:
            raise ValueError(f"work unit {work_unit_id} was created here; its jobs are known")
        unit.jobs[job.name] = job

    def add_jobs(self, work_unit_id: int, jobs: Iterable[tuple[str, str]]) -> list[JobState]:
        """New pending jobs ``(name, executor)`` of a unit created here; all or none are added."""
        unit = self.units[work_unit_id]
        if unit.sealed:
            raise RuntimeError(f"work unit {work_unit_id} is complete; it cannot take more jobs")
        new = [JobState(name, executor) for name, executor in jobs]
        names = [job.name for job in new]
        for name in names:
            if name in unit.jobs or names.count(name) > 1:
                raise ValueError(f"work unit {work_unit_id} already has a job named {name!r}")
        unit.jobs.update((job.name, job) for job in new)
        return new

    def detach(self, work_unit_id: int) -> None:
        """The unit's jobs run on without this process: follow it by polling, do not wait for it."""
        unit = self.units[work_unit_id]
        if not unit.detached and not unit.status.is_terminal:
            unit.detached = True
            self.detached += 1

    def set_handle(self, work_unit_id: int, job_name: str, handle: Handle, log: Optional[str]) -> bool:
        """The handle a launch returned (the first one wins); True when it is new."""
        job = self.units[work_unit_id].jobs[job_name]
        if job.handle is not None:
            return False
        job.handle, job.log = handle, log
        return True

    # ---- events ----------------------------------------------------------------------------------
    def apply(self, update: StatusUpdate) -> Change:
        """A job's status as its executor reports it."""
        unit = self.units.get(update.work_unit_id)
        if unit is None or unit.status.is_terminal:
            return NO_CHANGE
        job = unit.jobs.get(update.job_name)
        if job is None or job.status.is_terminal:
            return NO_CHANGE
        if (job.status is update.status and update.message == job.message
                and (not update.results or update.results.items() <= unit.results.items())):
            return NO_CHANGE  # A duplicate, or a poll that found nothing new.
        job.status, job.message = update.status, update.message
        if update.exit_code is not None:
            job.exit_code = update.exit_code
        if update.handle is not None:
            job.handle = update.handle
        results = None
        if update.results:
            unit.results.update(update.results)
            results = dict(unit.results)
        stop: tuple[JobState, ...] = ()
        if update.status is Status.FAILED:  # The group fails as a whole: stop the others.
            stop = tuple(other for other in unit.jobs.values() if not other.status.is_terminal)
        changed = self._derive(unit)
        return Change(job, results, changed, stop, changed is not None and changed.status.is_terminal)

    def seal(self, work_unit_id: int, generator_error: Optional[str] = None) -> Change:
        """No more jobs will be added; with ``generator_error``, the unit fails and its jobs are stopped."""
        unit = self.units[work_unit_id]
        unit.sealed = True
        if unit.status.is_terminal:
            return NO_CHANGE
        stop: tuple[JobState, ...] = ()
        if generator_error is not None and unit.generator_error is None:
            unit.generator_error = unit.message = generator_error
            stop = tuple(job for job in unit.jobs.values() if not job.status.is_terminal)
        changed = self._derive(unit)
        return Change(unit=changed, stop=stop, ended=changed is not None and changed.status.is_terminal)

    def cancel_unlaunched(self, work_unit_id: int, message: str) -> Change:
        """Cancels a unit that has no jobs yet (a job generator still running): it ends now."""
        unit = self.units[work_unit_id]
        if unit.status.is_terminal or unit.jobs:
            return NO_CHANGE
        unit.sealed = True
        unit.message = message
        self._end(unit, Status.CANCELLED)
        return Change(unit=unit, ended=True)

    def prune(self, work_unit_id: int, reason: str) -> Change:
        """A search's pruner stops the unit early: it and its unfinished jobs end pruned with ``reason``
        now (not failed, not cancelled), and the change lists those jobs to stop. A unit that has ended
        already, or that is failing (a job failed, its generator raised) or being cancelled, keeps its course."""
        unit = self.units.get(work_unit_id)
        if unit is None or unit.status.is_terminal:
            return NO_CHANGE
        if unit.generator_error is not None or any(
            job.status in (Status.FAILED, Status.CANCELLED) for job in unit.jobs.values()
        ):
            return NO_CHANGE  # It is ending failed or cancelled already (a group ends as a whole).
        pruned = tuple(job for job in unit.jobs.values() if not job.status.is_terminal)
        for job in pruned:
            job.status, job.message = Status.PRUNED, reason
        unit.sealed = True
        unit.message = reason
        self._end(unit, Status.PRUNED)
        return Change(unit=unit, stop=pruned, ended=True, jobs=pruned)

    def adopt_recorded(
        self, work_unit_id: int, status: Status, message: str, exit_code: Optional[int] = None,
        results: Optional[Mapping[str, Any]] = None,
    ) -> Change:
        """A terminal status the store holds for the unit, recorded there first by another process.

        The unit takes it as it is (nothing is to be recorded again). A cancellation also ends the
        unit's unfinished jobs here, and the change lists them to stop.
        """
        unit = self.units.get(work_unit_id)
        if unit is None or not status.is_terminal or unit.status is status:
            return NO_CHANGE
        stop: tuple[JobState, ...] = ()
        if status is Status.CANCELLED:
            stop = tuple(job for job in unit.jobs.values() if not job.status.is_terminal)
            for job in stop:
                job.status, job.message = Status.CANCELLED, message
        unit.sealed = True
        unit.message, unit.exit_code = message, exit_code
        if results is not None:
            unit.results = dict(results)
        ended = not unit.status.is_terminal
        if ended:
            self._end(unit, status)
        else:
            unit.status = status  # The record that came first replaces this process's late view.
        return Change(stop=stop, ended=ended)

    def adopt(self, work_unit_id: int) -> None:
        """The unit's launcher died while its jobs run: this process follows them and waits for them."""
        unit = self.units[work_unit_id]
        if unit.launched_here or unit.adopted or unit.status.is_terminal:
            return
        unit.adopted = True
        self.adopted += 1

    def launcher_died(self, work_unit_id: int, job_names: Optional[Iterable[str]], message: str) -> Change:
        """The unit's launcher died and these of its jobs (None: all unfinished) will never report: each
        never started, or its process is gone without an exit record. They end failed with ``message``;
        a unit that ends failed for it alone says so as it is."""
        unit = self.units.get(work_unit_id)
        if unit is None or unit.status.is_terminal:
            return NO_CHANGE
        names = set(unit.jobs) if job_names is None else set(job_names)
        failed = tuple(job for name, job in unit.jobs.items() if name in names and not job.status.is_terminal)
        for job in failed:
            job.status, job.message = Status.FAILED, message
        unit.sealed = True
        if not unit.jobs and job_names is None:  # No job was ever recorded for it.
            unit.message = message
            self._end(unit, Status.FAILED)
            return Change(unit=unit, ended=True)
        changed = self._derive(unit)
        if changed is not None and changed.status is Status.FAILED and all(
            job.message == message for job in unit.jobs.values() if job.status is Status.FAILED
        ):
            changed.message = message
        return Change(unit=changed, jobs=failed, ended=changed is not None and changed.status.is_terminal)

    # ---- the derivation --------------------------------------------------------------------------
    def _derive(self, unit: UnitState) -> Optional[UnitState]:
        """Sets the unit's status from its jobs'; returns the unit when its status changed."""
        statuses = [job.status for job in unit.jobs.values()]
        if not unit.sealed or not all(status.is_terminal for status in statuses):
            new = Status.PENDING if all(status is Status.PENDING for status in statuses) else Status.RUNNING
        elif unit.generator_error is not None:
            new = Status.FAILED
        else:
            new = combine(statuses) if statuses else Status.COMPLETED
        if new is unit.status:
            return None
        if new in (Status.FAILED, Status.CANCELLED) and unit.generator_error is None:
            culprit = next(job for job in unit.jobs.values() if job.status is new)
            unit.message, unit.exit_code = f"job {culprit.name!r}: {culprit.message}", culprit.exit_code
        elif new is Status.COMPLETED:
            unit.exit_code = 0
        if new.is_terminal:
            self._end(unit, new)
        else:
            unit.status = new
        return unit

    def _end(self, unit: UnitState, status: Status) -> None:
        unit.status = status
        self.active -= 1
        if unit.detached:
            self.detached -= 1
        if unit.adopted:
            self.adopted -= 1
