"""A pool of reusable worker processes for Python-callable jobs.

Workers start on first use (one Python start each), then serve task after task, so a
sweep of small functions does not pay an interpreter start per unit. A worker that is
killed (cancel, crash) is dropped and a new one starts on the next task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from xmanager.executors.local import function_worker, processes


class FunctionWorker:
    def __init__(self) -> None:
        env = dict(os.environ)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xmanager.executors.local.function_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        #: The worker's start time (clock ticks since boot): with its pid, what a job's handle records.
        self.ticks = processes.start_ticks(self.process.pid)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdout
        self._out = self.process.stdin
        # Absolute entries: tasks change directory, and '' would then mean the job's folder.
        function_worker.send(self._out, [os.path.abspath(entry) for entry in sys.path])

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, task: dict[str, Any]) -> tuple[str, str]:
        """Runs a task; raises EOFError when the worker dies before replying."""
        try:
            function_worker.send(self._out, task)
        except (BrokenPipeError, OSError) as error:
            raise EOFError(str(error)) from error
        return function_worker.receive(self._in)

    def close(self) -> None:
        for stream in (self._out, self._in):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class FunctionPool:
    """Idle workers handed out one per running task."""

    def __init__(self) -> None:
        self._idle: list[FunctionWorker] = []
        self._lock = threading.Lock()

    def acquire(self) -> FunctionWorker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return FunctionWorker()

    def release(self, worker: FunctionWorker, healthy: bool) -> None:
        if healthy and worker.process.poll() is None:
            with self._lock:
                self._idle.append(worker)
        else:
            worker.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()
