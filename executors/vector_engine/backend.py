"""Runs VE kernel units: one VEO process per node, one worker thread per context, results pushed.

Design: units on the same (node, backend) go to one FIFO queue served by up to ``contexts``
runner threads; each thread owns one VEO context of the node's shared ``VeoProc``. For a
unit, a runner stages its device buffers (``alloc_mem`` + async write), calls the kernel,
waits with the executor's timeout, reads out/inout buffers back, frees, and reports
statuses and results. Nothing polls: the control plane gets updates through the sink.

Failures stay on their unit: a binding error, an unknown symbol, a bad conversion, a
kernel exception or a timeout fail that unit, and the others go on. When an isolated host
worker dies (a crash, or a timeout that made us kill it) the node gets a fresh process.
Units that were in flight on the dead one are run again: after a kill, as usual; after a
crash with several units in flight, each suspect runs again *alone* on the node, so the
one that crashes alone is the one to blame and the others complete.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
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
from xmanager.executors.vector_engine.args import BindingError, bind
from xmanager.executors.vector_engine.executor import VectorEngine, VeKernelExecutable, not_compiled, resolve_backend
from xmanager.xm.executables import VeBuffer
from xmanager.xm.status import Status

_log = logging.getLogger(__name__)
NAME = "vector_engine"
STDERR = "stderr.log"
RETURN_KEY = "return"
_INTENTS = {"in": "INTENT_IN", "out": "INTENT_OUT", "inout": "INTENT_INOUT"}
VeUnit = UnitLaunch[VectorEngine]
VeJob = JobLaunch[VectorEngine]


class _Work:
    """One job of one unit, bound and ready to call."""

    __slots__ = ("unit", "job", "executor", "executable", "library", "values", "suspect", "state", "cancelled")

    def __init__(
        self, unit: VeUnit, job: VeJob, executable: VeKernelExecutable, library: str, values: list[Any]
    ) -> None:
        self.unit = unit
        self.job = job
        self.executor = job.executor
        self.executable = executable
        self.library = library
        self.values = values
        self.suspect = False  # In flight at a crash with others: runs again alone.
        self.state = "queued"
        self.cancelled = False

    @property
    def key(self) -> tuple[int, str]:
        return (self.unit.work_unit_id, self.job.job_name)


class _UnitError(Exception):
    """Ends a unit as failed with this message."""


class _NotCompiledError(_UnitError):
    """The kernel did not compile and its spec says ``on_build_error="fail_units"``: its units fail, nothing raises."""


class _TimedOutError(_UnitError):
    """The call did not return in time (in-process, it still runs on its context)."""


class _WorkerDiedError(Exception):
    """The node's process died under this unit (``cause`` says why)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class _Buffers:
    """Device buffers a runner keeps between its units, by size, so a sweep does not pay
    ``alloc_mem``/``free_mem`` (two round trips to the VE) per unit. A runner's calls are
    strictly one after another on its FIFO context, so a buffer is free again once the
    unit's read has completed. Dropped with the process they belong to."""

    MAX_BYTES = 64 * 1024 * 1024
    MAX_PER_SIZE = 4

    def __init__(self) -> None:
        self.generation = -1
        self.free: dict[int, list[int]] = {}
        self.bytes = 0

    def take(self, proc: Any, generation: int, nbytes: int) -> int:
        if generation != self.generation:
            self.generation, self.free, self.bytes = generation, {}, 0
        stack = self.free.get(nbytes)
        if stack:
            self.bytes -= nbytes
            return stack.pop()
        return proc.alloc_mem(nbytes)

    def give(self, proc: Any, generation: int, nbytes: int, addr: int) -> None:
        stack = self.free.setdefault(nbytes, [])
        if generation == self.generation and len(stack) < self.MAX_PER_SIZE and self.bytes + nbytes <= self.MAX_BYTES:
            stack.append(addr)
            self.bytes += nbytes
            return
        try:
            proc.free_mem(addr)
        except Exception as error:  # The unit's outcome is known; a leak is only logged.
            _log.debug("free_mem(0x%x): %s", addr, error)


