"""The ``veo`` backend: a thin adapter over the real py-veo 1.5.0 module (imported lazily).

Argument checks, bounds checks and hooks stay in ``veo_api``; this module only forwards
to ``veo.VeoProc`` and friends. It needs the optional extra ``xmanager-launcher[ve]``
(py-veo 1.5.0 has wheels for CPython 3.11 on x86_64 only), VEOS and a VE card.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Optional

from xmanager.executors.vector_engine.veo_api import CType, OnStack, VeoRequest, VeoTimeoutError, check_timeout

#: Our extra type spellings -> the nearest py-veo 1.5.0 type string of the same width and signedness.
_PYVEO_NAMES = {
    "long long": "long",
    "unsigned long long": "unsigned long",
    "unsigned": "unsigned int",
    "int8_t": "char",
    "int16_t": "short",
    "uint8_t": "unsigned char",
    "uint16_t": "unsigned short",
    "size_t": "unsigned long",
}


@functools.cache
def import_problem() -> Optional[str]:
    """Why ``import veo`` fails here (None when it works)."""
    try:
        import veo  # noqa: F401
    except Exception as error:  # ImportError, or the bundled libveo failing to load.
        return f"py-veo is not importable ({type(error).__name__}: {error}); install xmanager-launcher[ve]"
    return None


def _pyveo_type(ctype: CType) -> str:
    return "void *" if ctype.kind == "ptr" else _PYVEO_NAMES.get(ctype.name, ctype.name)


class AdapterRequest(VeoRequest):
    __slots__ = ("_req",)

    def __init__(self, ctx: AdapterContext, req: Any) -> None:
        self.ctx = ctx
        self._req = req

    def peek_result(self) -> Any:
        return self._req.peek_result()

    def wait_result(self, timeout: Optional[float] = None) -> Any:
        if timeout is None:
            return self._req.wait_result()
        # py-veo cannot time out a wait: poll peek_result (NameError = unfinished) with a growing sleep.
        deadline = time.monotonic() + check_timeout(timeout)
        pause = 1e-5
        while True:
            try:
                return self._req.peek_result()
            except NameError:
                if time.monotonic() >= deadline:
                    raise VeoTimeoutError(f"command did not finish within {timeout} s (it keeps running)") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.01)


class AdapterContext:
    def __init__(self, veo: Any, ctx: Any) -> None:
        self._veo = veo
        self._ctx = ctx

    def call(self, function: Any, ret: CType, values: list[Any], stack: Optional[list[tuple[int, OnStack]]]) -> Any:
        for index, onstack in stack or ():
            values[index] = self._veo.OnStack(onstack.buff, onstack.size(), inout=onstack.inout)
        req = function(self._ctx, *values)
        if req is None:
            raise RuntimeError(f"veo_call_async of {function.name} failed")
        return AdapterRequest(self, req)

    def read_mem(self, view: memoryview, addr: int, size: int) -> AdapterRequest:
        return AdapterRequest(self, self._ctx.async_read_mem(view, addr, size))

    def write_mem(self, addr: int, view: memoryview, size: int) -> AdapterRequest:
        return AdapterRequest(self, self._ctx.async_write_mem(addr, view, size))

    def sync(self, timeout: Optional[float]) -> None:
        self._ctx.context_sync()


class VeoAdapterProc:
    """Forwards to ``veo.VeoProc``; RuntimeError("veo_proc_create(N) failed") when no card answers."""

    def __init__(self, node: int, veorun_bin: Optional[str]) -> None:
        problem = import_problem()
        if problem:
            raise RuntimeError(problem)
        import veo

        self._veo = veo
        self._proc = veo.VeoProc(node, veorun_bin) if veorun_bin else veo.VeoProc(node)
        self._paths: dict[int, str] = {}

    def load_library(self, path: str) -> Any:
        lib = self._proc.load_library(path)
        self._paths[id(lib)] = path
        return lib

    def unload_library(self, lib: Any) -> None:
        self._proc.unload_library(lib)

    def find_function(self, lib: Any, name: str) -> Any:
        function = lib.find_function(name)
        if function is None:
            raise RuntimeError(f"veo_get_sym '{name}' failed")
        return function

    def get_symbol(self, lib: Any, name: str) -> tuple[int, int, bool]:
        from xmanager.executors.vector_engine.host import symbol_table

        addr = lib.get_symbol(name)
        size, writable = symbol_table(self._paths.get(id(lib), "")).get(name, (0, False))
        return addr, size, writable

    def set_prototype(self, function: Any, args: tuple[CType, ...], ret: CType) -> None:
        function.args_type(*[_pyveo_type(t) for t in args])
        function.ret_type(_pyveo_type(ret))

    def alloc_mem(self, size: int) -> int:
        return self._proc.alloc_mem(size)

    def free_mem(self, addr: int) -> None:
        self._proc.free_mem(addr)

    def read_mem(self, view: memoryview, addr: int, size: int) -> None:
        self._proc.read_mem(view, addr, size)

    def write_mem(self, addr: int, view: memoryview, size: int) -> None:
        self._proc.write_mem(addr, view, size)

    def open_context(self) -> AdapterContext:
        return AdapterContext(self._veo, self._proc.open_context())

    def close_context(self, ctx: AdapterContext) -> None:
        self._proc.close_context(ctx._ctx)

    def destroy(self) -> None:
        self._proc.proc_destroy()
