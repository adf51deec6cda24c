"""Isolated host backend: one worker process per proc, so a crashing kernel kills the worker, not the caller.

The worker (``host_worker.py``) owns the memory and the loaded libraries, exactly as a
VE process does; the addresses it hands out mean nothing in this process, so a host
pointer can never be dereferenced by mistake. Transfers up to ``INLINE_LIMIT`` bytes
travel inside the messages; larger ones go through a shared-memory file in /dev/shm.
When the worker dies, every pending and later request fails: ``ArithmeticError`` for
SIGFPE (a kernel's arithmetic exception, like a VE exception), ``KernelCrashError``
naming the signal otherwise. ``destroy()`` kills the worker, which also stops a kernel
that never returns.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Optional

from xmanager.executors.vector_engine.host import symbol_table
from xmanager.executors.vector_engine.veo_api import (
    CType,
    KernelArithmeticError,
    KernelCrashError,
    OnStack,
    ProcGoneError,
    VeoRequest,
    VeoTimeoutError,
    check_timeout,
    unfinished,
)

INLINE_LIMIT = 256 * 1024
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "host_worker.py")
_SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_ERRORS: dict[str, type[BaseException]] = {
    "RuntimeError": RuntimeError,
    "ValueError": ValueError,
    "MemoryError": MemoryError,
    "ArithmeticError": ArithmeticError,
    "ZeroDivisionError": ArithmeticError,
    "OverflowError": ArithmeticError,
}


class IsolatedRequest(VeoRequest):
    """A request answered by the worker; ``finish`` turns the reply into the result (copy-backs)."""

    __slots__ = ("_event", "_value", "_error", "_finish")

    def __init__(self, ctx: Any, finish: Optional[Callable[[bool, Any], Any]]) -> None:
        self.ctx = ctx
        self._event = threading.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._finish = finish

    def _complete(self, ok: bool, payload: Any) -> None:
        try:
            if self._finish is not None:
                payload = self._finish(ok, payload)
            if ok:
                self._value = payload
            else:
                self._error = payload
        except BaseException as error:  # A failed copy-back is this request's error, not the reader's.
            self._error = RuntimeError(f"completing the command failed: {error}")
        self._event.set()

    def _result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def peek_result(self) -> Any:
        if not self._event.is_set():
            raise unfinished()
        return self._result()

    def wait_result(self, timeout: Optional[float] = None) -> Any:
        if not self._event.wait(None if timeout is None else check_timeout(timeout)):
            raise VeoTimeoutError(
                f"command did not finish within {timeout} s (it keeps running; proc_destroy() kills the worker)"
            )
        return self._result()


class _Segment:
    """A shared-memory file for one large transfer, removed when the transfer completes."""

    _names = itertools.count()

    def __init__(self, size: int) -> None:
        import mmap

        self.path = os.path.join(_SHM_DIR, f"xmveo-{os.getpid()}-{next(self._names)}")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size)
        except BaseException:
            os.unlink(self.path)
            raise
        finally:
            os.close(fd)

    def release(self) -> None:
        try:
            self.map.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


class IsolatedContext:
    def __init__(self, proc: IsolatedProc, ident: int) -> None:
        self.proc = proc
        self.ident = ident

    def call(self, func: int, ret: CType, values: list[Any], stack: Optional[list[tuple[int, OnStack]]]) -> Any:
        if not stack:
            return self.proc._send("call", self.ident, (func, values, []), _first, self)
        items = [(index, onstack.snapshot(), onstack.inout != 0) for index, onstack in stack]
        for index, _ in stack:
            values[index] = 0  # The worker puts its stack copy's address here.

        def finish(ok: bool, payload: Any) -> Any:
            if not ok:
                return payload
            value, copies = payload
            for (_, onstack), data in zip(stack, copies):
                if data is not None:
                    onstack.copy_back(data)
            return value

        return self.proc._send("call", self.ident, (func, values, items), finish, self)

    def read_mem(self, view: memoryview, addr: int, size: int) -> IsolatedRequest:
        return self.proc._read(view, addr, size, self)

    def write_mem(self, addr: int, view: memoryview, size: int) -> IsolatedRequest:
        return self.proc._write(addr, view, size, self)

    def sync(self, timeout: Optional[float]) -> None:
        self.proc._send("sync", self.ident, (), None, self).wait_result(timeout)


def _first(ok: bool, payload: Any) -> Any:
    return payload[0] if ok else payload


class IsolatedProc:
    """The parent's handle on one worker process."""

    def __init__(self, node: int) -> None:
        self.node = node
        parent, child = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, _WORKER, str(child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as error:
            parent.close()
            raise RuntimeError(f"veo_proc_create({node}) failed: cannot start the isolated worker: {error}") from None
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        self._send_lock = threading.Lock()
        self._pending: dict[int, IsolatedRequest] = {}
        self._ids = itertools.count(1)
        self._ctx_ids = itertools.count(1)
        self._dead: Optional[BaseException] = None
        self._destroying = False
        self._paths: dict[int, str] = {}
        self._symbols: dict[str, dict[str, tuple[int, bool]]] = {}
        self._reader = threading.Thread(target=self._read_replies, name=f"veo-isolated-{node}", daemon=True)
        self._reader.start()
        self._finalizer = weakref.finalize(self, _kill, self._process)

    @property
    def pid(self) -> int:
        return self._process.pid

    # -- messaging
    def _send(self, op: str, ctx: Optional[int], args: tuple[Any, ...], finish: Any = None, owner: Any = None) -> IsolatedRequest:
        request = IsolatedRequest(owner, finish)
        with self._send_lock:
            if self._dead is not None:
                raise ProcGoneError(f"the isolated worker process is gone: {self._dead}")
            rid = next(self._ids)
            self._pending[rid] = request
            try:
                self._conn.send((rid, op, ctx, args))
            except OSError as error:
                self._pending.pop(rid, None)
                raise ProcGoneError(f"the isolated worker process is gone: {error}") from None
        return request

    def _call(self, op: str, *args: Any) -> Any:
        return self._send(op, None, args).wait_result()

    def _read_replies(self) -> None:
        while True:
            try:
                rid, ok, payload = self._conn.recv()
            except (EOFError, OSError):
                break
            request = self._pending.pop(rid, None)
            if request is None:
                continue
            if not ok:
                kind, message = payload
                payload = _ERRORS.get(kind, RuntimeError)(message)
            request._complete(ok, payload)
        self._worker_died()

    def _worker_died(self) -> None:
        code = self._process.wait()
        if self._destroying:
            error: BaseException = ProcGoneError("the VeoProc was destroyed while the command was queued or running")
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if -code == signal.SIGFPE:
                error = KernelArithmeticError(f"kernel raised {name} (arithmetic exception); the isolated worker died")
            else:
                error = KernelCrashError(f"the isolated worker died from signal {name} while running a kernel", name)
        else:
            error = ProcGoneError(f"the isolated worker process exited unexpectedly with status {code}")
        with self._send_lock:
            self._dead = error
            pending, self._pending = self._pending, {}
        for request in pending.values():
            request._complete(False, error)

    # -- libraries
    def load_library(self, path: str) -> int:
        handle = self._call("load", path)
        self._paths[handle] = path
        return handle

    def unload_library(self, handle: int) -> None:
        self._paths.pop(handle, None)

    def find_function(self, lib: int, name: str) -> int:
        return self._call("find", lib, name)

    def get_symbol(self, lib: int, name: str) -> tuple[int, int, bool]:
        addr = self._call("sym", lib, name)
        path = self._paths[lib]
        if path not in self._symbols:
            self._symbols[path] = symbol_table(path)
        size, writable = self._symbols[path].get(name, (0, False))
        return addr, size, writable

    def set_prototype(self, func: int, args: tuple[CType, ...], ret: CType) -> None:
        restype = ret.ctype.__name__ if ret.ctype is not None else None
        self._call("proto", func, [t.ctype.__name__ for t in args], restype, ret.kind)

    # -- memory
    def alloc_mem(self, size: int) -> int:
        return self._call("alloc", size)

    def free_mem(self, addr: int) -> None:
        self._call("free", addr)

    def _read(self, view: memoryview, addr: int, size: int, ctx: Optional[IsolatedContext]) -> IsolatedRequest:
        segment = _Segment(size) if size > INLINE_LIMIT else None

        def finish(ok: bool, payload: Any) -> Any:
            try:
                if ok:
                    if segment is None:
                        view[:size] = payload
                    else:
                        shared = memoryview(segment.map)
                        view[:size] = shared[:size]
                        shared.release()
                return 0 if ok else payload
            finally:
                if segment is not None:
                    segment.release()

        op, ident = ("aread", ctx.ident) if ctx is not None else ("read", None)
        return self._send_with(segment, op, ident, (addr, size, segment and segment.path), finish, ctx)

    def _write(self, addr: int, view: memoryview, size: int, ctx: Optional[IsolatedContext]) -> IsolatedRequest:
        segment = None
        data: Optional[bytes] = None
        if size > INLINE_LIMIT:
            segment = _Segment(size)
            segment.map[:size] = view[:size]
        else:
            data = view[:size].tobytes()

        def finish(ok: bool, payload: Any) -> Any:
            if segment is not None:
                segment.release()
            return 0 if ok else payload

        op, ident = ("awrite", ctx.ident) if ctx is not None else ("write", None)
        return self._send_with(segment, op, ident, (addr, data, size, segment and segment.path), finish, ctx)

    def _send_with(
        self, segment: Optional[_Segment], op: str, ident: Optional[int], args: tuple[Any, ...], finish: Any, ctx: Any
    ) -> IsolatedRequest:
        try:
            return self._send(op, ident, args, finish, ctx)
        except BaseException:
            if segment is not None:
                segment.release()
            raise

    def read_mem(self, view: memoryview, addr: int, size: int) -> None:
        self._read(view, addr, size, None).wait_result()

    def write_mem(self, addr: int, view: memoryview, size: int) -> None:
        self._write(addr, view, size, None).wait_result()

    # -- contexts
    def open_context(self) -> IsolatedContext:
        ctx = IsolatedContext(self, next(self._ctx_ids))
        self._call("open", ctx.ident)
        return ctx

    def close_context(self, ctx: IsolatedContext) -> None:
        if self._dead is None:
            self._call("close", ctx.ident)

    def destroy(self) -> None:
        """Kills the worker (a kernel that never returns dies with it); pending requests fail with RuntimeError."""
        self._destroying = True
        _kill(self._process)
        self._reader.join(timeout=5)
        self._conn.close()
        self._finalizer.detach()
