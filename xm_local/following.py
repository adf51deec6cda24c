"""Following units this process does not wait on, and cancelling units from any process.

A unit is followed (:attr:`~xmanager.xm_local.unit_state.UnitState.detached`) when its jobs run on
without this process (a detached executor: Slurm, Kubernetes, Vertex) or when another process
launched it. Polling asks each detached executor once for all its open jobs, and reads the
units another process runs from the store. Cancelling a unit of another process records it in
the store first, then stops its jobs through their stored handles; the launching process sees
that record while it waits and stops what it still runs or has queued. Units whose launcher
died are settled and followed through :mod:`.ownership` instead of read back. A detached job
read before its launcher stored its handle (the launcher was still submitting) has it read
again on the next poll, or, once that launcher is gone, recovered through its executor.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from xmanager.executors.api import Handle
from xmanager.xm.status import Status
from xmanager.xm_local import registry
from xmanager.xm_local.backends import Backends
from xmanager.xm_local.loading import StoredUnits
from xmanager.xm_local.ownership import Reconciler
from xmanager.xm_local.store import Store
from xmanager.xm_local.store.rows import decode_all
from xmanager.xm_local.tracking import UnitTracker
from xmanager.xm_local.unit_state import JobState


class Follower:
    """Brings followed units up to date and cancels units launched by other processes."""

    def __init__(
        self, tracker: UnitTracker, store: Store, backends: Backends, stored: StoredUnits, reconciler: Reconciler,
    ) -> None:
        self._tracker = tracker
        self._store = store
        self._backends = backends
        self._stored = stored
        self._reconciler = reconciler

    def poll(self) -> None:
        """One status query per detached executor for all its open jobs; units run by another
        process on a local executor are read back from the store."""
        self._stored.load_jobs()
        self._find_handles()
        by_executor: dict[str, list[Handle]] = {}
        elsewhere: set[int] = set()
        with self._tracker.lock:
            for unit in self._tracker.machine.units.values():
                if unit.status.is_terminal or not unit.detached or unit.adopted:
                    continue
                if not unit.jobs:
                    elsewhere.add(unit.work_unit_id)
                for job in unit.jobs.values():
                    if job.status.is_terminal:
                        continue
                    if not registry.plugin(job.executor).detached:
                        elsewhere.add(unit.work_unit_id)
                    elif job.handle is not None:
                        by_executor.setdefault(job.executor, []).append(job.handle)
        for name, handles in by_executor.items():
            for update in self._backends.get(name).refresh(handles):
                self._tracker.on_status(update)
        if elsewhere:
            self.read_back(elsewhere)
            self._reconciler.settle(self._reconciler.orphaned(elsewhere))  # Their launcher died meanwhile.
        self._reconciler.poll()

    def _find_handles(self) -> None:
        """Detached jobs of other processes without a handle: their launcher had not stored it when they
        were read. A live launcher stores it when its ``launch`` returns (read again here); the jobs of
        a dead one are recovered through their executor, or fail if it never queued them."""
        with self._tracker.lock:
            unrecorded = {
                unit.work_unit_id for unit in self._tracker.machine.units.values()
                if unit.detached and not unit.launched_here and not unit.status.is_terminal and any(
                    job.handle is None and not job.status.is_terminal and registry.plugin(job.executor).detached
                    for job in unit.jobs.values())
            }
        if not unrecorded:
            return
        orphaned = self._reconciler.orphaned(unrecorded)
        self._reconciler.settle(orphaned)
        alive = unrecorded.difference(orphaned)
        if not alive:
            return
        experiment_id = self._tracker.experiment_id
        rows = [row for row in self._store.jobs(experiment_id) if row.work_unit_id in alive and row.handle is not None]
        with self._tracker.lock:
            units = self._tracker.machine.units
            for row in rows:
                job = units[row.work_unit_id].jobs.get(row.job_name)
                if job is not None and job.handle is None and row.handle is not None:
                    handle = Handle.from_json(row.handle, experiment_id, row.work_unit_id, row.job_name)
                    self._tracker.machine.set_handle(row.work_unit_id, row.job_name, handle,
                                                     row.stderr_path or row.stdout_path)

    def read_back(self, work_unit_ids: Collection[int]) -> None:
        """Terminal statuses (and results) that the processes running these units wrote to the store."""
        columns = ("status", "message", "exit_code", "results")
        for chunk in self._store.unit_chunks(self._tracker.experiment_id, work_unit_ids, columns=columns):
            for unit_id, status, message, exit_code, results in zip(
                chunk["work_unit_id"], chunk["status"], chunk["message"], chunk["exit_code"],
                decode_all(chunk["results"]),
            ):
                if status in _TERMINAL:
                    self._tracker.adopt_recorded(unit_id, Status(status), message or "", exit_code, results or {})

    def watch_cancellations(self) -> None:
        """Units launched here that another process recorded as cancelled (``xmanager cancel``) end
        cancelled, and their jobs are stopped here (queued ones never start). Units that ended failed
        here because that process killed their jobs become cancelled too, as recorded."""
        with self._tracker.lock:
            running = {unit_id for unit_id, unit in self._tracker.machine.units.items()
                       if unit.launched_here and (unit.status is Status.FAILED or not unit.status.is_terminal)}
        if not running:
            return
        recorded = self._store.units_with_status(self._tracker.experiment_id, Status.CANCELLED)
        to_stop: list[JobState] = []
        for unit_id in sorted(running.intersection(recorded)):
            to_stop += self._tracker.adopt_recorded(unit_id, Status.CANCELLED, recorded[unit_id] or "cancelled")
        self._backends.stop(to_stop)

    def cancel_elsewhere(self, work_unit_ids: Collection[int], message: str) -> None:
        """Cancels units another process launched: recorded first (so that process's report of the
        kill cannot overwrite it), then their jobs stopped through their stored handles."""
        self._stored.load_jobs(work_unit_ids)  # Their handles, as stored before the cancellation.
        cancelled = self._store.record_cancelled(self._tracker.experiment_id, work_unit_ids, message, time.time())
        to_stop: list[JobState] = []
        for unit_id in cancelled:
            to_stop += self._tracker.adopt_recorded(unit_id, Status.CANCELLED, message)
        self._backends.stop(to_stop)
        ended_before = set(work_unit_ids).difference(cancelled)
        if ended_before:
            self.read_back(ended_before)


_TERMINAL = frozenset(status.value for status in Status if status.is_terminal)
