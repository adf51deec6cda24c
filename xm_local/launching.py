"""Launching: a unit's jobs become launch requests, handed to their executors in batches.

Each job gets its argv tail (packaging args merged with the job's, ``ShellSafeArg`` expanded
against its environment), its environment (``XM_EXPERIMENT_ID``, ``XM_WORK_UNIT_ID``,
``XM_JOB_NAME`` added) and a work folder. Inside :meth:`Launcher.batch` (``add_sweep``) requests
are collected and each executor gets them in one ``launch`` call, which is how a sweep becomes
job arrays. A refused launch fails the units it carried, with the executor's message.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import ChainMap
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from xmanager.executors.api import ExecutorPlugin, JobLaunch, StatusUpdate, UnitLaunch
from xmanager.xm.args import merge_args
from xmanager.xm.core import refuse_nul_bytes
from xmanager.xm.job_blocks import Executable, Job
from xmanager.xm.status import Status
from xmanager.xm.utils import env_expanding_escaper
from xmanager.xm_local import registry
from xmanager.xm_local.backends import Backends
from xmanager.xm_local.store import Store
from xmanager.xm_local.tracking import UnitTracker

Request = tuple[ExecutorPlugin[Any], UnitLaunch[Any]]


class Launcher:
    """Launches the units of one experiment through their executors' backends."""

    def __init__(self, tracker: UnitTracker, store: Store, backends: Backends, jobs_root: str) -> None:
        self._tracker = tracker
        self._store = store
        self._backends = backends
        self._jobs_root = jobs_root
        self._batch: Optional[list[Request]] = None
        self._executables: dict[int, dict[str, Any]] = {}

    def launch(self, work_unit_id: int, jobs: Sequence[Job]) -> None:
        """Records the unit's new jobs and launches them (or adds them to the open batch)."""
        experiment_id = self._tracker.experiment_id
        refuse_nul_bytes(jobs, work_unit_id)  # Jobs a generator launches: the unit fails with the reason.
        named: list[tuple[str, Job, ExecutorPlugin[Any]]] = []
        for job in jobs:
            assert job.name is not None
            named.append((job.name, job, registry.for_executor(type(job.executor))))
        with self._tracker.lock:
            self._tracker.machine.add_jobs(work_unit_id, [(name, plugin.name) for name, _, plugin in named])
        base_env = {"XM_EXPERIMENT_ID": str(experiment_id), "XM_WORK_UNIT_ID": str(work_unit_id)}
        by_plugin: dict[str, tuple[ExecutorPlugin[Any], list[JobLaunch[Any]]]] = {}
        for name, job, plugin in named:
            request = self._job_launch(name, job, work_unit_id, base_env)
            self._store.create_job(experiment_id, work_unit_id, name, plugin.name, self._described(job.executable),
                                   request.args, request.env)
            by_plugin.setdefault(plugin.name, (plugin, []))[1].append(request)
        requests = [(plugin, UnitLaunch(experiment_id, work_unit_id, tuple(launches)))
                    for plugin, launches in by_plugin.values()]
        if self._batch is not None:
            self._batch.extend(requests)
        else:
            self._submit(requests)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Units launched inside go to their executors in one ``launch`` call each, when it ends."""
        if self._batch is not None:
            yield
            return
        self._batch = []
        try:
            yield
        finally:
            batch, self._batch = self._batch, None
            self._submit(batch)

    def _job_launch(self, name: str, job: Job, work_unit_id: int, base_env: dict[str, str]) -> JobLaunch[Any]:
        merged = merge_args(job.executable.args, job.args)
        env = {**job.executable.env_vars, **job.env_vars, **base_env, "XM_JOB_NAME": name}
        return JobLaunch(
            job_name=name, executable=job.executable, executor=job.executor,
            args=tuple(merged.to_list(env_expanding_escaper(ChainMap(env, os.environ)))),
            kwargs=merged.to_indexed_dict(), env=env,
            work_dir=os.path.join(self._jobs_root, str(work_unit_id), name),
        )

    def _described(self, executable: Executable) -> dict[str, Any]:
        """What the store keeps of an executable (its type, name and command), once per executable."""
        described = self._executables.get(id(executable))
        if described is None:
            described = {"type": type(executable).__name__, "name": executable.name}
            if hasattr(executable, "command"):
                described["command"] = list(executable.command)
            self._executables[id(executable)] = described
        return described

    def _submit(self, requests: Sequence[Request]) -> None:
        """Launches ``requests`` on their backends; if a backend refuses, its units fail with its message."""
        by_plugin: dict[str, tuple[ExecutorPlugin[Any], list[UnitLaunch[Any]]]] = {}
        for plugin, request in requests:
            by_plugin.setdefault(plugin.name, (plugin, []))[1].append(request)
        first_error: Optional[BaseException] = None
        for plugin, batch in by_plugin.values():
            backend = self._backends.get(plugin.name)
            if plugin.detached:
                # Rows before queueing: a launcher killed during a long submission leaves jobs queued
                # without stored handles, which another process then finds (``recover``) by these rows.
                self._store.flush()
            try:
                handles = backend.launch(batch)
            except Exception as error:  # Reported on the units, then raised to the caller.
                first_error = first_error or error
                self._failed(batch, f"{type(error).__name__}: {error}")
                continue
            logs = [backend.logs(handle) for handle in handles]
            machine = self._tracker.machine
            with self._tracker.lock:
                if plugin.detached:
                    for request in batch:
                        machine.detach(request.work_unit_id)
                new = [machine.set_handle(h.work_unit_id, h.job_name, h, files.stderr or files.stdout)
                       for h, files in zip(handles, logs)]
            if plugin.detached:  # Another process will need them to follow, cancel or read the jobs.
                for handle, files, is_new in zip(handles, logs, new):
                    if is_new:
                        self._store.record_handle(handle.experiment_id, handle.work_unit_id, handle.job_name,
                                                  handle.to_json(), files.stdout, files.stderr)
        if first_error is not None:
            raise first_error

    def _failed(self, batch: Sequence[UnitLaunch[Any]], message: str) -> None:
        now = time.time()
        for request in batch:
            for job in request.jobs:
                self._tracker.on_status(StatusUpdate(request.experiment_id, request.work_unit_id, job.job_name,
                                                     Status.FAILED, at=now, message=message))
