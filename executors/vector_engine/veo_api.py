"""A VEO-style offload API: the py-veo 1.5.0 surface over interchangeable backends.

``VeoProc(node, backend="host" | "veo" | "auto")`` gives the same objects and semantics
whichever backend runs the kernels: int addresses into bounds-checked memory, contexts
with FIFO command queues, functions typed with py-veo's type strings, requests with
``wait_result``/``peek_result``, ``OnStack`` arguments and proc init hooks. This module
owns everything backend-neutral (argument conversion, the memory map, hooks, errors);
a backend only moves bytes and calls functions (see ``host.py``, ``host_isolated.py``
and ``veo_adapter.py``).

Example::

    proc = VeoProc(0, backend="host")
    lib = proc.load_library("/abs/libk.so")
    lib.scale.args_type("double *", "int", "double")
    ctx = proc.open_context()
    addr = proc.alloc_mem(80)
    proc.write_mem(addr, array, 80)
    assert lib.scale(ctx, addr, 10, 2.5).wait_result() == 0
"""

from __future__ import annotations

import bisect
import ctypes
import glob
import logging
import operator
import os
import threading
from collections.abc import Callable
from typing import Any, Optional

_log = logging.getLogger(__name__)

INTENT_IN = 0
INTENT_INOUT = 1
INTENT_OUT = 2
_INTENT_NAMES = {INTENT_IN: "INTENT_IN", INTENT_INOUT: "INTENT_INOUT", INTENT_OUT: "INTENT_OUT"}

#: The VE's default stack is 2 MiB; OnStack arguments of one call must fit in it.
DEFAULT_STACK_LIMIT = 2 * 1024 * 1024
#: AVEO (bundled with py-veo 1.5.0) accepts up to 256 arguments.
MAX_NUM_ARGS = 256
BACKENDS = ("auto", "host", "veo")


class VeoTimeoutError(TimeoutError):
    """``wait_result(timeout=...)`` ran out of time (our extension; py-veo waits forever)."""


class ProcGoneError(RuntimeError):
    """The proc can no longer run commands: its isolated worker died, or the proc was destroyed."""


class KernelCrashError(ProcGoneError):
    """An isolated worker process died from a signal while running a kernel."""

    def __init__(self, message: str, signal_name: str = "") -> None:
        super().__init__(message)
        self.signal_name = signal_name


class KernelArithmeticError(ArithmeticError, ProcGoneError):
    """A kernel's arithmetic exception (SIGFPE) killed the isolated worker: py-veo's ArithmeticError, and the proc is gone."""


# --------------------------------------------------------------------------- init hooks
_proc_init_hooks: list[Callable[[VeoProc], Any]] = []


def set_proc_init_hook(fn: Callable[[VeoProc], Any]) -> None:
    """Registers ``fn(proc)`` to run at the end of every new ``VeoProc`` (py-veo semantics)."""
    if not callable(fn):
        raise TypeError(f"set_proc_init_hook: expected a callable taking the proc, got {fn!r}")
    if fn not in _proc_init_hooks:
        _proc_init_hooks.append(fn)


def del_proc_init_hook(fn: Callable[[VeoProc], Any]) -> None:
    """Removes a hook registered with :func:`set_proc_init_hook`; ValueError if it is not registered."""
    try:
        _proc_init_hooks.remove(fn)
    except ValueError:
        raise ValueError(f"del_proc_init_hook: {fn!r} is not a registered init hook") from None


# --------------------------------------------------------------------------- buffers
def byte_view(buff: Any, what: str, size: int, writable: bool) -> memoryview:
    """A flat byte view of a contiguous buffer holding at least ``size`` bytes, or a ValueError naming ``what``."""
    try:
        view = memoryview(buff)
    except TypeError:
        raise ValueError(
            f"{what}: expected a buffer (numpy array, bytearray, ...), got {type(buff).__name__}"
        ) from None
    if not view.c_contiguous:
        raise ValueError(f"{what}: the buffer must be C-contiguous (numpy.ascontiguousarray makes a copy that is)")
    if writable and view.readonly:
        raise ValueError(f"{what}: the buffer is read-only")
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    if size < 0 or view.nbytes < size:
        raise ValueError(f"{what}: the buffer holds {view.nbytes} bytes, fewer than size={size}")
    return view


