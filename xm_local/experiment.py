"""Local experiments: the control plane that launches units and records everything.

``create_experiment`` inserts the experiment, then each ``add()`` assigns a unit id,
queues its rows for the store writer, and hands the jobs to their executor plugin.
Status updates arrive through one sink, update the in-memory units and are queued for
the store. Leaving the ``with`` block waits for the units, flushes the store and
reports failed units in one summary.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import getpass
import json
import os
import sys
import threading
import time
from collections import ChainMap
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import attrs
from xmanager.executors.api import (
    BackendSettings,
    ExecutorBackend,
    ExecutorPlugin,
    Handle,
    JobLaunch,
    StatusUpdate,
    UnitLaunch,
)
from xmanager.xm import core
from xmanager.xm.args import merge_args
from xmanager.xm.job_blocks import Executable, Job, Packageable
from xmanager.xm.status import TERMINAL_VALUES, ExperimentUnitStatus, Status, combine
from xmanager.xm.utils import env_expanding_escaper
from xmanager.xm_local import config, registry
from xmanager.xm_local.store import ExperimentRow, Store, UnitRow, wait_pending_writes
from xmanager.xm_local.store import writer as sql

_MAX_SUMMARY_LINES = 20

#: When set (by ``xmanager launch``), experiments created in this context are appended to it.
created_experiments: contextvars.ContextVar[Optional[list[int]]] = contextvars.ContextVar(
    "created_experiments", default=None
)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


class _JobState:
    __slots__ = ("name", "plugin", "status", "message", "exit_code", "handle", "stderr")

    def __init__(self, name: str, plugin: str, stderr: Optional[str]) -> None:
        self.name = name
        self.plugin = plugin
        self.status = Status.PENDING
        self.message = ""
        self.exit_code: Optional[int] = None
        self.handle: Optional[Handle] = None
        self.stderr = stderr


class LocalWorkUnit(core.WorkUnit):
    """A work unit of a local experiment (live, or loaded from the store)."""

    experiment: LocalExperiment

    def __init__(self, experiment: LocalExperiment, work_unit_id: int, role: core.ExperimentUnitRole, identity: str) -> None:
        super().__init__(experiment, role=role, identity=identity)
        self.work_unit_id = work_unit_id
        self._params: dict[str, Any] = {}
        self._jobs: dict[str, _JobState] = {}
        self._results: dict[str, Any] = {}
        self._status = Status.PENDING
        self._message = ""
        self._exit_code: Optional[int] = None
        self._sealed = False  # True once no more jobs can be added.
        self._generator_failed = False
        self._pset: Optional[core.PsetInfo] = None
        self._detached = False  # Its jobs run on an executor that goes on without this process.
        self._done = threading.Event()

    @classmethod
    def _from_row(cls, experiment: LocalExperiment, row: UnitRow) -> LocalWorkUnit:
        unit = cls(experiment, row.work_unit_id, core.WorkUnitRole(), "")
        unit._params = row.args
        unit._results = row.results or {}
        unit._status = Status(row.status)
        unit._message = row.message or ""
        unit._exit_code = row.exit_code
        unit._sealed = True
        if row.pset_hash is not None:
            unit._pset = core.PsetInfo(row.pset_hash, row.pset_id, row.run_id, row.run_seq, row.pset_seq, row.calc_dir)
        if unit._status.is_terminal:
            unit._done.set()
        return unit

    # ---- reading ----------------------------------------------------------------------
    @property
    def args(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def results(self) -> dict[str, Any]:
        """What the unit's jobs reported (``xm.report``) or returned."""
        return dict(self._results)

    def get_status(self) -> ExperimentUnitStatus:
        return ExperimentUnitStatus(self._status, self._message, self._exit_code)

    @property
    def launched_jobs(self) -> list[core.LaunchedJob]:
        return [core.LaunchedJob(name=job.name, logs=job.stderr) for job in self._jobs.values()]

    def stop(self, *, mark_as_failed: bool = False, mark_as_completed: bool = False, message: str = "") -> None:
        """Cancels the unit's running jobs."""
        del mark_as_failed, mark_as_completed
        self.experiment._cancel_units([self], message or "stopped")

    # ---- the control plane's side --------------------------------------------------------
    def _launch_jobs(self, jobs: list[Job], *, gang: bool) -> None:
        self.experiment._launch(self, jobs, gang)

    def _generator_finished(self, error: Optional[BaseException]) -> None:
        self.experiment._seal(self, error)

    def _wait_blocking(self) -> None:
        self._done.wait()

    def _raise_if_unsuccessful(self) -> None:
        if self._status is Status.FAILED:  # Seen by the caller: not reported again at exit.
            self.experiment._reported.add(self.work_unit_id)
        super()._raise_if_unsuccessful()

    async def _wait_async(self) -> None:
        import asyncio

        if not self._done.is_set():
            await asyncio.to_thread(self._done.wait)


