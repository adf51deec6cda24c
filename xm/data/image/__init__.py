"""Image helpers with batchup's module names (``image.utils``)."""

from __future__ import annotations

from xmanager.xm.lazy import exports

_LAZY_SUBMODULES = ("utils",)

__getattr__, __dir__ = exports(__name__, dict.fromkeys(_LAZY_SUBMODULES))
__all__ = list(_LAZY_SUBMODULES)