def buffer_address(view: memoryview) -> int:
    """Address of a writable byte view's first byte (valid while ``view`` lives)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


class OnStack:
    """A buffer passed by pointer to a private copy on the callee's stack, copied back for OUT/INOUT.

    The copy is taken when the call is submitted; OUT and INOUT copy the callee's
    result back into ``buff`` when the call completes. IN leaves ``buff`` unchanged.
    """

    __slots__ = ("_buff", "_view", "_size", "_inout")

    def __init__(self, buff: Any, size: Optional[int] = None, inout: int = INTENT_IN) -> None:
        if inout not in _INTENT_NAMES:
            raise ValueError(f"OnStack: inout must be INTENT_IN, INTENT_OUT or INTENT_INOUT, got {inout!r}")
        probe = byte_view(buff, "OnStack", 0, writable=False)
        if size is None:
            size = probe.nbytes
        elif not isinstance(size, int) or size <= 0:
            raise ValueError(f"OnStack: size must be a positive int, got {size!r}")
        self._view = byte_view(buff, "OnStack", size, writable=inout != INTENT_IN)
        self._buff = buff
        self._size = size
        self._inout = inout

    @property
    def buff(self) -> Any:
        return self._buff

    def size(self) -> int:
        """Bytes copied onto the stack (a method, as in py-veo)."""
        return self._size

    def scope(self) -> int:
        """The intent: INTENT_IN, INTENT_OUT or INTENT_INOUT (py-veo's name)."""
        return self._inout

    @property
    def inout(self) -> int:
        return self._inout

    def snapshot(self) -> bytes:
        """The bytes the callee starts with: the buffer for IN/INOUT, zeros for OUT."""
        if self._inout == INTENT_OUT:
            return bytes(self._size)
        return self._view[: self._size].tobytes()

    def copy_back(self, data: Any) -> None:
        """Writes the callee's stack copy back into the caller's buffer (OUT/INOUT only)."""
        if self._inout != INTENT_IN:
            self._view[: self._size] = memoryview(data).cast("B")[: self._size]

    def __repr__(self) -> str:
        return f"OnStack(size={self._size}, inout={_INTENT_NAMES[self._inout]})"


# --------------------------------------------------------------------------- types
class CType:
    """One py-veo type string, resolved: its kind, ctypes type and integer range."""

    __slots__ = ("name", "kind", "ctype", "lo", "hi")

    def __init__(self, name: str, kind: str, ctype: Any, lo: int = 0, hi: int = 0) -> None:
        self.name, self.kind, self.ctype, self.lo, self.hi = name, kind, ctype, lo, hi

    def __repr__(self) -> str:
        return f"CType({self.name!r})"


def _int_type(name: str, ctype: Any, signed: bool) -> CType:
    bits = ctypes.sizeof(ctype) * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return CType(name, "int", ctype, lo, hi)


_TYPES: dict[str, CType] = {}
for _name, _ct, _signed in [
    ("char", ctypes.c_byte, True),
    ("short", ctypes.c_short, True),
    ("int", ctypes.c_int, True),
    ("long", ctypes.c_long, True),
    ("long long", ctypes.c_longlong, True),
    ("unsigned char", ctypes.c_ubyte, False),
    ("unsigned short", ctypes.c_ushort, False),
    ("unsigned int", ctypes.c_uint, False),
    ("unsigned", ctypes.c_uint, False),
    ("unsigned long", ctypes.c_ulong, False),
    ("unsigned long long", ctypes.c_ulonglong, False),
    ("int8_t", ctypes.c_int8, True),
    ("int16_t", ctypes.c_int16, True),
    ("int32_t", ctypes.c_int32, True),
    ("int64_t", ctypes.c_int64, True),
    ("uint8_t", ctypes.c_uint8, False),
    ("uint16_t", ctypes.c_uint16, False),
    ("uint32_t", ctypes.c_uint32, False),
    ("uint64_t", ctypes.c_uint64, False),
    ("size_t", ctypes.c_size_t, False),
]:
    _TYPES[_name] = _int_type(_name, _ct, _signed)
_TYPES["float"] = CType("float", "float", ctypes.c_float)
_TYPES["double"] = CType("double", "float", ctypes.c_double)
_TYPES["void"] = CType("void", "void", None)
_POINTER = CType("void *", "ptr", ctypes.c_void_p, 0, (1 << 64) - 1)


def parse_type(name: Any) -> CType:
    """Resolves a py-veo type string (``"double *"``, ``"int"``, ``"unsigned long"``, ...)."""
    if not isinstance(name, str):
        raise ValueError(f"VEO type must be a string like 'double *' or 'int', got {name!r}")
    norm = " ".join(name.replace("*", " * ").split())
    if norm.endswith("*"):
        return CType(norm, "ptr", ctypes.c_void_p, 0, (1 << 64) - 1)
    if norm.startswith("const "):
        norm = norm[len("const ") :]
    found = _TYPES.get(norm)
    if found is None:
        known = ", ".join(sorted(_TYPES))
        raise ValueError(f"unknown VEO type {name!r}; use a pointer ('T *') or one of: {known}")
    return found


# --------------------------------------------------------------------------- memory map
class MemoryMap:
    """Live VE memory ranges of one proc, for bounds checks. Lock-free reads (copy-on-write lists)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (starts, ends), replaced as one tuple so a lock-free reader never pairs old and new lists.
        self._ranges: tuple[list[int], list[int]] = ([], [])
        self._kinds: dict[int, str] = {}  # start -> "alloc" | "symbol" | "symbol-ro" | "symbol-open" (size unknown)

    def add(self, start: int, size: int, kind: str = "alloc") -> None:
        with self._lock:
            if start in self._kinds:
                return
            starts, ends = self._ranges
            index = bisect.bisect_left(starts, start)
            self._ranges = (starts[:index] + [start] + starts[index:], ends[:index] + [start + size] + ends[index:])
            self._kinds[start] = kind

    def remove(self, start: int) -> None:
        with self._lock:
            if self._kinds.get(start) != "alloc":
                raise RuntimeError(f"veo_free_mem failed: 0x{start:x} is not an address returned by alloc_mem")
            starts, ends = self._ranges
            index = bisect.bisect_left(starts, start)
            self._ranges = (starts[:index] + starts[index + 1 :], ends[:index] + ends[index + 1 :])
            del self._kinds[start]

    def find(self, addr: int, size: int) -> Optional[str]:
        """The kind of the range holding ``[addr, addr + size)``, or None."""
        starts, ends = self._ranges
        index = bisect.bisect_right(starts, addr) - 1
        if index < 0:
            return None
        if addr + size <= ends[index]:
            return self._kinds.get(starts[index])
        if addr == starts[index] and self._kinds.get(addr) == "symbol-open":
            return "symbol-open"  # a symbol of unknown size: transfers must start at its address
        return None

    def contains_pointer(self, addr: int) -> bool:
        starts, ends = self._ranges
        index = bisect.bisect_right(starts, addr) - 1
        return index >= 0 and addr < ends[index]

    def check(self, addr: int, size: int, op: str, write: bool) -> None:
        kind = self.find(addr, size)
        if kind is None or (write and kind == "symbol-ro"):
            what = "read-only symbol" if kind else "VE memory allocated by this proc"
            raise RuntimeError(f"{op} failed: address range 0x{addr:x}+{size} is not inside {what}")

    def allocations(self) -> list[int]:
        return [start for start, kind in self._kinds.items() if kind == "alloc"]


def _check_address(addr: Any, what: str) -> int:
    if isinstance(addr, bool) or not isinstance(addr, int):
        try:
            addr = operator.index(addr)
        except TypeError:
            raise ValueError(f"{what}: expected an int VE address, got {type(addr).__name__}") from None
    return addr


def _check_size(size: Any, what: str) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        try:
            size = operator.index(size)
        except TypeError:
            raise ValueError(f"{what}: size must be an int, got {type(size).__name__}") from None
    if size < 0:
        raise ValueError(f"{what}: size must be >= 0, got {size}")
    return size


# --------------------------------------------------------------------------- requests
class VeoRequest:
    """A submitted command. Backends subclass it; ``ctx`` is the context it was queued on."""

    __slots__ = ("ctx",)

    def wait_result(self, timeout: Optional[float] = None) -> Any:
        """Blocks until done; returns the converted result or raises the command's error.

        ``timeout`` (seconds) is our extension: VeoTimeoutError when it passes (the
        command keeps running; destroy the proc to stop it in isolated mode).
        """
        raise NotImplementedError

    def peek_result(self) -> Any:
        """The result if done; NameError("peek_result command unfinished") otherwise."""
        raise NotImplementedError


def unfinished() -> NameError:
    return NameError("peek_result command unfinished")


def check_timeout(timeout: Any) -> float:
    """A wait's timeout in seconds (>= 0), or a ValueError naming it."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"wait_result: timeout must be None or a number of seconds >= 0, got {timeout!r}")
    return float(timeout)


# --------------------------------------------------------------------------- public classes
class VeoFunction:
    """A kernel in a library: set ``args_type``/``ret_type``, then call ``f(ctx, *args)``."""

    def __init__(self, lib: VeoLibrary, name: str, handle: Any) -> None:
        self.lib = lib
        self.name = name
        self._handle = handle
        self._args: Optional[tuple[CType, ...]] = None
        self._ret = _TYPES["int"]
        self._convs: Optional[tuple[Callable[[Any], Any], ...]] = None
        self._has_ptr = False

    @property
    def argtypes(self) -> Optional[tuple[str, ...]]:
        return None if self._args is None else tuple(t.name for t in self._args)

    @property
    def rettype(self) -> str:
        return self._ret.name

    def args_type(self, *types: str) -> None:
        """Declares the argument types (py-veo type strings); ValueError on an unknown one."""
        if len(types) > MAX_NUM_ARGS:
            raise ValueError(f"{self.name}: {len(types)} arguments, more than VEO's limit of {MAX_NUM_ARGS}")
        parsed = []
        for index, name in enumerate(types):
            try:
                parsed.append(parse_type(name))
            except ValueError as error:
                raise ValueError(f"{self.name}: argument {index}: {error}") from None
            if parsed[-1].kind == "void":
                raise ValueError(f"{self.name}: argument {index}: 'void' is only a return type")
        self.lib.proc._live().set_prototype(self._handle, tuple(parsed), self._ret)
        self._args = tuple(parsed)
        self._has_ptr = any(t.kind == "ptr" for t in parsed)
        self._convs = tuple(self._converter(index, t) for index, t in enumerate(parsed))

    def ret_type(self, name: str) -> None:
        """Declares the return type (default ``int``; ``void`` makes results None)."""
        try:
            ret = parse_type(name)
        except ValueError as error:
            raise ValueError(f"{self.name}: return type: {error}") from None
        self.lib.proc._live().set_prototype(self._handle, self._args or (), ret)
        self._ret = ret

    def _converter(self, index: int, ctype: CType) -> Callable[[Any], Any]:
        fname = self.name
        mem = self.lib.proc._mem

        def bad(arg: Any, why: str) -> ValueError:
            return ValueError(f"{fname}: argument {index} ({ctype.name!r}): {why}, got {arg!r}")

        if ctype.kind == "int":
            lo, hi = ctype.lo, ctype.hi

            def conv_int(arg: Any) -> int:
                if type(arg) is not int:
                    if isinstance(arg, (bool, float, str, bytes)):
                        raise bad(arg, "expected an int")
                    try:
                        arg = operator.index(arg)
                    except TypeError:
                        raise bad(arg, "expected an int") from None
                if arg < lo or arg > hi:
                    raise bad(arg, f"out of range [{lo}, {hi}]")
                return arg

            return conv_int
        if ctype.kind == "float":

            def conv_float(arg: Any) -> float:
                if type(arg) is float:
                    return arg
                if isinstance(arg, (bool, str, bytes)):
                    raise bad(arg, "expected a float")
                try:
                    return float(arg)
                except (TypeError, ValueError):
                    raise bad(arg, "expected a float") from None

            return conv_float

        def conv_ptr(arg: Any) -> Any:
            if type(arg) is int:
                if arg == 0 or mem.contains_pointer(arg):
                    return arg
                raise bad(arg, f"0x{arg:x} is not inside VE memory allocated by this proc (a host pointer?)")
            if type(arg) is OnStack:
                return arg
            if hasattr(arg, "_ve_array"):
                return conv_ptr(arg._ve_array)
            if isinstance(arg, bool):
                raise bad(arg, "expected an int VE address or OnStack")
            try:
                return conv_ptr(operator.index(arg))
            except TypeError:
                raise bad(arg, "expected an int VE address or OnStack (host buffers go through OnStack)") from None

        return conv_ptr

    def __call__(self, ctx: VeoCtxt, *args: Any) -> VeoRequest:
        convs = self._convs
        if convs is None:
            raise RuntimeError(f"{self.name}: call args_type(...) before calling the function")
        if len(args) != len(convs):
            raise ValueError(f"{self.name}: expected {len(convs)} arguments {self.argtypes}, got {len(args)}")
        values = [conv(arg) for conv, arg in zip(convs, args)]
        stack: Optional[list[tuple[int, OnStack]]] = None
        if self._has_ptr:
            stack = [(i, v) for i, v in enumerate(values) if type(v) is OnStack] or None
            if stack:
                total = sum(v._size for _, v in stack)
                limit = self.lib.proc.stack_limit
                if total > limit:
                    raise ValueError(
                        f"{self.name}: OnStack arguments take {total} bytes, over the stack limit of {limit} bytes "
                        "(VeoProc(stack_limit=...); on a VE the default stack is 2 MiB)"
                    )
        try:
            impl = ctx._impl
        except AttributeError:
            impl = None
        if impl is None or ctx.proc is not self.lib.proc:
            if type(ctx) is not VeoCtxt or ctx.proc is not self.lib.proc:
                raise ValueError(f"{self.name}: ctx must be a context of the proc that loaded the library, got {ctx!r}")
            raise ProcGoneError(f"{self.name}: the context is closed (or its proc was destroyed)")
        return impl.call(self._handle, self._ret, values, stack)

    def __repr__(self) -> str:
        return f"<VeoFunction {self.name} args={self.argtypes} ret={self._ret.name!r}>"


class VeoLibrary:
    """A loaded library: functions by ``find_function(name)`` or ``lib.name`` (cached), symbols by ``get_symbol``."""

    def __init__(self, proc: VeoProc, name: str, handle: Any) -> None:
        self.proc = proc
        self.name = name
        self._handle = handle
        self.func: dict[bytes, VeoFunction] = {}
        self.symbol: dict[bytes, int] = {}

    def find_function(self, name: str) -> VeoFunction:
        key = name.encode()
        found = self.func.get(key)
        if found is None:
            found = VeoFunction(self, name, self.proc._live().find_function(self._handle, name))
            self.func[key] = found
        return found

    def get_symbol(self, name: str) -> int:
        """Address of a data symbol; its range becomes readable/writable with read_mem/write_mem."""
        key = name.encode()
        found = self.symbol.get(key)
        if found is None:
            found, size, writable = self.proc._live().get_symbol(self._handle, name)
            kind = "symbol-open" if not size else "symbol" if writable else "symbol-ro"
            self.proc._mem.add(found, size or 1, kind)
            self.symbol[key] = found
        return found

    def __getattr__(self, name: str) -> VeoFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.find_function(name)

    def __repr__(self) -> str:
        return f"<VeoLibrary {self.name}>"


class VeoCtxt:
    """One context: a worker running commands in submission (FIFO) order."""

    def __init__(self, proc: VeoProc, impl: Any) -> None:
        self.proc = proc
        self._impl = impl

    def _open(self) -> Any:
        if self._impl is None:
            raise RuntimeError("this VeoCtxt is closed")
        return self._impl

    def async_read_mem(self, dst: Any, src_addr: int, size: int) -> VeoRequest:
        """Queues a copy of VE ``[src_addr, +size)`` into ``dst``; the request's result is 0."""
        size = _check_size(size, "async_read_mem")
        src_addr = _check_address(src_addr, "async_read_mem")
        view = byte_view(dst, "async_read_mem dst", size, writable=True)
        self.proc._mem.check(src_addr, size, "veo_async_read_mem", write=False)
        return self._open().read_mem(view, src_addr, size)

    def async_write_mem(self, dst_addr: int, src: Any, size: int) -> VeoRequest:
        """Queues a copy of ``src`` into VE ``[dst_addr, +size)`` (the source is read at submission)."""
        size = _check_size(size, "async_write_mem")
        dst_addr = _check_address(dst_addr, "async_write_mem")
        view = byte_view(src, "async_write_mem src", size, writable=False)
        self.proc._mem.check(dst_addr, size, "veo_async_write_mem", write=True)
        return self._open().write_mem(dst_addr, view, size)

    def context_sync(self, timeout: Optional[float] = None) -> None:
        """Waits until every command queued so far has finished."""
        self._open().sync(timeout)

    def context_close(self) -> None:
        self.proc.close_context(self)


class VeoProc:
    """A VE process (or its host stand-in): memory, libraries and contexts.

    ``backend``: "host" (gcc-built kernels in this process, or in a worker process with
    ``isolated=True``), "veo" (py-veo 1.5.0 on a real card), or "auto" (veo only when a
    card answers; the choice is logged and kept in ``backend`` and ``backend_reason``).
    """

    def __init__(
        self,
        node: int = 0,
        veorun_bin: Optional[str] = None,
        *,
        backend: str = "auto",
        isolated: bool = False,
        stack_limit: int = DEFAULT_STACK_LIMIT,
    ) -> None:
        if isinstance(node, bool) or not isinstance(node, int) or node < 0:
            raise ValueError(f"VeoProc: node must be an int >= 0, got {node!r}")
        if backend not in BACKENDS:
            raise ValueError(f"VeoProc: backend must be one of {BACKENDS}, got {backend!r}")
        if not isinstance(stack_limit, int) or stack_limit <= 0:
            raise ValueError(f"VeoProc: stack_limit must be a positive int, got {stack_limit!r}")
        self.nodeid = node
        self.stack_limit = stack_limit
        self.isolated = bool(isolated)
        self.context: list[VeoCtxt] = []
        self.lib: dict[bytes, VeoLibrary] = {}
        self._mem = MemoryMap()
        self._impl: Any = None
        self.backend, self.backend_reason, self._impl = _open_backend(node, veorun_bin, backend, self.isolated)
        try:
            for hook in list(_proc_init_hooks):
                hook(self)
        except BaseException:
            self.proc_destroy()
            raise

    def _live(self) -> Any:
        if self._impl is None:
            raise ProcGoneError("this VeoProc was destroyed")
        return self._impl

    def load_library(self, path: str) -> VeoLibrary:
        """Loads a shared library by absolute path (loading the same path again returns the same library)."""
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"load_library: expected a path, got {path!r}")
        path = os.fspath(path)
        if not os.path.isabs(path):
            raise ValueError(f"load_library: the path must be absolute (py-veo requires it), got {path!r}")
        key = path.encode()
        if key in self.lib:
            return self.lib[key]
        if not os.path.isfile(path):
            raise RuntimeError(f"veo_load_library '{path}' failed: no such file")
        lib = VeoLibrary(self, path, self._live().load_library(path))
        self.lib[key] = lib
        return lib

    def unload_library(self, lib: VeoLibrary) -> None:
        if self.lib.pop(lib.name.encode(), None) is None:
            raise ValueError(f"unload_library: {lib!r} is not loaded in this proc")
        self._live().unload_library(lib._handle)

    def alloc_mem(self, size: int) -> int:
        """Allocates ``size`` bytes of VE memory; returns its int address (MemoryError when out of memory)."""
        size = _check_size(size, "alloc_mem")
        if size == 0:
            raise ValueError("alloc_mem: size must be > 0")
        addr = self._live().alloc_mem(size)
        self._mem.add(addr, size)
        return addr

    def free_mem(self, addr: int) -> None:
        addr = _check_address(addr, "free_mem")
        self._mem.remove(addr)
        self._live().free_mem(addr)

    def read_mem(self, dst: Any, src_addr: int, size: int) -> None:
        """Copies VE ``[src_addr, +size)`` into the host buffer ``dst`` (synchronous)."""
        size = _check_size(size, "read_mem")
        src_addr = _check_address(src_addr, "read_mem")
        view = byte_view(dst, "read_mem dst", size, writable=True)
        self._mem.check(src_addr, size, "veo_read_mem", write=False)
        self._live().read_mem(view, src_addr, size)

    def write_mem(self, dst_addr: int, src: Any, size: int) -> None:
        """Copies ``size`` bytes of the host buffer ``src`` into VE ``[dst_addr, +size)`` (synchronous)."""
        size = _check_size(size, "write_mem")
        dst_addr = _check_address(dst_addr, "write_mem")
        view = byte_view(src, "write_mem src", size, writable=False)
        self._mem.check(dst_addr, size, "veo_write_mem", write=True)
        self._live().write_mem(dst_addr, view, size)

    def open_context(self) -> VeoCtxt:
        ctx = VeoCtxt(self, self._live().open_context())
        self.context.append(ctx)
        return ctx

    def close_context(self, ctx: VeoCtxt) -> None:
        if ctx not in self.context:
            raise ValueError("close_context: the context is not open in this proc")
        self.context.remove(ctx)
        impl, ctx._impl = ctx._impl, None
        self._live().close_context(impl)

    def proc_destroy(self) -> None:
        """Closes every context and releases the proc (kills the worker process in isolated mode)."""
        impl, self._impl = self._impl, None
        if impl is None:
            return
        for ctx in self.context:
            ctx._impl = None
        self.context.clear()
        impl.destroy()

    def __enter__(self) -> VeoProc:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc_destroy()

    def __repr__(self) -> str:
        return f"<VeoProc node={self.nodeid} backend={self.backend}{' isolated' if self.isolated else ''}>"