class LocalContextAnnotations(core.ContextAnnotations):
    """Title, tags and notes; the setters persist to the store."""

    def __init__(self, experiment: LocalExperiment, title: str, tags: Sequence[str], notes: str) -> None:
        super().__init__(title=title, tags=list(tags), notes=notes)
        self._experiment = experiment

    def _save(self) -> None:
        self._experiment._store.update_experiment(self._experiment.experiment_id, self.title, self.tags, self.notes)

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


class LocalExperiment(core.Experiment):
    """An experiment in the local store. Live when created here; read-only when loaded."""

    def __init__(self, store: Store, row: ExperimentRow, *, live: bool, max_parallel: Optional[int] = None) -> None:
        self._store = store
        self._row = row
        self.experiment_id = row.experiment_id
        self._live = live
        self._max_parallel = max_parallel
        self._context: Optional[core.MetadataContext] = None  # Built on first use: listing stays cheap.
        self._units: Optional[dict[int, LocalWorkUnit]] = {} if live else None
        self._closed = not live
        if live:
            self._start_launching()

    def _start_launching(self) -> None:
        """The launch machinery; a loaded experiment is read-only and needs none of it until it adds work."""
        self._lock = threading.RLock()
        self._all_done = threading.Condition(self._lock)
        self._active = 0  # Units not yet terminal.
        self._detached_active = 0  # Of those, units on executors that run on without us (polled).
        self._batch: Optional[list[tuple[ExecutorPlugin, UnitLaunch]]] = None
        self._next_unit_id = max(self._units or {0: None}) + 1
        self._backends: dict[str, ExecutorBackend] = {}
        self._executables: dict[int, str] = {}
        self._tasks: list[Any] = []
        self._reported: set[int] = set()
        self._jobs_root = os.path.join(config.data_dir(), "experiments", str(self.experiment_id))
        atexit.register(self._at_exit)

    def _resume(self) -> None:
        """Makes a loaded experiment live: it can add units after those already stored, and it
        follows its unfinished units through their executors' handles (polled, as detached)."""
        units = self.work_units
        self._live, self._closed = True, False
        self._start_launching()
        self._reported.update(unit_id for unit_id, unit in units.items() if unit._status is Status.FAILED)
        unfinished = {unit_id for unit_id, unit in units.items() if not unit._status.is_terminal}
        if not unfinished:
            return
        for row in self._store.jobs(self.experiment_id):
            unit = units.get(row.work_unit_id)
            if unit is None or row.work_unit_id not in unfinished:
                continue
            state = _JobState(row.job_name, row.executor, row.stderr_path or row.stdout_path)
            state.status = Status(row.status)
            state.message, state.exit_code = row.message or "", row.exit_code
            if row.handle:
                state.handle = Handle.from_json(row.handle, self.experiment_id, row.work_unit_id, row.job_name)
            unit._jobs[row.job_name] = state
        with self._lock:
            for unit_id in unfinished:
                units[unit_id]._detached = True
                self._active += 1
                self._detached_active += 1

    # ---- metadata -----------------------------------------------------------------------
    @property
    def context(self) -> core.MetadataContext:
        if self._context is None:
            row = self._row
            annotations = LocalContextAnnotations(self, row.title, row.tags, row.notes)
            self._context = core.MetadataContext(creator=row.creator or "", annotations=annotations)
        return self._context

    @property
    def _annotations(self) -> LocalContextAnnotations:
        return self.context.annotations  # type: ignore[return-value]

    @property
    def title(self) -> str:
        return self._row.title if self._context is None else self._annotations.title

    @property
    def tags(self) -> list[str]:
        return list(self._row.tags if self._context is None else self._annotations.tags)

    @property
    def created_at(self) -> float:
        return self._row.created_at

    @property
    def work_units(self) -> dict[int, LocalWorkUnit]:  # type: ignore[override]
        if self._units is None:
            self._units = {row.work_unit_id: LocalWorkUnit._from_row(self, row) for row in self._store.units(self.experiment_id)}
        return dict(self._units)

    @property
    def work_unit_count(self) -> int:
        if self._units is None:
            return self._row.work_unit_count
        return len(self._units)

    @property
    def status_counts(self) -> dict[str, int]:
        """Units per status (from the store for loaded experiments)."""
        if self._units is None:
            return dict(self._row.status_counts)
        counts: dict[str, int] = {}
        for unit in self._units.values():
            counts[unit._status.value] = counts.get(unit._status.value, 0) + 1
        return counts

    def to_dataframe(self) -> Any:
        """One row per work unit: its args, its results, and ``_``-prefixed reserved columns.

        Units on cluster executors are refreshed first (one query per executor)."""
        from xmanager.xm_local.dataframe import experiment_dataframe

        self.refresh()
        return experiment_dataframe(self._store, self.experiment_id)

    def __repr__(self) -> str:
        return f"<LocalExperiment {self.experiment_id} {self.title!r} units={self.work_unit_count}>"

    # ---- packaging ----------------------------------------------------------------------
    @classmethod
    def package(cls, packageables: Sequence[Packageable] = ()) -> list[Executable]:
        return package(packageables)

    # ---- adding --------------------------------------------------------------------------
    def _require_live(self) -> None:
        if not self._live:
            self._resume()
        if self._closed:
            raise RuntimeError(f"experiment {self.experiment_id} is closed; add work inside its `with` block")

    def _create_work_unit(
        self, role: core.ExperimentUnitRole, identity: str, params: dict[str, Any], pset: Optional[core.PsetInfo] = None
    ) -> LocalWorkUnit:
        self._require_live()
        assert self._units is not None
        with self._lock:
            work_unit_id = self._next_unit_id
            self._next_unit_id += 1
            unit = LocalWorkUnit(self, work_unit_id, role, identity)
            unit._params = dict(params)
            unit._pset = pset
            self._units[work_unit_id] = unit
            self._active += 1
        row = {
            "experiment_id": self.experiment_id, "work_unit_id": work_unit_id, "args": _json(params),
            "status": Status.PENDING.value, "created_at": time.time(),
        }
        row.update(dict.fromkeys(sql.SWEEP_COLUMNS) if pset is None else attrs.asdict(pset))
        self._store.writer.put(sql.INSERT_UNIT, row)
        return unit

    def _completed_pset_hashes(self) -> set[str]:
        self._store.writer.flush()
        return self._store.completed_pset_hashes(self.experiment_id)

    def _sweep_counters(self) -> tuple[int, int]:
        self._store.writer.flush()
        return self._store.sweep_counters(self.experiment_id)

    def _track_task(self, task: Any) -> None:
        self._tasks.append(task)

    def _executable_json(self, executable: Executable) -> str:
        key = id(executable)
        text = self._executables.get(key)
        if text is None:
            described = {"type": type(executable).__name__, "name": executable.name}
            for field in ("command",):
                if hasattr(executable, field):
                    described[field] = list(getattr(executable, field))
            text = self._executables[key] = _json(described)
        return text

    def _backend(self, plugin: ExecutorPlugin) -> ExecutorBackend:
        backend = self._backends.get(plugin.name)
        if backend is None:
            with self._lock:
                backend = self._backends.get(plugin.name)
                if backend is None:
                    settings = BackendSettings(max_parallel=self._max_parallel)
                    backend = self._backends[plugin.name] = plugin.open(self._on_status, settings)
        return backend

    def _launch(self, unit: LocalWorkUnit, jobs: list[Job], gang: bool) -> None:
        self._require_live()
        if unit._sealed:
            raise RuntimeError(f"work unit {unit.work_unit_id} is complete; it cannot take more jobs")
        writer = self._store.writer
        by_plugin: dict[str, tuple[ExecutorPlugin, list[JobLaunch]]] = {}
        base_env = {"XM_EXPERIMENT_ID": str(self.experiment_id), "XM_WORK_UNIT_ID": str(unit.work_unit_id)}
        for job in jobs:
            assert job.name is not None
            if job.name in unit._jobs:
                raise ValueError(f"work unit {unit.work_unit_id} already has a job named {job.name!r}")
            plugin = registry.for_executor(type(job.executor))
            merged = merge_args(job.executable.args, job.args)
            env = {**job.executable.env_vars, **job.env_vars, **base_env, "XM_JOB_NAME": job.name}
            work_dir = os.path.join(self._jobs_root, str(unit.work_unit_id), job.name)
            launch = JobLaunch(
                job_name=job.name, executable=job.executable, executor=job.executor,
                args=tuple(merged.to_list(env_expanding_escaper(ChainMap(env, os.environ)))),
                kwargs=merged.to_indexed_dict(), env=env, work_dir=work_dir,
            )
            by_plugin.setdefault(plugin.name, (plugin, []))[1].append(launch)
            state = _JobState(job.name, plugin.name, None)
            unit._jobs[job.name] = state
            writer.put(
                sql.INSERT_JOB,
                {
                    "experiment_id": self.experiment_id, "work_unit_id": unit.work_unit_id, "job_name": job.name,
                    "executor": plugin.name, "executable": self._executable_json(job.executable),
                    "args": _json(list(launch.args)), "env": _json(env), "handle": None,
                    "status": Status.PENDING.value, "stdout_path": None, "stderr_path": None,
                },
            )
        for plugin, launches in by_plugin.values():
            request = UnitLaunch(self.experiment_id, unit.work_unit_id, tuple(launches))
            if self._batch is not None:
                self._batch.append((plugin, request))
            else:
                self._submit([(plugin, request)])

    @contextlib.contextmanager
    def _launch_batch(self) -> Iterator[None]:
        """Units launched inside go to their executors in one ``launch`` call each (job arrays)."""
        self._require_live()
        if self._batch is not None:
            yield
            return
        self._batch = []
        try:
            yield
        finally:
            batch, self._batch = self._batch, None
            self._submit(batch)

    def _submit(self, requests: Sequence[tuple[ExecutorPlugin, UnitLaunch]]) -> None:
        """Launches ``requests`` on their backends; if a backend refuses, its units fail with its message."""
        by_plugin: dict[str, tuple[ExecutorPlugin, list[UnitLaunch]]] = {}
        for plugin, request in requests:
            by_plugin.setdefault(plugin.name, (plugin, []))[1].append(request)
        first_error: Optional[BaseException] = None
        for plugin, batch in by_plugin.values():
            backend = self._backend(plugin)
            try:
                handles = backend.launch(batch)
            except Exception as error:  # Reported on the units, then raised to the caller.
                first_error = first_error or error
                self._launch_failed(batch, f"{type(error).__name__}: {error}")
                continue
            assert self._units is not None
            if plugin.detached:
                with self._lock:
                    for request in batch:
                        unit = self._units[request.work_unit_id]
                        if not unit._detached:
                            unit._detached = True
                            self._detached_active += 1
            for handle in handles:
                self._record_handle(self._units[handle.work_unit_id], handle, backend)
        if first_error is not None:
            raise first_error

    def _launch_failed(self, batch: Sequence[UnitLaunch], message: str) -> None:
        assert self._units is not None
        now = time.time()
        for request in batch:
            for job in request.jobs:
                self._on_status(StatusUpdate(self.experiment_id, request.work_unit_id, job.job_name,
                                             Status.FAILED, at=now, message=message))

    def _record_handle(self, unit: LocalWorkUnit, handle: Handle, backend: ExecutorBackend) -> None:
        state = unit._jobs[handle.job_name]
        if state.handle is None:
            state.handle = handle
            logs = backend.logs(handle)
            state.stderr = logs.stderr or logs.stdout  # The log a failure points to (one stream on Kubernetes).
            if registry.plugin(handle.executor).detached:  # Another process will follow, cancel or read the job.
                self._store.writer.put(
                    sql.SET_HANDLE,
                    {
                        "experiment_id": self.experiment_id, "work_unit_id": unit.work_unit_id,
                        "job_name": handle.job_name, "handle": _json(handle.to_json()),
                        "stdout_path": logs.stdout, "stderr_path": logs.stderr,
                    },
                )

    def _seal(self, unit: LocalWorkUnit, error: Optional[BaseException]) -> None:
        """No more jobs will be added to ``unit`` (its generator returned or raised)."""
        with self._lock:
            unit._sealed = True
            if error is not None:
                self._fail_unit(unit, f"job generator raised {type(error).__name__}: {error}")
        if error is not None and unit._jobs:
            self._cancel_units([unit], "the job generator failed", mark_self=False)
        self._reconcile(unit, time.time())

    # ---- statuses --------------------------------------------------------------------------
    def _on_status(self, update: StatusUpdate) -> None:
        """The sink every backend reports to (from its own threads)."""
        assert self._units is not None
        unit = self._units.get(update.work_unit_id)
        if unit is None:
            return
        writer = self._store.writer
        failed_siblings: list[LocalWorkUnit] = []
        with self._lock:
            state = unit._jobs.get(update.job_name)
            if state is None or state.status.is_terminal:
                return
            if state.status is update.status and not update.results and update.message == state.message:
                return  # A poll that found nothing new.
            state.status = update.status
            state.message = update.message
            if update.exit_code is not None:
                state.exit_code = update.exit_code
            if update.handle is not None:
                state.handle = update.handle
            if update.results:
                unit._results.update(update.results)
            running = update.status is Status.RUNNING
            writer.put(
                sql.UPDATE_JOB,
                {
                    "experiment_id": self.experiment_id, "work_unit_id": unit.work_unit_id,
                    "job_name": update.job_name, "status": update.status.value, "message": update.message,
                    "exit_code": update.exit_code, "host": update.host,
                    "handle": _json(update.handle.to_json()) if update.handle is not None else None,
                    "started_at": update.at if running else None,
                    "ended_at": update.at if update.status.is_terminal else None,
                },
            )
            writer.put(
                sql.INSERT_EVENT,
                {
                    "experiment_id": self.experiment_id, "work_unit_id": unit.work_unit_id,
                    "job_name": update.job_name, "status": update.status.value, "at": update.at,
                    "message": update.message,
                },
            )
            if update.results:
                writer.put(
                    sql.UPSERT_RESULT,
                    {"experiment_id": self.experiment_id, "work_unit_id": unit.work_unit_id, "data": _json(unit._results)},
                )
            if update.status is Status.FAILED and any(not j.status.is_terminal for j in unit._jobs.values()):
                failed_siblings.append(unit)
            self._reconcile(unit, update.at, host=update.host)
        if failed_siblings:
            # One job failed: the unit has failed, so its other jobs stop (off this thread).
            threading.Thread(target=self._cancel_units, args=(failed_siblings, "another job of the unit failed", False), daemon=True).start()

    def _fail_unit(self, unit: LocalWorkUnit, message: str) -> None:
        unit._message = message
        unit._generator_failed = True

    def _reconcile(self, unit: LocalWorkUnit, at: float, host: Optional[str] = None) -> None:
        """Derives the unit's status from its jobs and records a change."""
        with self._lock:
            old = unit._status
            statuses = [job.status for job in unit._jobs.values()]
            if not unit._sealed or not all(status.is_terminal for status in statuses):
                # A unit ends when all its jobs have; a failed job's siblings are being stopped.
                new = Status.PENDING if all(status is Status.PENDING for status in statuses) else Status.RUNNING
            elif unit._generator_failed:
                new = Status.FAILED
            else:
                new = combine(statuses) if statuses else Status.COMPLETED
            if new is old:
                return
            unit._status = new
            if new in (Status.FAILED, Status.CANCELLED) and not unit._generator_failed:
                culprit = next((j for j in unit._jobs.values() if j.status is new), None)
                if culprit is not None:
                    unit._message = f"job {culprit.name!r}: {culprit.message}"
                    unit._exit_code = culprit.exit_code
            elif new is Status.COMPLETED:
                unit._exit_code = 0
            self._store.writer.put(
                sql.UPDATE_UNIT,
                {
                    "experiment_id": self.experiment_id, "work_unit_id": unit.work_unit_id, "status": new.value,
                    "message": unit._message, "exit_code": unit._exit_code, "host": host,
                    "started_at": at if new is Status.RUNNING else None,
                    "ended_at": at if new.is_terminal else None,
                },
            )
            if new.is_terminal:
                unit._done.set()
                self._active -= 1
                if unit._detached:
                    self._detached_active -= 1
                self._all_done.notify_all()

    # ---- waiting, cancelling, closing ----------------------------------------------------------
    def _cancel_units(self, units: Sequence[LocalWorkUnit], message: str, mark_self: bool = True) -> None:
        by_backend: dict[str, list[Handle]] = {}
        with self._lock:
            for unit in units:
                for state in unit._jobs.values():
                    if state.status.is_terminal:
                        continue
                    if state.handle is not None:
                        by_backend.setdefault(state.plugin, []).append(state.handle)
        for name, handles in by_backend.items():
            backend = self._backends.get(name)
            if backend is not None:
                backend.cancel(handles)
        if mark_self:
            now = time.time()
            with self._lock:
                for unit in units:
                    if not unit._status.is_terminal and not unit._jobs:
                        unit._sealed = True
                        unit._message = message
                        unit._status = Status.CANCELLED
                        self._store.writer.put(
                            sql.UPDATE_UNIT,
                            {
                                "experiment_id": self.experiment_id, "work_unit_id": unit.work_unit_id,
                                "status": Status.CANCELLED.value, "message": message, "exit_code": None,
                                "host": None, "started_at": None, "ended_at": now,
                            },
                        )
                        unit._done.set()
                        self._active -= 1
                        if unit._detached:
                            self._detached_active -= 1
                self._all_done.notify_all()

    def cancel(self, message: str = "cancelled") -> None:
        """Cancels every unit that has not ended; waits until they are recorded as cancelled."""
        if self._units is None:
            return
        self._cancel_units([u for u in self._units.values() if not u._status.is_terminal], message)
        self._wait_all(include_detached=True)

    def _wait_all(self, include_detached: bool = False) -> None:
        """Waits for the units this process runs; with ``include_detached``, polls the others too."""
        interval = 0.2
        while True:
            with self._all_done:
                pending = self._active - (0 if include_detached else self._detached_active)
                if pending <= 0:
                    return
                polling = include_detached and self._detached_active > 0
                self._all_done.wait(timeout=interval if polling else None)
            if polling:
                self._poll()
                interval = min(interval * 1.5, 5.0)

    def _poll(self) -> None:
        """Brings detached units up to date: one status query per cluster executor for all its open
        jobs; units another process runs here (local jobs) are read back from the store."""
        by_plugin: dict[str, list[Handle]] = {}
        owned_elsewhere: set[int] = set()
        with self._lock:
            for unit in (self._units or {}).values():
                if unit._status.is_terminal or not unit._detached:
                    continue
                for state in unit._jobs.values():
                    if state.status.is_terminal:
                        continue
                    if self._is_detached(state.plugin):
                        if state.handle is not None:
                            by_plugin.setdefault(state.plugin, []).append(state.handle)
                    else:
                        owned_elsewhere.add(unit.work_unit_id)
                if not unit._jobs:
                    owned_elsewhere.add(unit.work_unit_id)
        for name, handles in by_plugin.items():
            for update in self._backend(registry.plugin(name)).refresh(handles):
                self._on_status(update)
        if owned_elsewhere:
            self._adopt_from_store(owned_elsewhere)

    def _is_detached(self, plugin_name: str) -> bool:
        return registry.plugin(plugin_name).detached

    def _adopt_from_store(self, unit_ids: set[int]) -> None:
        """Final statuses that the process running these units has written to the store."""
        assert self._units is not None
        rows = {row.work_unit_id: row for row in self._store.units(self.experiment_id) if row.work_unit_id in unit_ids}
        with self._lock:
            for unit_id, row in rows.items():
                unit = self._units[unit_id]
                status = Status(row.status)
                if not status.is_terminal or unit._status.is_terminal:
                    continue
                unit._status, unit._message, unit._exit_code = status, row.message or "", row.exit_code
                unit._results = row.results or {}
                unit._done.set()
                self._active -= 1
                self._detached_active -= 1
            self._all_done.notify_all()

    def refresh(self) -> None:
        """Brings the statuses and results of unfinished units up to date (one query per executor)."""
        if self._units is None or not self._live:
            if all(count == 0 for status, count in self.status_counts.items() if status not in TERMINAL_VALUES):
                return
            self._resume()
        if self._detached_active:
            self._poll()
        self._store.writer.flush()

    def wait_until_complete(self) -> Any:
        """Waits for every unit, polling those on cluster executors (also from another process than
        the one that launched them); sync code blocks, async code awaits. Raises on failures."""
        if not self._live:
            self._resume()
        if core.running_loop() is None:
            self._wait_all(include_detached=True)
            self._store.writer.flush()
            self._raise_failures()
            return None
        return self._wait_async()

    async def _wait_async(self) -> None:
        import asyncio

        while self._tasks:
            tasks, self._tasks = self._tasks, []
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._wait_all, True)
        self._store.writer.flush()
        self._raise_failures()

    def failed_units(self) -> list[LocalWorkUnit]:
        return [u for u in (self._units or {}).values() if u._status is Status.FAILED]

    def _adopt_cancellations(self, failed: list[LocalWorkUnit]) -> list[LocalWorkUnit]:
        """Units cancelled from another process (``xmanager cancel``) died by signal here and
        look failed; the store, written first by the canceller, says cancelled."""
        self._store.writer.flush()
        recorded = {row.work_unit_id: row for row in self._store.units(self.experiment_id) if row.status == "cancelled"}
        for unit in failed:
            row = recorded.get(unit.work_unit_id)
            if row is not None:
                unit._status, unit._message = Status.CANCELLED, row.message or "cancelled"
        return [unit for unit in failed if unit.work_unit_id not in recorded]

    def _raise_failures(self) -> None:
        failed = [u for u in self.failed_units() if u.work_unit_id not in self._reported]
        if failed:
            failed = self._adopt_cancellations(failed)
        if not failed:
            return
        self._reported.update(u.work_unit_id for u in failed)
        lines = [f"{len(failed)} of {self.work_unit_count} work units failed in experiment {self.experiment_id} ({self.title!r}):"]
        for unit in failed[:_MAX_SUMMARY_LINES]:
            logs = [j.stderr for j in unit._jobs.values() if j.status is Status.FAILED and j.stderr]
            where = f"; log: {logs[0]}" if logs else ""
            lines.append(f"  work unit {unit.work_unit_id}: {unit._message}{where}")
        if len(failed) > _MAX_SUMMARY_LINES:
            lines.append(f"  ... and {len(failed) - _MAX_SUMMARY_LINES} more (xmanager show {self.experiment_id})")
        raise core.ExperimentFailedError("\n".join(lines), failed)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for backend in self._backends.values():
            backend.close()
        self._store.writer.flush()
        atexit.unregister(self._at_exit)

    def _interrupted(self) -> None:
        print(f"xmanager: interrupted; cancelling the running units of experiment {self.experiment_id}", file=sys.stderr)
        self.cancel("cancelled: the launcher was interrupted")

    def _finish_waiting(self) -> None:
        try:
            self._wait_all()
        except KeyboardInterrupt:
            self._interrupted()
            self._close()
            raise

    def __enter__(self) -> LocalExperiment:
        self._context_token = core._current_experiment.set(self)  # get_xid_from_context() inside the block.
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._leave_context()
        if exc_type is not None and not issubclass(exc_type, Exception):
            try:
                self._interrupted()
            finally:
                self._close()
            return
        self._finish_waiting()
        self._close()
        self._announce_detached()
        if exc_type is None:
            self._raise_failures()

    def _announce_detached(self) -> None:
        if self._detached_active:
            print(
                f"xmanager: {self._detached_active} work unit(s) of experiment {self.experiment_id} run on in their "
                f"cluster queue; follow them with `xmanager show {self.experiment_id}`",
                file=sys.stderr,
            )

    async def __aenter__(self) -> LocalExperiment:
        self._context_token = core._current_experiment.set(self)
        return self

    def _leave_context(self) -> None:
        token, self._context_token = getattr(self, "_context_token", None), None
        if token is not None:
            with contextlib.suppress(ValueError):  # Left from another context (a generator's task).
                core._current_experiment.reset(token)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import asyncio

        self._leave_context()

        if exc_type is not None and not issubclass(exc_type, Exception):
            try:
                self._interrupted()
            finally:
                self._close()
            return
        while self._tasks:
            tasks, self._tasks = self._tasks, []
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.to_thread(self._wait_all)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self._interrupted()
            self._close()
            raise
        self._close()
        if exc_type is None:
            self._raise_failures()

    def _at_exit(self) -> None:
        """Used without ``with``: the interpreter waits for the units and saves their records."""
        try:
            self._finish_waiting()
        finally:
            self._close()


