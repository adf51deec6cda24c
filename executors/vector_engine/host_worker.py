"""The isolated host backend's worker process: owns the "VE" memory and runs the kernels.

Started as ``python host_worker.py <fd>`` (by path, so it imports nothing but the
standard library). ``<fd>`` is one end of a socket pair carrying pickled messages
(``multiprocessing.connection`` framing): requests ``(rid, op, ctx_id, args)`` and
replies ``(rid, ok, payload)``. Proc-level operations run on the main thread in
arrival order; context operations go to that context's FIFO thread. Transfers above
the inline limit pass through a file in /dev/shm that the parent created. A kernel
that crashes kills this process; the parent reports the signal.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import queue
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Optional

#: What a context's thread runs next: (request id, op, args), or None to stop.
_Command = Optional[tuple[int, str, tuple[Any, ...]]]

_libc = ctypes.CDLL(None)
_libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


def _with_segment(path: str, size: int, action: Callable[[int], object]) -> None:
    """Maps the parent's shared segment and runs ``action(address)`` on it."""
    fd = os.open(path, os.O_RDWR)
    try:
        segment = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    anchor = ctypes.c_char.from_buffer(segment)
    try:
        action(ctypes.addressof(anchor))
    finally:
        del anchor
        segment.close()


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.libs: dict[int, ctypes.CDLL] = {}
        self.funcs: dict[int, Any] = {}
        self.posts: dict[int, Optional[str]] = {}
        self.allocs: set[int] = set()
        self.contexts: dict[int, queue.SimpleQueue[_Command]] = {}

    def reply(self, rid: int, ok: bool, payload: Any) -> None:
        with self.send_lock:
            self.conn.send((rid, ok, payload))

    def run_one(self, rid: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            result = getattr(self, "op_" + op)(*args)
        except Exception as error:  # Sent back and raised in the parent with the same type name.
            self.reply(rid, False, (type(error).__name__, str(error)))
        else:
            self.reply(rid, True, result)

    # -- proc-level operations (main thread)
    def op_load(self, path: str) -> int:
        try:
            lib = ctypes.CDLL(path)
        except OSError as error:
            raise RuntimeError(f"veo_load_library '{path}' failed: {error}") from None
        handle = len(self.libs) + 1
        self.libs[handle] = lib
        return handle

    def op_find(self, lib: int, name: str) -> int:
        try:
            cfunc = self.libs[lib][name]
        except AttributeError:
            raise RuntimeError(f"veo_get_sym '{name}' failed: no such symbol in {self.libs[lib]._name}") from None
        cfunc.restype = ctypes.c_int
        handle = len(self.funcs) + 1
        self.funcs[handle] = cfunc
        self.posts[handle] = None
        return handle

    def op_proto(self, func: int, argtypes: list[str], restype: Optional[str], kind: str) -> None:
        cfunc = self.funcs[func]
        cfunc.argtypes = [getattr(ctypes, name) for name in argtypes]
        cfunc.restype = getattr(ctypes, restype) if restype else None
        self.posts[func] = kind

    def op_sym(self, lib: int, name: str) -> int:
        try:
            return ctypes.addressof(ctypes.c_char.in_dll(self.libs[lib], name))
        except ValueError:
            raise RuntimeError(f"veo_get_sym '{name}' failed: no such symbol in {self.libs[lib]._name}") from None

    def op_alloc(self, size: int) -> int:
        pointer = ctypes.c_void_p()
        if _libc.posix_memalign(ctypes.byref(pointer), 64, size) != 0 or not pointer.value:
            raise MemoryError(f"Out of memory on VE (isolated host worker could not allocate {size} bytes)")
        ctypes.memset(pointer.value, 0, size)
        self.allocs.add(pointer.value)
        return pointer.value

    def op_free(self, addr: int) -> None:
        self.allocs.discard(addr)
        _libc.free(addr)

    def op_read(self, addr: int, size: int, segment: Optional[str]) -> Optional[bytes]:
        if segment is None:
            return ctypes.string_at(addr, size)
        _with_segment(segment, size, lambda target: ctypes.memmove(target, addr, size))
        return None

    def op_write(self, addr: int, data: Optional[bytes], size: int, segment: Optional[str]) -> int:
        if segment is None:
            assert data is not None  # Sent inline when there is no shared segment.
            ctypes.memmove(addr, data, size)
        else:
            _with_segment(segment, size, lambda source: ctypes.memmove(addr, source, size))
        return 0

    def op_open(self, ctx: int) -> None:
        commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self.contexts[ctx] = commands
        threading.Thread(target=self.context_loop, args=(commands,), name=f"ctx-{ctx}", daemon=True).start()

    def op_close(self, ctx: int) -> None:
        commands = self.contexts.pop(ctx, None)
        if commands is not None:
            commands.put(None)

    # -- context operations (the context's thread, FIFO)
    def op_call(self, func: int, values: list[Any], stack: list[tuple[int, bytes, bool]]) -> tuple[Any, list[Optional[bytes]]]:
        buffers = []
        for index, data, back in stack:
            buf = (ctypes.c_char * len(data)).from_buffer_copy(data)
            values[index] = ctypes.addressof(buf)
            buffers.append((buf, back))
        value = self.funcs[func](*values)
        kind = self.posts[func]
        if kind == "void":
            value = None
        elif kind == "ptr":
            value = value or 0
        return value, [buf.raw if back else None for buf, back in buffers]

    def op_aread(self, addr: int, size: int, segment: Optional[str]) -> Optional[bytes]:
        return self.op_read(addr, size, segment)

    def op_awrite(self, addr: int, data: Optional[bytes], size: int, segment: Optional[str]) -> int:
        return self.op_write(addr, data, size, segment)

    def op_sync(self) -> None:
        return None

    def context_loop(self, commands: queue.SimpleQueue[_Command]) -> None:
        while True:
            item = commands.get()
            if item is None:
                return
            self.run_one(*item)

    def serve(self) -> None:
        while True:
            try:
                rid, op, ctx, args = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)
            if op == "exit":
                os._exit(0)
            if ctx is None:
                self.run_one(rid, op, args)
            elif ctx in self.contexts:
                self.contexts[ctx].put((rid, op, args))
            else:
                self.reply(rid, False, ("RuntimeError", f"context {ctx} is not open"))


def main(argv: list[str]) -> None:
    Worker(Connection(int(argv[1]))).serve()


if __name__ == "__main__":
    main(sys.argv)
