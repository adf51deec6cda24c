"""Standard image datasets with batchup's module and class names: download, verify, convert, memory-map.

``mnist.MNIST``, ``fashion_mnist.FashionMNIST``, ``svhn.SVHN``, ``cifar10.CIFAR10``, ``cifar100.CIFAR100``,
``stl.STL`` and ``usps.USPS``; the shared machinery is in ``base``, and ``dataset`` has batchup's helpers for declaring
your own datasets. Submodules are imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from xmanager.xm.lazy import exports

_LAZY_SUBMODULES = (
    "base",
    "arrays",
    "archives",
    "dataset",
    "mnist",
    "fashion_mnist",
    "svhn",
    "cifar10",
    "cifar100",
    "stl",
    "usps",
)

__getattr__, __dir__ = exports(__name__, dict.fromkeys(_LAZY_SUBMODULES))
__all__ = list(_LAZY_SUBMODULES)