class _Node:
    """A VE node as this backend uses it: its process, its queue and its runner threads."""

    def __init__(self, backend: VectorEngineBackend, node: int, kind: str, isolated: bool, veorun_bin: Optional[str]):
        self.owner = backend
        self.node, self.kind, self.isolated, self.veorun_bin = node, kind, isolated, veorun_bin
        self.queue: deque[_Work] = deque()
        self.threads: list[threading.Thread] = []
        self.proc: Any = None
        self.generation = 0
        self.functions: dict[tuple[str, str], Any] = {}
        self.inflight: dict[int, set[_Work]] = {}  # generation -> units running on it.
        self.killed: dict[int, str] = {}  # generation -> why we destroyed it (a timeout).
        self.suspects: dict[int, set[_Work]] = {}  # generation -> units in flight when it died.
        self.lock = threading.Lock()
        self.running = 0  # Units taken by runners (guarded by the backend's condition).
        self.exclusive = False  # A suspect runs alone.

    # ---- the process ----------------------------------------------------------------------
    def ensure_proc(self) -> tuple[Any, int]:
        with self.lock:
            if self.proc is None:
                from xmanager.executors.vector_engine import veo_api

                try:
                    self.proc = veo_api.VeoProc(
                        self.node, self.veorun_bin, backend=self.kind, isolated=self.isolated and self.kind == "host"
                    )
                except Exception as error:  # The node is unusable: every unit says why.
                    raise _UnitError(
                        f"could not start the VEO process on node {self.node} ({self.kind}): "
                        f"{type(error).__name__}: {error}"
                    ) from error
                self.generation += 1
                self.functions = {}
            return self.proc, self.generation

    def function(self, proc: Any, work: _Work) -> Any:
        kernel = work.executable.kernel
        key = (work.library, kernel.entry)
        with self.lock:
            function = self.functions.get(key)
            if function is None:
                function = proc.load_library(work.library).find_function(kernel.entry)
                function.args_type(*kernel.arg_types)
                function.ret_type(kernel.ret_type)
                self.functions[key] = function
            return function

    def died(self, generation: int, work: _Work, kill_reason: Optional[str] = None) -> None:
        """Records that ``generation``'s process is gone; the first report drops it."""
        with self.lock:
            if generation not in self.suspects:
                self.suspects[generation] = set(self.inflight.get(generation, ()))
            if kill_reason is not None:
                self.killed[generation] = kill_reason
            if self.generation == generation and self.proc is not None:
                proc, self.proc = self.proc, None
                try:
                    proc.proc_destroy()
                except Exception as error:  # Already gone; nothing else to release.
                    _log.debug("proc_destroy after a death: %s", error)

    def blame(self, generation: int, work: _Work) -> bool:
        """True when ``work`` caused ``generation``'s death (it was alone on it); else marks it a suspect."""
        with self.lock:
            suspects = self.suspects.get(generation, set())
            if generation in self.killed or work not in suspects:
                return False  # We killed it (a timeout), or it started on a process that was already dead.
            if len(suspects) <= 1:
                return True
            work.suspect = True
            return False

    def close(self) -> None:
        with self.lock:
            proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.proc_destroy()
            except Exception as error:  # Closing: report and go on.
                _log.debug("proc_destroy at close: %s", error)


