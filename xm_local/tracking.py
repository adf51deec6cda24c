"""One experiment's unit state machine, shared by the threads that report to it.

Every event goes through :class:`UnitTracker`: it applies the event to the
:class:`~xmanager.xm_local.unit_state.UnitStateMachine` under one lock, queues what changed for
the store in the same order, and wakes the threads waiting for units to end once what they wait
for holds (checked by the thread that ended a unit, so a waiter is not woken for every unit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

from xmanager.executors.api import Handle, StatusUpdate
from xmanager.xm.status import Status
from xmanager.xm_local.progress import UnitObserver
from xmanager.xm_local.store import Store
from xmanager.xm_local.unit_state import Change, JobState, UnitState, UnitStateMachine


class UnitTracker:
    """The statuses of one experiment's units: thread-safe, recorded in the store, waitable."""

    def __init__(self, experiment_id: int, store: Store, stop_jobs: Callable[[Sequence[JobState]], None]) -> None:
        self.experiment_id = experiment_id
        self.machine = UnitStateMachine()
        #: Held for every read or change of the machine's state.
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._waiting: list[Callable[[UnitStateMachine], bool]] = []  # What the waiting threads wait for.
        self._store = store
        self._stop_jobs = stop_jobs
        #: Called under the lock with the id of a unit that ended, before its end is queued for the store
        #: (the experiment queues the ingestion of its last metrics points there).
        self.on_unit_end: Optional[Callable[[int], None]] = None
        #: Told every status a unit takes, under the lock (the live progress of a launch; None: nobody).
        self.observer: Optional[UnitObserver] = None

    # ---- events ----------------------------------------------------------------------------------
    def on_status(self, update: StatusUpdate) -> None:
        """The sink every backend reports to (from its own threads). Stops the rest of a failed group."""
        with self.lock:
            change = self.machine.apply(update)
            self._record(update.work_unit_id, change, update.at, update.host, update.handle)
        if change.stop:
            self._stop_jobs(change.stop)

    def add_unit(self, work_unit_id: int) -> UnitState:
        with self.lock:
            unit = self.machine.add_unit(work_unit_id)
            if self.observer is not None:
                self.observer.unit_status(work_unit_id, unit.status)
            return unit

    def seal(self, work_unit_id: int, generator_error: Optional[str]) -> tuple[JobState, ...]:
        """No more jobs for the unit; returns the jobs to stop (its generator failed)."""
        with self.lock:
            change = self.machine.seal(work_unit_id, generator_error)
            self._record(work_unit_id, change, time.time())
        return change.stop

    def cancel_unlaunched(self, units: Iterable[UnitState], message: str) -> None:
        """Units without jobs yet end cancelled now; the others end when their jobs report it."""
        now = time.time()
        with self.lock:
            for unit in units:
                self._record(unit.work_unit_id, self.machine.cancel_unlaunched(unit.work_unit_id, message), now)

    def prune(self, work_unit_id: int, reason: str) -> tuple[JobState, ...]:
        """A search stops the unit early: it ends pruned now (recorded); returns the jobs to stop."""
        with self.lock:
            change = self.machine.prune(work_unit_id, reason)
            self._record(work_unit_id, change, time.time())
        return change.stop

    def adopt_recorded(self, work_unit_id: int, status: Status, message: str, exit_code: Optional[int] = None,
                       results: Optional[dict[str, Any]] = None) -> tuple[JobState, ...]:
        """The store's terminal status for a unit, written there first by another process; returns the
        jobs this process should stop."""
        with self.lock:
            change = self.machine.adopt_recorded(work_unit_id, status, message, exit_code, results)
            if change.ended:
                if self.on_unit_end is not None:
                    self.on_unit_end(work_unit_id)
                if self.observer is not None:
                    self.observer.unit_status(work_unit_id, status)
                self._unit_ended()
        return change.stop

    def launcher_died(self, work_unit_id: int, job_names: Optional[Iterable[str]], message: str) -> None:
        """Jobs of a unit whose launcher died that will never report (see :meth:`UnitStateMachine.launcher_died`)."""
        with self.lock:
            self._record(work_unit_id, self.machine.launcher_died(work_unit_id, job_names, message), time.time())

    def adopt(self, work_unit_id: int) -> None:
        """This process now follows and waits for the unit's running jobs: their launcher died."""
        with self.lock:
            self.machine.adopt(work_unit_id)

    def _record(
        self, work_unit_id: int, change: Change, at: float, host: Optional[str] = None,
        handle: Optional[Handle] = None,
    ) -> None:
        store, experiment_id = self._store, self.experiment_id
        job, unit = change.job, change.unit
        if job is not None:
            store.record_job_status(
                experiment_id, work_unit_id, job.name, job.status, at=at, message=job.message,
                exit_code=job.exit_code, host=host, handle=None if handle is None else handle.to_json(),
            )
        for other in change.jobs:
            store.record_job_status(experiment_id, work_unit_id, other.name, other.status, at=at,
                                    message=other.message, exit_code=other.exit_code)
        if change.results is not None:
            store.record_results(experiment_id, work_unit_id, change.results)
        if change.ended and self.on_unit_end is not None:
            self.on_unit_end(work_unit_id)
        if unit is not None:
            store.record_unit_status(
                experiment_id, work_unit_id, unit.status, at=at, message=unit.message, exit_code=unit.exit_code,
                host=host,
            )
            if self.observer is not None:
                self.observer.unit_status(work_unit_id, unit.status)
        if change.ended:
            self._unit_ended()

    def _unit_ended(self) -> None:
        """Wakes the waiting threads when what one of them waits for holds. Called under the lock."""
        if any(finished(self.machine) for finished in self._waiting):
            self._changed.notify_all()

    # ---- waiting ---------------------------------------------------------------------------------
    def wait_until(self, finished: Callable[[UnitStateMachine], bool], timeout: Optional[float]) -> bool:
        """Waits until ``finished(machine)`` holds (checked whenever a unit ends), at most ``timeout`` s."""
        with self._changed:
            self._waiting.append(finished)
            try:
                return self._changed.wait_for(lambda: finished(self.machine), timeout)
            finally:
                self._waiting.remove(finished)
