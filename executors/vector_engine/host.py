"""In-process host backend: kernels built with the host compiler, called through ctypes.

"VE memory" is private host memory from ``posix_memalign`` (64-byte aligned), so the
int addresses ``alloc_mem`` returns are real host addresses a kernel dereferences
directly; the API layer bounds-checks every transfer and pointer argument against the
live allocations. Each context has one FIFO worker thread. ``wait_result()`` on a
request that is at the head of an idle context runs it inline on the caller's thread
(same FIFO order, no thread hand-off), and after a streak of such call + wait pairs
the worker is no longer woken for each command (see :class:`HostContext`); together
they keep an offloaded call + wait within a few microseconds of a direct ctypes call,
while ``peek_result`` still sees commands run asynchronously by the worker. A kernel that
crashes takes this process down: use ``isolated=True`` (``host_isolated.py``) when that matters.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Optional

from xmanager.executors.vector_engine.veo_api import (
    CType,
    OnStack,
    VeoRequest,
    VeoTimeoutError,
    buffer_address,
    check_timeout,
    unfinished,
)

_PENDING, _RUNNING, _DONE = 0, 1, 2
#: Call + wait pairs in a row after which a context stops waking its worker per submission.
_STREAK = 16
#: A wait later than this after submission means the caller overlapped work with the command.
_OVERLAP = 50e-6
_ALIGN = 64

_libc = ctypes.CDLL(None, use_errno=True)
_posix_memalign = _libc.posix_memalign
_posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
_posix_memalign.restype = ctypes.c_int
_free = _libc.free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None


def symbol_table(path: str) -> dict[str, tuple[int, bool]]:
    """Defined symbols of a shared library -> (size, writable), from ``nm -D -S`` (empty if nm is missing).

    Only data in .data/.bss (and similar) is writable; code and read-only data are not.
    """
    nm = shutil.which("nm")
    if nm is None:
        return {}
    proc = subprocess.run([nm, "-D", "-S", "--defined-only", path], capture_output=True, text=True)
    table: dict[str, tuple[int, bool]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2].upper() in "BDGRSVTW":
            table[parts[3].split("@")[0]] = (int(parts[1], 16), parts[2].upper() in "BDGSV")
    return table


def _void(_: Any) -> None:
    return None


def _pointer(value: Optional[int]) -> int:
    return value or 0


class HostRequest(VeoRequest):
    """One queued command: ``fn(*args)``, then ``post(value)`` (copy-backs, result conversion)."""

    __slots__ = ("_fn", "_args", "_post", "_state", "_value", "_error", "_keep", "_submitted")

    def __init__(self, ctx: HostContext, fn: Callable[..., Any], args: Any, post: Optional[Callable[[Any], Any]]):
        self.ctx = ctx
        self._fn = fn
        self._args = args
        self._post = post
        self._state = _PENDING
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._keep: Any = None  # buffers that must live until the command has run
        self._submitted = 0.0  # perf_counter() at submission, kept only while the context defers wake-ups

    def _result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def peek_result(self) -> Any:
        if self._state != _DONE:
            ctx = self.ctx
            with ctx._lock:
                ctx._go_eager()
            raise unfinished()
        return self._result()

    def wait_result(self, timeout: Optional[float] = None) -> Any:
        if self._state == _DONE:
            return self._result()
        if timeout is not None:
            timeout = check_timeout(timeout)
        ctx = self.ctx
        lock = ctx._lock
        lock.acquire()
        if timeout is None and self._state == _PENDING and not ctx._busy and ctx._queue[0] is self:
            # Fast path: the context is idle and this is its next command, so run it here (FIFO kept).
            if ctx._eager:
                ctx._streak += 1
                if ctx._streak >= _STREAK:
                    ctx._eager = False
            elif time.perf_counter() - self._submitted > _OVERLAP:
                ctx._eager = True  # The caller did other work meanwhile: let the worker start commands again.
                ctx._streak = 0
            ctx._kicks.discard(ctx)
            ctx._queue.popleft()
            ctx._busy = True
            self._state = _RUNNING
            lock.release()
            if ctx._kicks:
                _kick_all(ctx._kicks)
            ctx._execute(self)
            return self._result()
        ctx._go_eager()
        ctx._waiters += 1
        try:
            if ctx._kicks:
                lock.release()
                try:
                    _kick_all(ctx._kicks)
                finally:
                    lock.acquire()
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._state != _DONE:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise VeoTimeoutError(f"command did not finish within {timeout} s (it keeps running)")
                ctx._done.wait(remaining)
        finally:
            ctx._waiters -= 1
            lock.release()
        return self._result()


def _kick_all(kicks: set[HostContext]) -> None:
    """Tells every context holding not-yet-announced work to start it (this thread is about to be busy)."""
    for ctx in list(kicks):
        with ctx._lock:
            ctx._kick()


class HostContext:
    """A context: a FIFO queue drained by one worker thread (or inline by a waiting caller).

    Waking the worker costs a thread hand-off per command. After ``_STREAK`` commands in
    a row were waited for right after submission (the call + wait pattern), the context
    stops waking its worker when a command arrives on an idle queue; the command then
    starts when anything waits or peeks, when another command queues behind it, or when
    the proc touches memory. A wait that comes later than ``_OVERLAP`` after submission
    (the caller overlapped other work), any peek and any blocking wait switch back.
    """

    def __init__(self, name: str, kicks: set[HostContext]) -> None:
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queue: deque[HostRequest] = deque()
        self._busy = False
        self._idle_worker = False
        self._waiters = 0
        self._closed = False
        self._eager = True
        self._streak = 0
        self._kicks = kicks  # shared by the proc's contexts
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- queue
    def _submit(self, request: HostRequest) -> HostRequest:
        with self._lock:
            if self._closed:
                raise RuntimeError("the context is closed")
            if self._eager or self._queue or self._busy:
                self._queue.append(request)
                if self._idle_worker and not self._busy:
                    self._work.notify()
            else:
                request._submitted = time.perf_counter()
                self._queue.append(request)
                self._kicks.add(self)
        return request

    def _kick(self) -> None:
        """Wakes the worker for queued work it was not told about (lock held)."""
        self._kicks.discard(self)
        if self._idle_worker and not self._busy and self._queue:
            self._work.notify()

    def _go_eager(self) -> None:
        """Back to waking the worker on every submission; starts anything deferred (lock held)."""
        self._eager = True
        self._streak = 0
        self._kick()

    def _execute(self, request: HostRequest) -> None:
        """Runs one claimed request (``_busy`` is set), then marks it done and wakes who needs it."""
        try:
            value = request._fn(*request._args)
            request._value = request._post(value) if request._post is not None else value
        except BaseException as error:  # Reported through the request, like a VE-side failure.
            if not isinstance(error, (RuntimeError, ArithmeticError, MemoryError, ValueError)):
                error = RuntimeError(f"command failed on the host backend: {type(error).__name__}: {error}")
            request._error = error
        request._keep = None
        with self._lock:
            request._state = _DONE
            self._busy = False
            if self._idle_worker and (self._queue or self._closed):
                self._work.notify()
            if self._waiters:
                self._done.notify_all()

    def _loop(self) -> None:
        lock = self._lock
        while True:
            with lock:
                while (self._busy or not self._queue) and not (self._closed and not self._queue and not self._busy):
                    self._idle_worker = True
                    self._work.wait()
                    self._idle_worker = False
                if not self._queue:
                    return
                request = self._queue.popleft()
                self._busy = True
                request._state = _RUNNING
            self._execute(request)

    # -- commands
    def call(
        self, handle: Any, ret: CType, values: list[Any], stack: Optional[list[tuple[int, OnStack]]]
    ) -> HostRequest:
        fn, post = handle.cfunc, handle.post
        if not stack:
            return self._submit(HostRequest(self, fn, values, post))
        copies = []
        for index, onstack in stack:
            buf = (ctypes.c_char * onstack.size()).from_buffer_copy(onstack.snapshot())
            values[index] = ctypes.addressof(buf)
            copies.append((onstack, buf))

        def post_stack(value: Any) -> Any:
            for onstack, buf in copies:
                onstack.copy_back(buf)
            return post(value) if post is not None else value

        request = HostRequest(self, fn, values, post_stack)
        request._keep = copies
        return self._submit(request)

    def read_mem(self, view: memoryview, addr: int, size: int) -> HostRequest:
        if size == 0:
            return self._submit(HostRequest(self, _noop, (), _zero))
        request = HostRequest(self, ctypes.memmove, (buffer_address(view), addr, size), _zero)
        request._keep = view
        return self._submit(request)

    def write_mem(self, addr: int, view: memoryview, size: int) -> HostRequest:
        if size == 0:
            return self._submit(HostRequest(self, _noop, (), _zero))
        source: Any = view[:size].tobytes() if view.readonly else buffer_address(view)
        request = HostRequest(self, ctypes.memmove, (addr, source, size), _zero)
        request._keep = view
        return self._submit(request)

    def sync(self, timeout: Optional[float]) -> None:
        self._submit(HostRequest(self, _noop, (), None)).wait_result(timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._kicks.discard(self)
            self._work.notify()


def _zero(_: Any) -> int:
    return 0


def _noop() -> None:
    return None


class HostFunction:
    """A kernel's ctypes function object (its own, so prototypes never leak between callers)."""

    __slots__ = ("cfunc", "post", "name")

    def __init__(self, cfunc: Any, name: str) -> None:
        self.cfunc = cfunc
        self.name = name
        self.post: Optional[Callable[[Any], Any]] = None