# --------------------------------------------------------------------------- backend choice
def card_present(node: int) -> bool:
    """True when the VE device node for ``node`` exists (``/dev/veslotN`` or ``/dev/veN``)."""
    return bool(glob.glob(f"/dev/veslot{node}") or glob.glob(f"/dev/ve{node}"))


def _open_backend(node: int, veorun_bin: Optional[str], backend: str, isolated: bool) -> tuple[str, str, Any]:
    if backend == "veo":
        if isolated:
            raise ValueError("VeoProc: isolated=True applies to the host backend only")
        from xmanager.executors.vector_engine import veo_adapter

        return "veo", "requested", veo_adapter.VeoAdapterProc(node, veorun_bin)
    reason = "requested"
    if backend == "auto":
        unavailable = _veo_unavailable(node, veorun_bin) if not isolated else "isolated mode is host-only"
        if unavailable is None:
            from xmanager.executors.vector_engine import veo_adapter

            try:
                impl = veo_adapter.VeoAdapterProc(node, veorun_bin)
            except RuntimeError as error:
                unavailable = f"VeoProc({node}) failed: {error}"
            else:
                _log.info("VeoProc(%d): backend auto -> veo (a VE card answered)", node)
                return "veo", "a VE card answered", impl
        reason = unavailable
        _log.info("VeoProc(%d): backend auto -> host (%s)", node, reason)
    if isolated:
        from xmanager.executors.vector_engine import host_isolated

        return "host", reason, host_isolated.IsolatedProc(node)
    from xmanager.executors.vector_engine import host

    return "host", reason, host.HostProc(node)


