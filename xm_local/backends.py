"""The executor backends one experiment uses: each opened on first use, all closed together."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from xmanager.executors.api import BackendSettings, ExecutorBackend, Handle, LogFiles, StatusSink
from xmanager.xm_local import registry
from xmanager.xm_local.unit_state import JobState


class Backends:
    """Backends by executor name; statuses from all of them go to one sink."""

    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        self._sink = sink
        self._settings = settings
        self._open: dict[str, ExecutorBackend[Any]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> ExecutorBackend[Any]:
        """The backend of the executor plugin registered as ``name``, opened now if need be."""
        backend = self._open.get(name)
        if backend is None:
            with self._lock:
                backend = self._open.get(name)
                if backend is None:
                    backend = self._open[name] = registry.plugin(name).open(self._sink, self._settings)
        return backend

    def stop(self, jobs: Iterable[JobState]) -> None:
        """Cancels the jobs that have a handle, one ``cancel`` call per executor (handles may be another process's)."""
        by_executor: dict[str, list[Handle]] = {}
        for job in jobs:
            if job.handle is not None:
                by_executor.setdefault(job.executor, []).append(job.handle)
        for name, handles in by_executor.items():
            self.get(name).cancel(handles)

    def stop_in_background(self, jobs: Iterable[JobState]) -> None:
        """:meth:`stop` on a thread of its own, for callers that are a backend's own thread."""
        threading.Thread(target=self.stop, args=(tuple(jobs),), name="xm-stop-jobs", daemon=True).start()

    def logs(self, job: JobState) -> LogFiles:
        """Where the job's output can be read (an executor may fetch it into a file first)."""
        if job.handle is None:
            return LogFiles()
        return self.get(job.executor).logs(job.handle)

    def close(self) -> None:
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for backend in opened:
            backend.close()
