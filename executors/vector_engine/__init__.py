"""The VectorEngine executor: runs ``xm.VeKernel`` functions on a NEC Vector Engine through VEO.

``backend="host"`` runs the same kernels compiled by gcc under a host emulation of the
py-veo API (``veo_api``), so launch scripts and tests work without a VE. Jobs bind their
args to the kernel's declared parameters by name: scalars, and ``xm.VeBuffer`` arrays
staged in device memory or on the stack; out/inout buffers and the return value become
the unit's results. See ``docs/vector_engine.md``.

Names load lazily, so importing the package costs nothing until they are used.
"""

from __future__ import annotations

from typing import Any

_NAMES = ("VectorEngine", "VectorEnginePlugin", "VectorEngineSpec", "VeKernelExecutable", "plugin")


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        from xmanager.executors.vector_engine import executor

        return getattr(executor, name)
    if name == "VeBuffer":
        from xmanager.xm.executables import VeBuffer

        return VeBuffer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [*_NAMES, "VeBuffer"]
