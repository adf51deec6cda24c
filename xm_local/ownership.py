"""Who owns a unit, and settling the units whose launcher died.

Every unit row records the process that launched it (``host pid start-ticks``; the start time
makes a recycled pid harmless). Any process on that host can then tell whether the launcher
still lives. A process that opens an experiment (``get_experiment``, ``list_experiments``,
``xmanager show``, a resume) settles the unfinished units of launchers that are gone: each job
of the local executor is looked for through its backend's ``refresh`` (its exit record, its
process, its results file); jobs still running are adopted (followed by polling their
processes, their results collected when they end), and jobs that never started or whose process
is gone without an exit record end failed with "launcher died". Jobs of executors that ran
inside the launcher died with it; jobs of detached executors run on in their queue and are
followed as before, and those whose handle the launcher had not stored yet (it died during a
submission) are looked for through their backend's ``recover``: found, their handle is stored
and they are followed; not found, they never start and end failed with "launcher died". So no
row stays unfinished once nothing runs it.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Collection
from typing import Optional

from xmanager.executors.api import ExecutorBackend, Handle, JobRef, StatusUpdate
from xmanager.xm.status import Status
from xmanager.xm_local import registry
from xmanager.xm_local.backends import Backends
from xmanager.xm_local.loading import StoredUnits
from xmanager.xm_local.tracking import UnitTracker

_LOCAL = "local"
#: The local backend's reason for a job that will never report (``processes.LAUNCHER_DIED``; the local
#: plugin is imported only when a local job is there: naming one executor loads no other).
LAUNCHER_DIED = "launcher died"
_HOST = socket.gethostname()
_this: Optional[tuple[int, str]] = None


def launcher_id() -> str:
    """This process as a unit's launcher: ``host pid start-ticks`` (recomputed after a fork)."""
    global _this
    pid = os.getpid()
    if _this is None or _this[0] != pid:
        _this = (pid, f"{_HOST} {pid} {_own_start_ticks()}")
    return _this[1]


