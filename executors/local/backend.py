"""Runs work units as local processes, with a concurrency limit, pushing status updates.

Design: ``slots`` worker threads (default: the number of CPUs) take units from a FIFO
queue. A unit costs as many slots as the CPUs its jobs request (at least one per job,
at most all slots). A worker starts the unit's jobs directly with ``Popen`` (no shell)
and blocks in ``wait()``; nothing polls. Statuses go to the sink as they happen.

Right before a unit starts, the control plane's ``may_start`` is asked (a cancellation
recorded by any process stops it there). A start that fails, whatever the exception,
fails its job with the reason and the worker goes on with the next unit.

Exit records for when the launcher is gone: a Python-callable job's worker writes
``exit.json`` (outcome and results, atomically) into the job's folder before it replies,
and the launcher writes the serving worker's pid there (``worker.json``) before it sends
the task. A binary's exit is known only to its launcher; :meth:`LocalBackend.refresh`
(used once the launcher died) counts a binary gone with a results file (written atomically
by ``xm.report``) as completed with its exit code unknown, and one gone without as failed
with :data:`LAUNCHER_DIED`.
"""

from __future__ import annotations

import functools
import json
import math
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, Any, Optional

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
from xmanager.executors.local import Local, processes
from xmanager.executors.local import containers as container_jobs
from xmanager.executors.local.function_pool import FunctionPool, FunctionWorker
from xmanager.executors.packaging import LocalExecutable
from xmanager.xm.report import RESULTS_ENV
from xmanager.xm.resources import ResourceType
from xmanager.xm.status import Status

NAME = "local"
STDOUT, STDERR, RESULTS = "stdout.log", "stderr.log", "results.json"
#: A Python-callable job's exit record and the pid of the worker serving it, in the job's folder.
EXIT_RECORD, WORKER_RECORD = "exit.json", "worker.json"
LAUNCHER_DIED = processes.LAUNCHER_DIED
#: How long a started binary without a recorded pid, not found, is given to finish its exec before
#: it is looked for again (its launcher died between ``fork`` and ``exec``).
_EXEC_GRACE_S = 0.5


def _paths(work_dir: str) -> tuple[str, str, str]:
    return (os.path.join(work_dir, STDOUT), os.path.join(work_dir, STDERR), os.path.join(work_dir, RESULTS))