class HostProc:
    """The in-process host stand-in for a VE process."""

    def __init__(self, node: int) -> None:
        self.node = node
        self._allocs: set[int] = set()
        self._contexts: list[HostContext] = []
        self._libs: dict[int, tuple[str, Any]] = {}
        self._symbols: dict[str, dict[str, tuple[int, bool]]] = {}
        self._kicks: set[HostContext] = set()

    # -- libraries
    def load_library(self, path: str) -> int:
        try:
            cdll = ctypes.CDLL(path)
        except OSError as error:
            raise RuntimeError(f"veo_load_library '{path}' failed: {error}") from None
        handle = len(self._libs) + 1
        self._libs[handle] = (path, cdll)
        return handle

    def unload_library(self, handle: int) -> None:
        # ctypes cannot safely dlclose a library whose functions may still be referenced; drop it.
        self._libs.pop(handle, None)

    def find_function(self, handle: int, name: str) -> HostFunction:
        path, cdll = self._libs[handle]
        try:
            cfunc = cdll[name]
        except AttributeError:
            raise RuntimeError(f"veo_get_sym '{name}' failed: no such symbol in {path}") from None
        cfunc.restype = ctypes.c_int
        return HostFunction(cfunc, name)

    def get_symbol(self, handle: int, name: str) -> tuple[int, int, bool]:
        path, cdll = self._libs[handle]
        try:
            addr = ctypes.addressof(ctypes.c_char.in_dll(cdll, name))
        except ValueError:
            raise RuntimeError(f"veo_get_sym '{name}' failed: no such symbol in {path}") from None
        if path not in self._symbols:
            self._symbols[path] = symbol_table(path)
        size, writable = self._symbols[path].get(name, (0, False))
        return addr, size, writable

    def set_prototype(self, function: HostFunction, args: tuple[CType, ...], ret: CType) -> None:
        function.cfunc.argtypes = [t.ctype for t in args]
        function.cfunc.restype = ret.ctype
        function.post = _void if ret.kind == "void" else _pointer if ret.kind == "ptr" else None

    # -- memory
    def alloc_mem(self, size: int) -> int:
        pointer = ctypes.c_void_p()
        if _posix_memalign(ctypes.byref(pointer), _ALIGN, size) != 0 or not pointer.value:
            raise MemoryError(f"Out of memory on VE (host backend could not allocate {size} bytes)")
        ctypes.memset(pointer.value, 0, size)
        self._allocs.add(pointer.value)
        return pointer.value

    def free_mem(self, addr: int) -> None:
        if self._kicks:
            _kick_all(self._kicks)
        self._allocs.discard(addr)
        _free(addr)

    def read_mem(self, view: memoryview, addr: int, size: int) -> None:
        if self._kicks:
            _kick_all(self._kicks)
        if size:
            ctypes.memmove(buffer_address(view), addr, size)

    def write_mem(self, addr: int, view: memoryview, size: int) -> None:
        if self._kicks:
            _kick_all(self._kicks)
        if size:
            ctypes.memmove(addr, view[:size].tobytes() if view.readonly else buffer_address(view), size)

    # -- contexts
    def open_context(self) -> HostContext:
        ctx = HostContext(f"veo-host-ctx-{len(self._contexts)}", self._kicks)
        self._contexts.append(ctx)
        return ctx

    def close_context(self, ctx: HostContext) -> None:
        ctx.close()
        if ctx in self._contexts:
            self._contexts.remove(ctx)

    def destroy(self) -> None:
        """Stops the workers; frees memory unless a command is still running (then it is leaked, not pulled away)."""
        stuck = False
        for ctx in self._contexts:
            ctx.close()
            ctx._thread.join(timeout=1.0)
            stuck = stuck or ctx._thread.is_alive()
        self._contexts.clear()
        if not stuck:
            for addr in self._allocs:
                _free(addr)
        self._allocs.clear()
        self._libs.clear()