def _own_start_ticks() -> Optional[int]:
    """This process's start time in clock ticks since boot (field 22 of /proc/self/stat), as the
    local executor's ``processes.start_ticks`` reads it; None without /proc."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def is_gone(launcher: Optional[str]) -> bool:
    """True when ``launcher`` (a :func:`launcher_id`) no longer runs. Unknown launchers (another
    host, none recorded) are taken to run: only a process on their host can tell."""
    if not launcher:
        return False
    from xmanager.executors.local import processes

    parts = launcher.split(" ")
    if len(parts) != 3 or parts[0] != _HOST or launcher == launcher_id():
        return False
    try:
        pid = int(parts[1])
        ticks = None if parts[2] == "None" else int(parts[2])
    except ValueError:
        return False
    return not processes.is_alive(pid, ticks)


class Reconciler:
    """Settles the unfinished units of one experiment whose launcher is gone."""

    def __init__(self, tracker: UnitTracker, backends: Backends, stored: StoredUnits, jobs_root: str) -> None:
        self._tracker = tracker
        self._backends = backends
        self._stored = stored
        self._jobs_root = jobs_root

    def orphaned(self, work_unit_ids: Optional[Collection[int]] = None) -> list[int]:
        """The loaded unfinished units (of ``work_unit_ids``; None: all) whose launcher is gone and that
        this process does not follow yet."""
        gone: dict[Optional[str], bool] = {}
        found = []
        with self._tracker.lock:
            units = self._tracker.machine.units
            for unit_id in units if work_unit_ids is None else work_unit_ids:
                unit = units[unit_id]
                if unit.launched_here or unit.adopted or unit.status.is_terminal:
                    continue
                if unit.launcher not in gone:
                    gone[unit.launcher] = is_gone(unit.launcher)
                if gone[unit.launcher]:
                    found.append(unit_id)
        return found

    def settle(self, work_unit_ids: Collection[int]) -> None:
        """Looks at each unfinished job of these units (whose launcher is gone): what ended is recorded,
        what runs is adopted, what will never report fails with "launcher died"."""
        if not work_unit_ids:
            return
        self._stored.load_jobs(work_unit_ids)
        handles: list[Handle] = []
        unrecorded: dict[str, list[JobRef]] = {}
        died: dict[int, list[str]] = {}
        experiment_id = self._tracker.experiment_id
        with self._tracker.lock:
            units = self._tracker.machine.units
            for unit_id in work_unit_ids:
                unit = units[unit_id]
                if unit.status.is_terminal:
                    continue
                if not unit.jobs:
                    died[unit_id] = []  # Its launcher died before it recorded any job.
                elif all(job.status.is_terminal for job in unit.jobs.values()):
                    # Its jobs' ends were committed, the unit's was not (the launcher's writer commits in
                    # batches; it died between two): the unit's status is derived from its jobs here.
                    died[unit_id] = []
                for job in unit.jobs.values():
                    if job.status.is_terminal:
                        continue
                    work_dir = os.path.join(self._jobs_root, str(unit_id), job.name)
                    if job.executor == _LOCAL:
                        handles.append(job.handle or Handle(_LOCAL, experiment_id, unit_id, job.name, {
                            "work_dir": work_dir}))
                    elif not registry.plugin(job.executor).detached:  # It ran inside the launcher.
                        died.setdefault(unit_id, []).append(job.name)
                    elif job.handle is None:  # It died during the submission, before storing the handle.
                        unrecorded.setdefault(job.executor, []).append(JobRef(experiment_id, unit_id, job.name,
                                                                              work_dir))
        if handles:
            for update in self._backends.get(_LOCAL).refresh(handles):
                self._apply(update, died)
        messages: dict[int, str] = {}
        for executor, refs in unrecorded.items():
            self._recover(executor, refs, died, messages)
        for unit_id, names in died.items():
            self._tracker.launcher_died(unit_id, names or None, messages.get(unit_id, LAUNCHER_DIED))

    def _recover(self, executor: str, refs: list[JobRef], died: dict[int, list[str]], messages: dict[int, str]) -> None:
        """Jobs of a detached executor that their dead launcher queued without storing their handles:
        those the executor finds get their handle stored (and are followed like the others); the rest
        were never queued and never will be (``ExecutorBackend.recover``): they fail."""
        backend = self._backends.get(executor)
        try:
            found = backend.recover(refs)
        except Exception as error:  # noqa: BLE001 - the executor cannot be asked now: asked again next poll.
            warnings.warn(f"could not look for {len(refs)} {executor} job(s) of a launcher that died: {error}",
                          stacklevel=2)
            return
        logs = [None if handle is None else backend.logs(handle) for handle in found]
        if type(backend).recover is ExecutorBackend.recover:  # Cannot look: say what may be left.
            message = (f"{LAUNCHER_DIED} before it stored this job's handle; the {executor} executor cannot "
                       "look the job up, so it may still run there")
        else:
            message = LAUNCHER_DIED
        recorded: list[tuple[Handle, Optional[str], Optional[str]]] = []
        with self._tracker.lock:
            units = self._tracker.machine.units
            for ref, handle, files in zip(refs, found, logs):
                if handle is None or files is None:
                    died.setdefault(ref.work_unit_id, []).append(ref.job_name)
                    messages[ref.work_unit_id] = message
                    continue
                if units[ref.work_unit_id].jobs[ref.job_name].handle is None:
                    self._tracker.machine.set_handle(ref.work_unit_id, ref.job_name, handle,
                                                     files.stderr or files.stdout)
                    recorded.append((handle, files.stdout, files.stderr))
        store = self._stored.store
        for handle, stdout, stderr in recorded:  # Any process can follow, cancel or read them from now on.
            store.record_handle(handle.experiment_id, handle.work_unit_id, handle.job_name, handle.to_json(), stdout,
                                stderr)

    def poll(self) -> None:
        """Brings the adopted units up to date: one ``refresh`` for all their unfinished local jobs."""
        handles: list[Handle] = []
        with self._tracker.lock:
            for unit in self._tracker.machine.units.values():
                if unit.adopted and not unit.status.is_terminal:
                    handles += [job.handle for job in unit.jobs.values()
                                if job.executor == _LOCAL and job.handle is not None and not job.status.is_terminal]
        if not handles:
            return
        died: dict[int, list[str]] = {}
        for update in self._backends.get(_LOCAL).refresh(handles):
            self._apply(update, died)
        for unit_id, names in died.items():
            self._tracker.launcher_died(unit_id, names, LAUNCHER_DIED)

    def _apply(self, update: StatusUpdate, died: dict[int, list[str]]) -> None:
        if update.status is Status.PENDING or (update.status is Status.FAILED and update.message == LAUNCHER_DIED):
            died.setdefault(update.work_unit_id, []).append(update.job_name)  # Never started, or gone.
            return
        if update.status is Status.RUNNING:
            with self._tracker.lock:
                job = self._tracker.machine.units[update.work_unit_id].jobs[update.job_name]
                if update.handle is not None:
                    job.handle = update.handle  # Its process, found without a recorded pid.
            self._tracker.adopt(update.work_unit_id)
        self._tracker.on_status(update)
