"""CIFAR-10 (50000 train / 10000 test, 3x32x32, 10 classes), as ``batchup.datasets.cifar10``.

The raw file is the "python version" tarball: pickled batches ``data_batch_1..5`` and ``test_batch`` holding a
uint8 ``data`` array of shape (N, 3072) (channel-major rows) and a ``labels`` list, plus ``batches.meta``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from xmanager.xm.data.datasets import base
from xmanager.xm.data.datasets.archives import load_pickle, names_from, read_tar_members
from xmanager.xm.data.datasets.arrays import TrainValTestImages, check_n_val

NAME = "cifar10"
TARBALL = "cifar-10-python.tar.gz"

FILES: tuple[base.SourceFile, ...] = (
    base.SourceFile(
        TARBALL,
        (f"https://www.cs.toronto.edu/~kriz/{TARBALL}",),
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    ),
)
"""The raw file with its published SHA-256 digest."""

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def batch_arrays(batch: Any, label_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 3, 32, 32), int32 (N,)) from one unpickled CIFAR batch; ``where`` names it in errors."""
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        raise base.DatasetFormatError(f"{where} is not a CIFAR batch with 'data' and {label_key!r}")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise base.DatasetFormatError(f"{where}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    labels = np.asarray(batch[label_key], dtype=np.int32)
    if labels.shape != (len(data),):
        raise base.DatasetFormatError(f"{where}: {len(labels)} labels for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


def _unpickle(stream: IO[bytes], size: int) -> Any:
    return load_pickle(stream)


def convert(paths: Mapping[str, Path], out: base.CacheWriter) -> None:
    path = paths[TARBALL]
    members = read_tar_members(path, {name: _unpickle for name in [*_TRAIN_BATCHES, "test_batch", "batches.meta"]})
    train = [batch_arrays(members[n], "labels", f"{path}:{n}") for n in _TRAIN_BATCHES]
    out.save("train_X_u8", np.concatenate([x for x, _ in train]))
    out.save("train_y", np.concatenate([y for _, y in train]))
    test_x, test_y = batch_arrays(members["test_batch"], "labels", f"{path}:test_batch")
    out.save("test_X_u8", test_x)
    out.save("test_y", test_y)
    meta = members["batches.meta"]
    names = meta.get("label_names") if isinstance(meta, dict) else None
    out.meta["class_names"] = names_from(names) if names else list(CLASS_NAMES)


def fetch_cifar10(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """Download (if needed), verify and convert CIFAR-10; returns the memory-mapped arrays."""
    return base.load(NAME, FILES, convert, mirror=mirror)


def delete_cache() -> None:
    """Remove the converted CIFAR-10 arrays."""
    base.delete_cache(NAME)


class CIFAR10(TrainValTestImages):
    """CIFAR-10; the last ``n_val`` training samples validate. ``*_X`` are float32 views, ``*_X_u8`` raw uint8."""

    def __init__(
        self,
        n_val: int | None = 10000,
        val_lower: float = 0.0,
        val_upper: float = 1.0,
        *,
        mirror: str | os.PathLike[str] | None = None,
    ) -> None:
        check_n_val(n_val, None)
        loaded = fetch_cifar10(mirror)
        super().__init__(loaded.arrays, n_val, val_lower, val_upper)
        self.class_names: list[str] = list(loaded.meta["class_names"])