class VectorEngineBackend(ExecutorBackend[VectorEngine]):

    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        del settings  # Concurrency on a node is the executor's ``contexts``.
        self._sink = sink
        self._cv = threading.Condition()
        self._nodes: dict[tuple[int, str, bool, Optional[str]], _Node] = {}
        self._works: dict[tuple[int, str], _Work] = {}
        self._status: dict[tuple[int, str], Status] = {}
        self._closed = False
        self._host = socket.gethostname()

    # ---- the interface ----------------------------------------------------------------------
    def launch(self, units: Sequence[VeUnit]) -> list[Handle]:
        """Binds every job now (bad args fail their unit at once); queues the rest on their node.

        When no unit of the batch could be bound, raises the first error, so a single
        ``add()`` with bad args raises in the launch script; a kernel that did not compile
        under ``on_build_error="fail_units"`` only fails its units (the other kernels run).
        """
        handles: list[Handle] = []
        ready: list[tuple[_Node, _Work]] = []
        failures: list[tuple[VeUnit, VeJob, str]] = []
        first_error: Optional[Exception] = None
        for unit in units:
            prepared = []
            error: Optional[str] = None
            for job in unit.jobs:
                handles.append(self._handle(unit, job))
                if error is None:
                    try:
                        prepared.append(self._prepare(unit, job))
                    except (_UnitError, BindingError, TypeError, ValueError, RuntimeError, OSError) as failure:
                        error = str(failure)
                        if not isinstance(failure, _NotCompiledError):
                            first_error = first_error or failure
            if error is not None:
                failures.extend((unit, job, error) for job in unit.jobs)
            else:
                ready.extend(prepared)
        with self._cv:
            for node, work in ready:
                self._works[work.key] = work
                self._status[work.key] = Status.PENDING
                node.queue.append(work)
                wanted = min(work.executor.contexts, len(node.queue) + sum(1 for t in node.threads if t.is_alive()))
                while len(node.threads) < wanted:
                    thread = threading.Thread(
                        target=self._run_node, args=(node,), name=f"xm-ve{node.node}-{len(node.threads)}", daemon=True
                    )
                    node.threads.append(thread)
                    thread.start()
            self._cv.notify_all()
        for unit, job, message in failures:
            self._finish_failed(unit, job, message)
        if first_error is not None and not ready:
            if isinstance(first_error, _UnitError):
                raise ValueError(str(first_error)) from None
            raise first_error
        return handles

    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        with self._cv:
            return in_memory.refresh(self._status, handles)

    def cancel(self, handles: Sequence[Handle]) -> None:
        """Queued units end as cancelled now; a running call is not interrupted, its unit ends cancelled."""
        dropped: list[_Work] = []
        with self._cv:
            for handle in handles:
                work = self._works.get((handle.work_unit_id, handle.job_name))
                if work is None or self._status.get(work.key, Status.PENDING).is_terminal:
                    continue
                work.cancelled = True
                if work.state == "queued":
                    for node in self._nodes.values():
                        if work in node.queue:
                            node.queue.remove(work)
                            dropped.append(work)
        for work in dropped:
            self._emit(work, Status.CANCELLED, message="cancelled before it started")

    def logs(self, handle: Handle) -> LogFiles:
        work_dir = handle.data.get("work_dir")
        return LogFiles(stderr=os.path.join(work_dir, STDERR)) if work_dir else LogFiles()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            nodes = list(self._nodes.values())
            self._cv.notify_all()
        for node in nodes:
            node.close()

    # ---- preparing ----------------------------------------------------------------------------
    def _prepare(self, unit: VeUnit, job: VeJob) -> tuple[_Node, _Work]:
        executable, executor = job.executable, job.executor
        if not isinstance(executable, VeKernelExecutable):
            raise _UnitError(f"VectorEngine runs packaged xm.VeKernel executables, not {executable.name!r}")
        if executable.build_error is not None:
            raise _NotCompiledError(executable.build_error)
        values = bind(executable.kernel.name, executable.kernel.args, dict(job.kwargs))
        kind = resolve_backend(executor.backend)
        library = self._library(executable, kind)
        key = (executor.node, kind, executor.isolated, executor.veorun_bin)
        with self._cv:
            node = self._nodes.get(key)
            if node is None:
                node = self._nodes[key] = _Node(self, executor.node, kind, executor.isolated, executor.veorun_bin)
        return node, _Work(unit, job, executable, library, values)

    @staticmethod
    def _library(executable: VeKernelExecutable, kind: str) -> str:
        """The kernel's library for backend ``kind``, built once per kernel and backend (here if packaging built
        another backend's); a compile error fails only this kernel's units under ``on_build_error="fail_units"``."""
        from xmanager.executors.vector_engine.build import BuildError

        try:
            return executable.library_for(kind)
        except BuildError as error:
            if executable.on_build_error != "fail_units":
                raise
            executable.build_error = not_compiled(executable.kernel.name, error)
            raise _NotCompiledError(executable.build_error) from None

    # ---- running ------------------------------------------------------------------------------
    def _run_node(self, node: _Node) -> None:
        ctx: Any = None
        ctx_generation = -1
        buffers = _Buffers()
        while True:
            with self._cv:
                while not self._closed and not self._can_take(node):
                    self._cv.wait()
                if self._closed:
                    return
                work = node.queue.popleft()
                work.state = "running"
                node.running += 1
                node.exclusive = work.suspect
            generation = -1
            try:
                proc, generation = node.ensure_proc()
                if ctx is None or ctx_generation != generation:
                    try:
                        ctx, ctx_generation = proc.open_context(), generation
                    except RuntimeError as error:
                        if not _is_death(error):
                            raise
                        node.died(generation, work)  # Died under another unit: this one runs again.
                        ctx = None
                        self._requeue(node, work)
                        continue
                with node.lock:
                    node.inflight.setdefault(generation, set()).add(work)
                self._emit(work, Status.RUNNING, handle=self._handle(work.unit, work.job))
                results = self._call(node, proc, ctx, generation, work, buffers)
            except _WorkerDiedError as death:
                ctx = None
                if node.blame(generation, work):
                    self._fail(work, death.cause)
                else:
                    self._requeue(node, work)
            except _UnitError as failure:
                if isinstance(failure, _TimedOutError) and not node.isolated:
                    ctx = None  # The call still runs on it (a thread cannot be killed); later units get a new context.
                self._fail(work, str(failure))
            except Exception as error:  # Anything unexpected fails this unit only.
                _log.exception("VE unit %s failed unexpectedly", work.key)
                self._fail(work, f"{type(error).__name__}: {error}")
            else:
                if work.cancelled:
                    self._emit(work, Status.CANCELLED, message="cancelled (the kernel call had already started)")
                else:
                    self._emit(work, Status.COMPLETED, results=results, exit_code=0)
            finally:
                with node.lock:
                    node.inflight.get(generation, set()).discard(work)
                with self._cv:
                    node.running -= 1
                    if work.suspect:
                        node.exclusive = False
                    self._cv.notify_all()

    @staticmethod
    def _can_take(node: _Node) -> bool:
        """A unit can start: one is queued, no suspect runs alone, and a suspect waits for an idle node."""
        if not node.queue or node.exclusive:
            return False
        return not node.queue[0].suspect or node.running == 0

    def _requeue(self, node: _Node, work: _Work) -> None:
        with self._cv:
            work.state = "queued"
            node.queue.appendleft(work)
            self._cv.notify_all()

    def _call(
        self, node: _Node, proc: Any, ctx: Any, generation: int, work: _Work, buffers: _Buffers
    ) -> dict[str, Any]:
        """Stages, calls, waits and reads back one unit; returns its results."""
        from xmanager.executors.vector_engine import veo_api as veo

        kernel = work.executable.kernel
        timeout = work.executor.timeout
        allocated: list[tuple[int, int]] = []  # (nbytes, address)
        reusable = True  # False when the call may still be writing into its buffers.
        writes: list[Any] = []
        reads: list[tuple[str, Any, Any]] = []  # (name, host array, request)
        stacks: list[tuple[str, Any]] = []

        def dead(error: BaseException) -> _WorkerDiedError:
            node.died(generation, work)
            why = f"{type(error).__name__}: {error}"
            return _WorkerDiedError(f"the VE process on node {node.node} died during the call: {why}")

        try:
            try:
                function = node.function(proc, work)
            except RuntimeError as error:
                if _is_death(error):
                    raise dead(error) from error
                raise _UnitError(f"VeKernel {kernel.name!r}: {error}") from error
            values: list[Any] = []
            device: list[tuple[str, VeBuffer, Any, int]] = []
            for (name, _), value in zip(kernel.args, work.values):
                if not isinstance(value, VeBuffer):
                    values.append(value)
                    continue
                host = value.staging_copy()
                if value.placement == "stack":
                    stacks.append((name, host))
                    values.append(veo.OnStack(host, inout=getattr(veo, _INTENTS[value.intent])))
                    continue
                nbytes = max(1, host.nbytes)
                try:
                    addr = buffers.take(proc, generation, nbytes)
                except MemoryError as error:
                    why = f"argument {name!r}: could not allocate {nbytes} bytes on the VE: {error}"
                    raise _UnitError(why) from error
                allocated.append((nbytes, addr))
                if host.nbytes:  # An "out" buffer starts as zeros, whatever the memory held before.
                    writes.append(ctx.async_write_mem(addr, host, host.nbytes))
                device.append((name, value, host, addr))
                values.append(addr)
            request = function(ctx, *values)
            if request is None:
                raise _UnitError(f"VeKernel {kernel.name!r}: the call could not be queued (veo_call_async failed)")
            for name, value, host, addr in device:
                if value.copies_out and host.nbytes:
                    reads.append((name, host, ctx.async_read_mem(host, addr, host.nbytes)))
            for write in writes:
                write.wait_result()
            try:
                returned = request.wait_result(timeout=timeout)
            except veo.VeoTimeoutError as error:
                reusable = False
                message = f"VeKernel {kernel.name!r} timed out after {timeout:g} s"
                if node.isolated:
                    node.died(generation, work, kill_reason=message)
                    message += "; its worker process was killed and restarted for the other units"
                else:
                    message += "; it runs on in the launcher's process (isolated=True can stop it)"
                raise _TimedOutError(message) from error
            except ArithmeticError as error:
                message = f"VeKernel {kernel.name!r} raised a VE exception: {error}"
                if node.isolated:  # The worker died of the signal, under every unit in flight on it.
                    node.died(generation, work)
                    raise _WorkerDiedError(message) from error
                raise _UnitError(message) from error
            except RuntimeError as error:
                if _is_death(error) or node.killed.get(generation):
                    raise dead(error) from error
                raise _UnitError(f"VeKernel {kernel.name!r} failed: {error}") from error
            for _, _, read in reads:
                read.wait_result()
        except ValueError as error:  # py-veo's conversion errors (wrong count or type).
            raise _UnitError(f"VeKernel {kernel.name!r}: {error}") from error
        except (RuntimeError, OSError, ArithmeticError) as error:
            signal = node.isolated and isinstance(error, ArithmeticError)
            if _is_death(error) or signal or generation in node.killed or generation in node.suspects:
                raise dead(error) from error
            raise _UnitError(f"VeKernel {kernel.name!r}: {type(error).__name__}: {error}") from error
        finally:
            if generation not in node.suspects and reusable:
                for nbytes, addr in allocated:
                    buffers.give(proc, generation, nbytes, addr)
        results: dict[str, Any] = {}
        if kernel.ret_type != "void":
            results[RETURN_KEY] = returned
        for name, host, _ in reads:
            results[name] = self._result_array(work, name, host)
        for name, host in stacks:
            buffer = work.values[kernel.arg_names.index(name)]
            if buffer.copies_out:
                results[name] = self._result_array(work, name, host)
        return results

    def _result_array(self, work: _Work, name: str, array: Any) -> Any:
        """A list when small enough to keep in the store, else the path of a ``.npy`` file in the job's folder."""
        if array.nbytes <= work.executor.inline_results_bytes:
            return array.tolist()
        import numpy

        os.makedirs(work.job.work_dir, exist_ok=True)
        path = os.path.join(work.job.work_dir, f"{name}.npy")
        numpy.save(path, array)
        return path

    # ---- reporting ----------------------------------------------------------------------------
    def _handle(self, unit: VeUnit, job: VeJob) -> Handle:
        data: dict[str, Any] = {"work_dir": job.work_dir, "host": self._host,
                                "node": job.executor.node, "backend": job.executor.backend}
        return Handle(NAME, unit.experiment_id, unit.work_unit_id, job.job_name, data)

    def _emit(self, work: _Work, status: Status, **fields: Any) -> None:
        with self._cv:
            self._status[work.key] = status
        self._sink(
            StatusUpdate(work.unit.experiment_id, work.unit.work_unit_id, work.job.job_name, status,
                         host=self._host, **fields)
        )

    def _fail(self, work: _Work, message: str) -> None:
        if work.cancelled:
            self._emit(work, Status.CANCELLED, message="cancelled")
            return
        _write_error(work.job.work_dir, message)
        self._emit(work, Status.FAILED, message=message, exit_code=1)

    def _finish_failed(self, unit: VeUnit, job: VeJob, message: str) -> None:
        with self._cv:
            self._status[(unit.work_unit_id, job.job_name)] = Status.FAILED
        _write_error(job.work_dir, message)
        self._sink(
            StatusUpdate(unit.experiment_id, unit.work_unit_id, job.job_name, Status.FAILED, message=message,
                         exit_code=1, host=self._host, handle=self._handle(unit, job))
        )


def _is_death(error: BaseException) -> bool:
    from xmanager.executors.vector_engine import veo_api as veo

    return isinstance(error, veo.ProcGoneError)


def _write_error(work_dir: str, message: str) -> None:
    """The unit's error, also in ``stderr.log`` in its folder (what ``xmanager logs`` shows)."""
    try:
        os.makedirs(work_dir, exist_ok=True)
        with open(os.path.join(work_dir, STDERR), "a", encoding="utf-8") as handle:
            handle.write(f"xmanager: {message.rstrip()}\n")
    except OSError as error:
        _log.warning("cannot write the error of %s: %s", work_dir, error)
