"""MNIST handwritten digits (60000 train / 10000 test, 1x28x28, labels 0-9), as ``batchup.datasets.mnist``.

The raw files are Yann LeCun's gzipped IDX files; they are converted to ``uint8`` images of shape (N, 1, 28, 28)
and ``int32`` labels.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from xmanager.xm.data.datasets import base
from xmanager.xm.data.datasets.arrays import TrainValTestImages, check_n_val

NAME = "mnist"
_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")


def _source(filename: str, sha256: str) -> base.SourceFile:
    return base.SourceFile(filename, tuple(u + filename for u in _URLS), sha256)


TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

FILES: tuple[base.SourceFile, ...] = (
    _source(TRAIN_IMAGES, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    _source(TRAIN_LABELS, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    _source(TEST_IMAGES, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    _source(TEST_LABELS, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)
"""The raw files with their published SHA-256 digests."""

_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def read_idx_images(path: Path) -> np.ndarray:
    """A gzipped IDX image file as uint8 (N, 1, rows, cols)."""
    with base.reading(path):
        with gzip.open(path, "rb") as f:
            data = f.read()
        if len(data) < 16:
            raise base.DatasetFormatError(f"{path} is too short for an IDX image header ({len(data)} bytes)")
        magic, count, rows, cols = (int(v) for v in np.frombuffer(data, dtype=">u4", count=4))
        if magic != _IMAGES_MAGIC:
            raise base.DatasetFormatError(f"{path} is not an IDX image file: magic {magic:#010x}, expected 0x00000803")
        expected = count * rows * cols
        if len(data) - 16 != expected:
            raise base.DatasetFormatError(
                f"{path} holds {len(data) - 16} pixel bytes, its header says {count}x{rows}x{cols} = {expected}"
            )
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, 1, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """A gzipped IDX label file as int32 (N,)."""
    with base.reading(path):
        with gzip.open(path, "rb") as f:
            data = f.read()
        if len(data) < 8:
            raise base.DatasetFormatError(f"{path} is too short for an IDX label header ({len(data)} bytes)")
        magic, count = (int(v) for v in np.frombuffer(data, dtype=">u4", count=2))
        if magic != _LABELS_MAGIC:
            raise base.DatasetFormatError(f"{path} is not an IDX label file: magic {magic:#010x}, expected 0x00000801")
        if len(data) - 8 != count:
            raise base.DatasetFormatError(f"{path} holds {len(data) - 8} labels, its header says {count}")
        return np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int32)


def convert_idx(paths: Mapping[str, Path], out: base.CacheWriter) -> None:
    """IDX files (MNIST's four names) -> train/test arrays; shared with MNIST look-alikes."""
    for split, images, labels in (("train", TRAIN_IMAGES, TRAIN_LABELS), ("test", TEST_IMAGES, TEST_LABELS)):
        x = read_idx_images(paths[images])
        y = read_idx_labels(paths[labels])
        if len(x) != len(y):
            raise base.DatasetFormatError(
                f"{paths[images]} has {len(x)} images but {paths[labels]} has {len(y)} labels"
            )
        out.save(f"{split}_X_u8", x)
        out.save(f"{split}_y", y)


def fetch_mnist(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """Download (if needed), verify and convert MNIST; returns the memory-mapped arrays."""
    return base.load(NAME, FILES, convert_idx, mirror=mirror)


def delete_cache() -> None:
    """Remove the converted MNIST arrays."""
    base.delete_cache(NAME)


class MNISTBase(TrainValTestImages):
    """Train/validation/test attributes from IDX-converted arrays; the last ``n_val`` training samples validate."""

    def __init__(
        self, loaded: base.LoadedDataset, n_val: int | None = 10000, val_lower: float = 0.0, val_upper: float = 1.0
    ) -> None:
        super().__init__(loaded.arrays, n_val, val_lower, val_upper)


class MNIST(MNISTBase):
    """MNIST; ``train_X``/``val_X``/``test_X`` are float32 views in ``[val_lower, val_upper]``, ``*_X_u8`` raw uint8."""

    def __init__(
        self,
        n_val: int | None = 10000,
        val_lower: float = 0.0,
        val_upper: float = 1.0,
        *,
        mirror: str | os.PathLike[str] | None = None,
    ) -> None:
        check_n_val(n_val, None)
        super().__init__(fetch_mnist(mirror), n_val, val_lower, val_upper)