def _make_work_dir(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, in two ``mkdir`` calls when the jobs folder exists."""
    for folder in (os.path.dirname(path), path):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)
            return


def _append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")


def read_results(path: str) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """(results, error): the job's results file, or why it cannot be used."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, None
    try:
        value = json.loads(text)
    except ValueError as error:
        return None, f"results file {path} is not valid JSON: {error}"
    if not isinstance(value, dict):
        return None, f"results file {path} holds {type(value).__name__}, expected a JSON object"
    return value, None


def _write_atomically(path: str, value: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
    os.replace(tmp, path)


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _find_by_results_path(results_path: str) -> Optional[tuple[int, int]]:
    """The process started with ``XM_RESULTS_PATH=results_path`` (a job whose pid was not recorded
    before its launcher died), found through /proc; None when there is none."""
    needle = f"{RESULTS_ENV}={results_path}".encode() + b"\0"
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if (b"\0" + environ).find(b"\0" + needle) >= 0:
            ticks = processes.start_ticks(int(name))
            if ticks is not None:
                return int(name), ticks
    return None


class _Running:
    """A started job: its process (or the function worker serving it, or its container's init) by pid
    and start ticks, and the worker or container."""

    __slots__ = ("pid", "ticks", "worker", "container", "docker_host")

    def __init__(
        self,
        pid: int,
        ticks: Optional[int],
        worker: Optional[FunctionWorker] = None,
        container: Any = None,
        docker_host: Optional[str] = None,
    ) -> None:
        self.pid = pid
        self.ticks = ticks
        self.worker = worker
        self.container = container
        self.docker_host = docker_host

    def stop(self) -> None:
        if self.container is not None:
            container_jobs.stop(self.docker_host, self.container.id)
        else:
            processes.terminate(self.pid, self.ticks)


class LocalBackend(ExecutorBackend[Local]):
    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        self._sink = sink
        self._slots = max(1, settings.max_parallel or os.cpu_count() or 1)
        self._cv = threading.Condition()
        self._queue: deque[tuple[UnitLaunch[Local], int]] = deque()
        self._free = self._slots
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._running: dict[tuple[int, str], _Running] = {}
        self._cancelled: set[tuple[int, str]] = set()
        self._host = socket.gethostname()
        self._base_env = dict(os.environ)
        self._functions = FunctionPool()
        self._docker_host = os.environ.get("DOCKER_HOST") or None
        self._may_start = settings.may_start
        self._stream_output = settings.stream_output

    # ---- the interface ----------------------------------------------------------------
    def launch(self, units: Sequence[UnitLaunch[Local]]) -> list[Handle]:
        handles = []
        with self._cv:
            for unit in units:
                self._queue.append((unit, self._weight(unit)))
                for job in unit.jobs:
                    handles.append(self._handle(unit, job, None))
            while len(self._threads) < min(self._slots, len(self._queue) + self._busy()):
                thread = threading.Thread(target=self._work, name=f"xm-local-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cv.notify_all()
        return handles

    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        updates = []
        for handle in handles:
            container = handle.data.get("container")
            if container is not None:
                status, message = self._container_status(handle.data)
            else:
                updates.append(self._process_status(handle))
                continue
            updates.append(
                StatusUpdate(handle.experiment_id, handle.work_unit_id, handle.job_name, status, message=message)
            )
        return updates

    def _process_status(self, handle: Handle) -> StatusUpdate:
        """A process job's status as what it left shows, for a job whose launcher is gone: its exit
        record, else its process (by recorded pid, the worker's record, or its environment), else its
        results file (a binary that reported and exited) or :data:`LAUNCHER_DIED`."""
        data = dict(handle.data)
        work_dir = data.get("work_dir")

        def update(status: Status, message: str = "", **fields: Any) -> StatusUpdate:
            return StatusUpdate(handle.experiment_id, handle.work_unit_id, handle.job_name, status,
                                message=message, **fields)

        def recorded() -> Optional[StatusUpdate]:
            record = _read_json(os.path.join(work_dir, EXIT_RECORD)) if work_dir else None
            if not isinstance(record, dict):
                return None
            if record.get("outcome") == "ok":
                return update(Status.COMPLETED, exit_code=0, results=record.get("results") or {})
            return update(Status.FAILED, str(record.get("message") or "failed"), exit_code=1)

        done = recorded()
        if done is not None:
            return done
        pid, ticks = data.get("pid"), data.get("ticks")
        if pid is None and work_dir:
            worker = _read_json(os.path.join(work_dir, WORKER_RECORD))
            if isinstance(worker, dict):
                pid, ticks = worker.get("pid"), worker.get("ticks")
            elif os.path.exists(os.path.join(work_dir, STDOUT)):  # A start was tried: look for it.
                results_path = os.path.join(work_dir, RESULTS)
                found = _find_by_results_path(results_path)
                if found is None and not os.path.exists(results_path):
                    # A child that the dead launcher's Popen forked but had not exec'd yet still shows the
                    # launcher's environment, not the job's: look again once it has had time to exec.
                    time.sleep(_EXEC_GRACE_S)
                    found = _find_by_results_path(results_path)
                if found is not None:
                    pid, ticks = found
        if pid is None and not (work_dir and os.path.exists(os.path.join(work_dir, STDOUT))):
            return update(Status.PENDING, "queued")  # Never started.
        if pid is not None and processes.is_alive(pid, ticks):
            data.update(pid=pid, ticks=ticks)
            return update(Status.RUNNING, handle=Handle(NAME, handle.experiment_id, handle.work_unit_id,
                                                        handle.job_name, data))
        done = recorded()  # It may have ended since the first look.
        if done is not None:
            return done
        if work_dir and not os.path.exists(os.path.join(work_dir, WORKER_RECORD)):
            results, error = read_results(os.path.join(work_dir, RESULTS))
            if results is not None and error is None:
                return update(Status.COMPLETED, "exit code unknown (its launcher died); its results were "
                              "written", results=results)
        return update(Status.FAILED, LAUNCHER_DIED)

    @staticmethod
    def _container_status(data: Any) -> tuple[Status, str]:
        try:
            state = container_jobs.state(data.get("docker_host"), data["container"])
        except Exception:  # The engine does not answer: judge by the container's init process.
            if data.get("pid") and processes.is_alive(data["pid"], data.get("ticks")):
                return Status.RUNNING, ""
            return Status.FAILED, "the Docker engine does not answer and the container's process is gone"
        if state in ("running", "created", "restarting", "paused"):
            return Status.RUNNING, ""
        return Status.FAILED, "the container is gone and its exit was not recorded"

    def cancel(self, handles: Sequence[Handle]) -> None:
        to_stop: list[Callable[[], None]] = []
        dequeued: list[UnitLaunch[Local]] = []
        with self._cv:
            keys = {(h.work_unit_id, h.job_name) for h in handles}
            self._cancelled.update(keys)
            kept: deque[tuple[UnitLaunch[Local], int]] = deque()
            for unit, weight in self._queue:
                if any((unit.work_unit_id, job.job_name) in keys for job in unit.jobs):
                    dequeued.append(unit)
                else:
                    kept.append((unit, weight))
            self._queue = kept
            for key in keys:
                running = self._running.get(key)
                if running is not None:
                    to_stop.append(running.stop)
            for handle in handles:  # Handles from another process: stop by recorded container or pid.
                if (handle.work_unit_id, handle.job_name) in self._running:
                    continue
                data = handle.data
                if data.get("container") is not None:
                    stop = functools.partial(container_jobs.stop, data.get("docker_host"), data["container"], True)
                    to_stop.append(stop)
                elif data.get("pid") is not None:
                    to_stop.append(functools.partial(processes.terminate, data["pid"], data.get("ticks")))
            self._cv.notify_all()
        for unit in dequeued:
            for job in unit.jobs:
                self._emit(unit, job, Status.CANCELLED, message="cancelled before it started")
        stoppers = [threading.Thread(target=_quietly, args=(item,), daemon=True) for item in to_stop]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()

    def logs(self, handle: Handle) -> LogFiles:
        work_dir = handle.data.get("work_dir")
        if not work_dir:
            return LogFiles()
        stdout, stderr, _ = _paths(work_dir)
        return LogFiles(stdout=stdout, stderr=stderr)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._functions.close()

    # ---- scheduling ------------------------------------------------------------------------
    def _busy(self) -> int:
        return self._slots - self._free

    def _weight(self, unit: UnitLaunch[Local]) -> int:
        total = 0
        for job in unit.jobs:
            cpus = job.executor.requirements.task_requirements.get(ResourceType.CPU, 1)
            total += max(1, math.ceil(cpus)) if math.isfinite(cpus) else 1  # Nonsense counts as one slot.
        return min(total, self._slots)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not (self._queue and self._free >= self._queue[0][1]):
                    self._cv.wait()
                if self._closed:
                    return
                unit, weight = self._queue.popleft()
                self._free -= weight
            try:
                self._run_unit(unit)
            except Exception as error:  # Never lose a worker thread: its slot would be gone for good.
                sys.stderr.write(f"xmanager: work unit {unit.work_unit_id} could not run: {error!r}\n")
            finally:
                with self._cv:
                    self._free += weight
                    self._cv.notify_all()

    def _run_unit(self, unit: UnitLaunch[Local]) -> None:
        reason = self._refusal(unit)
        if reason is not None:
            with self._cv:
                self._cancelled.update((unit.work_unit_id, job.job_name) for job in unit.jobs)
            for job in unit.jobs:
                self._emit(unit, job, Status.CANCELLED, message=reason)
            return
        if len(unit.jobs) == 1:
            self._run_job(unit, unit.jobs[0], None)
            return
        # Several jobs start together, each waited on by its own thread; the slot is held
        # until all end. Stopping the rest when one fails is the control plane's call.
        done: queue.SimpleQueue[str] = queue.SimpleQueue()
        for job in unit.jobs:
            threading.Thread(target=self._run_job, args=(unit, job, done), daemon=True).start()
        for _ in unit.jobs:
            done.get()

    def _refusal(self, unit: UnitLaunch[Local]) -> Optional[str]:
        """Why the unit must not start (the control plane's ``may_start``), or None."""
        if self._may_start is None:
            return None
        try:
            return self._may_start(unit.experiment_id, unit.work_unit_id)
        except Exception as error:  # The check itself failed: the unit is not started blindly.
            return f"not started: could not check for a cancellation ({type(error).__name__}: {error})"

    # ---- one job -----------------------------------------------------------------------------
    def _handle(self, unit: UnitLaunch[Local], job: JobLaunch[Local], running: Optional[_Running]) -> Handle:
        data: dict[str, Any] = {"work_dir": job.work_dir}
        if running is not None:
            data.update(pid=running.pid, ticks=running.ticks, host=self._host)
            if running.container is not None:
                data.update(container=running.container.id, docker_host=running.docker_host)
        return Handle(NAME, unit.experiment_id, unit.work_unit_id, job.job_name, data)

    def _emit(self, unit: UnitLaunch[Local], job: JobLaunch[Local], status: Status, **fields: Any) -> None:
        self._sink(StatusUpdate(unit.experiment_id, unit.work_unit_id, job.job_name, status, **fields))

    def _run_job(self, unit: UnitLaunch[Local], job: JobLaunch[Local], done: Optional[queue.SimpleQueue[str]]) -> None:
        key = (unit.work_unit_id, job.job_name)
        stdout, stderr, results_path = _paths(job.work_dir)
        executable = job.executable
        assert isinstance(executable, (LocalExecutable, container_jobs.ContainerExecutable))
        env = {**job.env, RESULTS_ENV: results_path, "PYTHONUNBUFFERED": "1"}
        try:
            _make_work_dir(job.work_dir)
            with self._cv:
                if key in self._cancelled:
                    raise _CancelledError
            if isinstance(executable, container_jobs.ContainerExecutable):
                run = self._run_container
            else:
                run = self._run_function if executable.is_function else self._run_process
            run(unit, job, env, (stdout, stderr, results_path))
        except _CancelledError:
            self._emit(unit, job, Status.CANCELLED, message="cancelled before it started")
        except Exception as error:  # Whatever failed the start (e.g. a NUL byte), the job fails with it.
            message = f"could not start: {error}" if isinstance(error, OSError) else \
                f"could not start: {type(error).__name__}: {error}"
            try:
                _append_line(stderr, f"xmanager: {message}")
            except (OSError, ValueError):
                pass
            self._emit(unit, job, Status.FAILED, message=message, host=self._host)
        finally:
            with self._cv:
                self._running.pop(key, None)
            if done is not None:
                done.put(job.job_name)

    def _started(self, unit: UnitLaunch[Local], job: JobLaunch[Local], running: _Running) -> None:
        key = (unit.work_unit_id, job.job_name)
        with self._cv:
            self._running[key] = running
            cancelled = key in self._cancelled
        self._emit(unit, job, Status.RUNNING, host=self._host, handle=self._handle(unit, job, running))
        if cancelled:  # Cancelled between the check and the start.
            running.stop()

    def _finish(
        self,
        unit: UnitLaunch[Local],
        job: JobLaunch[Local],
        ok: bool,
        message: str,
        exit_code: Optional[int],
        results: Optional[dict[str, Any]],
    ) -> Status:
        with self._cv:
            cancelled = (unit.work_unit_id, job.job_name) in self._cancelled
        if cancelled and not ok:
            status, message = Status.CANCELLED, "cancelled"
        else:
            status = Status.COMPLETED if ok else Status.FAILED
        self._emit(unit, job, status, message=message, exit_code=exit_code, host=self._host, results=results)
        return status

    def _run_process(
        self,
        unit: UnitLaunch[Local],
        job: JobLaunch[Local],
        env: dict[str, str],
        paths: tuple[str, str, str],
    ) -> Status:
        stdout, stderr, results_path = paths
        executable = job.executable
        assert isinstance(executable, LocalExecutable)
        stream = job.executor.experimental_stream_output and self._stream_output
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            before = processes.boot_clock_ns()
            process = subprocess.Popen(
                [*executable.command, *job.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stream else out,
                stderr=err,
                env={**self._base_env, **env},
                start_new_session=True,
            )
            self._started(unit, job, _Running(process.pid, processes.new_start_ticks(process.pid, before)))
            if stream:
                assert process.stdout is not None
                with process.stdout:
                    _tee(process.stdout, out, f"[{unit.work_unit_id}/{job.job_name}] ")
        code = process.wait()
        results, error = read_results(results_path)
        if error is not None:
            _append_line(stderr, f"xmanager: {error}")
        ok = code == 0 and error is None
        message = "" if ok else (error or processes.describe_exit(code))
        return self._finish(unit, job, ok, message, code, results)

    def _run_function(
        self,
        unit: UnitLaunch[Local],
        job: JobLaunch[Local],
        env: dict[str, str],
        paths: tuple[str, str, str],
    ) -> Status:
        stdout, stderr, results_path = paths
        executable = job.executable
        assert isinstance(executable, LocalExecutable)
        worker = self._functions.acquire()
        running = _Running(worker.pid, worker.ticks, worker)
        # Before the task is sent: whoever finds this job after the launcher died knows its worker.
        try:
            _write_atomically(os.path.join(job.work_dir, WORKER_RECORD), {"pid": worker.pid, "ticks": worker.ticks})
        except BaseException:
            self._functions.release(worker, True)
            raise
        self._started(unit, job, running)
        task = {
            "exit_path": os.path.join(job.work_dir, EXIT_RECORD),
            "function": executable.function,
            "kwargs": dict(job.kwargs),
            "env": env,
            "stdout": stdout,
            "stderr": stderr,
            "results_path": results_path,
        }
        healthy = False
        try:
            outcome, payload = worker.call(task)
            healthy = True
        except EOFError:
            code = worker.process.wait()
            outcome, payload = "error", f"the worker process died ({processes.describe_exit(code)})"
            _append_line(stderr, f"xmanager: {payload}")
        finally:
            self._functions.release(worker, healthy)
        if outcome == "ok":
            return self._finish(unit, job, True, "", 0, json.loads(payload))
        return self._finish(unit, job, False, payload, 1, None)


    def _run_container(
        self,
        unit: UnitLaunch[Local],
        job: JobLaunch[Local],
        env: dict[str, str],
        paths: tuple[str, str, str],
    ) -> Status:
        stdout, stderr, results_path = paths
        executable = job.executable
        assert isinstance(executable, container_jobs.ContainerExecutable)
        try:
            client = container_jobs.client_for(self._docker_host)
        except Exception as error:  # No engine (DockerUnavailableError) or no SDK: the job cannot start.
            raise container_jobs.StartError(str(error)) from None
        labels = {
            container_jobs.LABEL_EXPERIMENT: str(unit.experiment_id),
            container_jobs.LABEL_WORK_UNIT: str(unit.work_unit_id),
            container_jobs.LABEL_JOB: job.job_name,
        }
        kwargs = container_jobs.create_kwargs(executable, job.executor, job.args, env, job.work_dir, labels)
        name = container_jobs.container_name(unit.experiment_id, unit.work_unit_id, job.job_name)
        container = container_jobs.create_and_start(client, kwargs, name)
        try:
            stream = job.executor.experimental_stream_output and self._stream_output
            prefix = f"[{unit.work_unit_id}/{job.job_name}] " if stream else None
            pumps = [
                container_jobs.LogPump(container, stdout, True, prefix),
                container_jobs.LogPump(container, stderr, False),
            ]
            pid = int(container.attrs["State"]["Pid"])  # The container's init, as the host sees it.
            ticks = processes.start_ticks(pid) if pid else None
            self._started(unit, job, _Running(pid, ticks, container=container, docker_host=self._docker_host))
            try:
                code = container_jobs.wait(container)
            except Exception as error:  # The engine went away or the container vanished mid-run.
                lost = f"lost track of container {container.short_id}: {error}"
                _append_line(stderr, f"xmanager: {lost}")
                return self._finish(unit, job, False, lost, None, None)
            for pump in pumps:
                pump.finish()
        finally:
            container_jobs.remove_quietly(container)
        results, unusable = read_results(results_path)
        if unusable is not None:
            _append_line(stderr, f"xmanager: {unusable}")
        ok = code == 0 and unusable is None
        signalled = 128 < code <= 128 + 64  # The engine reports a signal death as 128 + signal.
        message = "" if ok else (unusable or processes.describe_exit(-(code - 128) if signalled else code))
        return self._finish(unit, job, ok, message, code, results)


class _CancelledError(Exception):
    pass


def _quietly(stop: Callable[[], None]) -> None:
    """Runs a stop action in a thread; a job that is already gone is not an error."""
    try:
        stop()
    except Exception as error:  # Reported, never raised into cancel()'s caller thread.
        sys.stderr.write(f"xmanager: could not stop a job: {error}\n")


def _tee(pipe: IO[bytes], log: IO[bytes], prefix: str) -> None:
    """Copies a job's stdout to its log and to our stdout, each line prefixed. Each line reaches the log as it
    comes (readers follow it while the job runs: ``xmanager logs``, the dashboard)."""
    for line in pipe:
        log.write(line)
        log.flush()
        sys.stdout.write(prefix + line.decode("utf-8", "replace"))
    sys.stdout.flush()
