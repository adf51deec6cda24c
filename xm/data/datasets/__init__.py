"""Standard image datasets with batchup's module and class names: download, verify, convert, memory-map.

``mnist.MNIST``, ``svhn.SVHN``, ``cifar10.CIFAR10``, ``cifar100.CIFAR100``, ``stl.STL`` and ``usps.USPS``; the shared
machinery is in ``base``. Submodules are imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_SUBMODULES = ("base", "arrays", "archives", "mnist", "svhn", "cifar10", "cifar100", "stl", "usps")

__all__ = list(_LAZY_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
