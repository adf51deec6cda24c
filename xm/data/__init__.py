"""Mini-batch data handling for the jobs we launch: a drop-in for batchup.

``data_source``, ``sampling``, ``work_pool``, ``config``, ``datasets`` and ``image`` keep batchup's names;
``downloads`` is ours (verified downloads that raise).

Submodules are imported lazily so that ``import xmanager.xm.data`` stays cheap.
"""

from __future__ import annotations

from xmanager.xm.lazy import exports

_LAZY_SUBMODULES = ("data_source", "sampling", "work_pool", "config", "downloads", "datasets", "image")

__getattr__, __dir__ = exports(__name__, dict.fromkeys(_LAZY_SUBMODULES))
__all__ = list(_LAZY_SUBMODULES)
