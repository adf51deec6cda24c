"""Fashion-MNIST (60000 train / 10000 test, 1x28x28, 10 clothing classes), as ``batchup.datasets.fashion_mnist``.

The raw files are Zalando's gzipped IDX files with MNIST's names and layout; they are converted exactly as MNIST's
(:func:`~xmanager.xm.data.datasets.mnist.convert_idx`) into ``uint8`` images of shape (N, 1, 28, 28) and ``int32``
labels.
"""

from __future__ import annotations

import os

from xmanager.xm.data.datasets import base, mnist
from xmanager.xm.data.datasets.arrays import check_n_val

NAME = "fashion_mnist"
_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _source(filename: str, sha256: str) -> base.SourceFile:
    return base.SourceFile(filename, tuple(u + filename for u in _URLS), sha256)


FILES: tuple[base.SourceFile, ...] = (
    _source(mnist.TRAIN_IMAGES, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    _source(mnist.TRAIN_LABELS, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    _source(mnist.TEST_IMAGES, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    _source(mnist.TEST_LABELS, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)
"""The raw files with their published SHA-256 digests."""


def fetch_fashion_mnist(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """Download (if needed), verify and convert Fashion-MNIST; returns the memory-mapped arrays."""
    return base.load(NAME, FILES, mnist.convert_idx, mirror=mirror)


def delete_cache() -> None:
    """Remove the converted Fashion-MNIST arrays."""
    base.delete_cache(NAME)


class FashionMNIST(mnist.MNISTBase):
    """Fashion-MNIST; ``train_X``/``val_X``/``test_X`` are float32 views in ``[val_lower, val_upper]``, ``*_X_u8`` raw
    uint8; the last ``n_val`` training samples validate. ``class_names`` lists the ten classes."""

    def __init__(
        self,
        n_val: int | None = 10000,
        val_lower: float = 0.0,
        val_upper: float = 1.0,
        *,
        mirror: str | os.PathLike[str] | None = None,
    ) -> None:
        check_n_val(n_val, None)
        super().__init__(fetch_fashion_mnist(mirror), n_val, val_lower, val_upper)
        self.class_names: list[str] = list(CLASS_NAMES)
