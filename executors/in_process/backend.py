"""The in-process backend: units queue for ``max_parallel`` worker threads; statuses live in memory.

A worker takes a unit, runs its jobs together (the first in the worker, the others in threads
of their own) and reports each job's RUNNING and final status to the sink. The threads are
daemons, so a function that never returns does not keep the launching process alive.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import traceback
from collections.abc import Sequence
from typing import Any, Optional

from xmanager.executors import in_memory
from xmanager.executors.api import (
    BackendSettings,
    ExecutorBackend,
    Handle,
    JobLaunch,
    LogFiles,
    StatusSink,
    StatusUpdate,
    UnitLaunch,
)
from xmanager.executors.in_process import FunctionExecutable, InProcess, InProcessPlugin
from xmanager.xm.status import Status

NAME = InProcessPlugin.name
STDERR = "stderr.log"  # A failed job's traceback.
Unit = UnitLaunch[InProcess]
Job = JobLaunch[InProcess]


class InProcessBackend(ExecutorBackend[InProcess]):
    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        self._sink = sink
        self._slots = max(1, settings.max_parallel or os.cpu_count() or 1)
        self._queue: queue.SimpleQueue[Optional[Unit]] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._launched = 0  # Units ever queued: no more workers than that.
        self._lock = threading.Lock()
        self._status: dict[tuple[int, str], Status] = {}  # (work unit, job) -> its latest status.
        self._cancelled: set[tuple[int, str]] = set()

    # ---- the interface ----------------------------------------------------------------------
    def launch(self, units: Sequence[Unit]) -> list[Handle]:
        handles: list[Handle] = []
        for unit in units:
            with self._lock:
                for job in unit.jobs:
                    self._status[(unit.work_unit_id, job.job_name)] = Status.PENDING
            handles.extend(_handle(unit, job) for job in unit.jobs)
            self._queue.put(unit)
        self._launched += len(units)
        while len(self._workers) < min(self._slots, self._launched):
            worker = threading.Thread(target=self._work, name=f"xm-in-process-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()
        return handles

    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        with self._lock:
            return in_memory.refresh(self._status, handles)

    def cancel(self, handles: Sequence[Handle]) -> None:
        """Queued jobs end as cancelled now; running ones when their function returns. Jobs of
        another process cannot be reached (their memory is not ours): those are left as they are."""
        dropped = []
        with self._lock:
            for handle in handles:
                key = (handle.work_unit_id, handle.job_name)
                status = self._status.get(key)
                if status is None or status.is_terminal:
                    continue
                self._cancelled.add(key)
                if status is Status.PENDING:
                    self._status[key] = Status.CANCELLED
                    dropped.append(handle)
        for handle in dropped:
            self._sink(StatusUpdate(handle.experiment_id, handle.work_unit_id, handle.job_name, Status.CANCELLED,
                                    message="cancelled before it started"))

    def logs(self, handle: Handle) -> LogFiles:
        return LogFiles(stderr=os.path.join(handle.data["work_dir"], STDERR))

    def close(self) -> None:
        for _ in self._workers:
            self._queue.put(None)  # Each worker stops after the units queued before it.

    # ---- running ------------------------------------------------------------------------------
    def _work(self) -> None:
        while (unit := self._queue.get()) is not None:
            others = [threading.Thread(target=self._run, args=(unit, job), daemon=True) for job in unit.jobs[1:]]
            for thread in others:
                thread.start()
            self._run(unit, unit.jobs[0])
            for thread in others:
                thread.join()

    def _run(self, unit: Unit, job: Job) -> None:
        key = (unit.work_unit_id, job.job_name)
        with self._lock:
            if self._status[key] is not Status.PENDING:  # Cancelled while it was queued.
                return
            self._status[key] = Status.RUNNING
        self._report(unit, job, Status.RUNNING, handle=_handle(unit, job))
        results: Optional[dict[str, Any]] = None
        try:
            results = _call(job)
            status, message = Status.COMPLETED, ""
        except Exception as error:  # The job's failure, whatever it is, is the unit's.
            status, message = Status.FAILED, f"{type(error).__name__}: {error}"
            os.makedirs(job.work_dir, exist_ok=True)
            with open(os.path.join(job.work_dir, STDERR), "w", encoding="utf-8") as log:
                log.write(traceback.format_exc())
        with self._lock:
            if key in self._cancelled:
                status, message, results = Status.CANCELLED, "cancelled", None
            self._status[key] = status
        self._report(unit, job, status, message=message, results=results)

    def _report(self, unit: Unit, job: Job, status: Status, **fields: Any) -> None:
        self._sink(StatusUpdate(unit.experiment_id, unit.work_unit_id, job.job_name, status, **fields))


def _handle(unit: Unit, job: Job) -> Handle:
    return Handle(NAME, unit.experiment_id, unit.work_unit_id, job.job_name, {"work_dir": job.work_dir})


def _call(job: Job) -> dict[str, Any]:
    """The function's results: the dict it returns (None: no results), checked to be JSON."""
    executable = job.executable
    assert isinstance(executable, FunctionExecutable)  # What InProcessPlugin.package makes.
    if any(key.isdigit() for key in job.kwargs):
        raise TypeError("a PythonCallable takes keyword args only; the job has positional args")
    value = executable.function(**job.kwargs)
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"the function returned {type(value).__name__}; return a dict of results or None")
    results = dict(value or {})
    json.dumps(results)  # The store keeps results as JSON: fail here, with the job, if they are not.
    return results