# ---- module-level API ---------------------------------------------------------------------------
def package(packageables: Sequence[Packageable]) -> list[Executable]:
    """Packages each request with the plugin that owns its executor spec."""
    executables = []
    for packageable in packageables:
        if not isinstance(packageable, Packageable):
            raise TypeError(f"package() takes xm.Packageable items, got {type(packageable).__name__}")
        try:
            plugin = registry.for_spec(type(packageable.executor_spec))
        except LookupError as error:
            raise TypeError(f"{error}") from None
        if not isinstance(packageable.executable_spec, plugin.supported_executables):
            pairs = "\n  ".join(registry.supported_pairs())
            raise TypeError(
                f"cannot package {type(packageable.executable_spec).__name__} for "
                f"{type(packageable.executor_spec).__name__}; supported pairs:\n  {pairs}"
            )
        executables.append(plugin.package(packageable))
    return executables


def _store(url: Optional[str] = None) -> Store:
    wait_pending_writes()  # Reads see what this process wrote, e.g. a sweep's recorder.
    return Store(url or config.database_url())


def create_experiment(
    experiment_title: str = "",
    *,
    tags: Sequence[str] = (),
    notes: str = "",
    max_parallel: Optional[int] = None,
    database_url: Optional[str] = None,
) -> LocalExperiment:
    """Creates an experiment in the store and returns it, ready for ``with``.

    ``max_parallel`` caps concurrently running local units (default: number of CPUs).
    """
    store = _store(database_url)
    script = os.environ.get("XM_LAUNCH_SCRIPT")
    experiment_id = store.insert_experiment(
        int(time.time() * 1000), experiment_title, list(tags), notes, _user(), script, sys.argv,
    )
    row = store.get_experiment(experiment_id)
    assert row is not None
    created = created_experiments.get()
    if created is not None:
        created.append(experiment_id)
    return LocalExperiment(store, row, live=True, max_parallel=max_parallel)


def _user() -> Optional[str]:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def get_experiment(experiment_id: int | str, *, database_url: Optional[str] = None) -> LocalExperiment:
    """Loads an experiment (from any process); raises ``xm.NotFoundError`` for unknown ids."""
    try:
        number = int(experiment_id)
    except (TypeError, ValueError):
        raise core.NotFoundError(f"experiment id must be a number, got {experiment_id!r}") from None
    store = _store(database_url)
    row = store.get_experiment(number)
    if row is None:
        raise core.NotFoundError(f"no experiment {number} in {store.url}")
    return LocalExperiment(store, row, live=False)


def list_experiments(
    *,
    title: Optional[str] = None,
    tag: Optional[str] = None,
    since: Optional[float] = None,
    until: Optional[float] = None,
    limit: Optional[int] = None,
    database_url: Optional[str] = None,
) -> list[LocalExperiment]:
    """Experiments newest first. ``title`` matches a substring (``*`` as wildcard), ``tag`` exactly,
    ``since``/``until`` are epoch seconds. Costs two queries whatever the count."""
    store = _store(database_url)
    rows = store.list_experiments(title=title, tag=tag, since=since, until=until, limit=limit)
    return [LocalExperiment(store, row, live=False) for row in rows]