def _veo_unavailable(node: int, veorun_bin: Optional[str]) -> Optional[str]:
    """Why the real VEO backend cannot run here, or None when it might."""
    from xmanager.executors.vector_engine import veo_adapter

    why = veo_adapter.import_problem()
    if why:
        return why
    if not card_present(node):
        return f"no VE card: neither /dev/veslot{node} nor /dev/ve{node} exists"
    return None


def backends_available(node: int = 0) -> dict[str, Optional[str]]:
    """Each backend name -> None when usable here, else the reason it is not (for tests and reports)."""
    found: dict[str, Optional[str]] = {"host": None}
    why = _veo_unavailable(node, None)
    if why is None:
        from xmanager.executors.vector_engine import veo_adapter

        try:
            veo_adapter.VeoAdapterProc(node, None).destroy()
        except RuntimeError as error:
            why = f"VeoProc({node}) failed: {error}"
    found["veo"] = why
    return found


__all__ = [
    "BACKENDS",
    "DEFAULT_STACK_LIMIT",
    "INTENT_IN",
    "INTENT_INOUT",
    "INTENT_OUT",
    "MAX_NUM_ARGS",
    "KernelCrashError",
    "OnStack",
    "VeoCtxt",
    "VeoFunction",
    "VeoLibrary",
    "VeoProc",
    "VeoRequest",
    "VeoTimeoutError",
    "backends_available",
    "card_present",
    "del_proc_init_hook",
    "parse_type",
    "set_proc_init_hook",
]
