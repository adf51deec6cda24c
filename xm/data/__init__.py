"""Mini-batch data handling for the jobs we launch: a drop-in for batchup.

``data_source``, ``sampling``, ``work_pool``, ``config`` and ``datasets`` keep batchup's names.

Submodules are imported lazily so that ``import xmanager.xm.data`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_SUBMODULES = ("data_source", "sampling", "work_pool", "config", "datasets")

__all__ = list(_LAZY_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
