"""CIFAR-100 (50000 train / 10000 test, 3x32x32, 100 fine and 20 coarse classes), as ``batchup.datasets.cifar100``.

The raw file is the "python version" tarball: pickled ``train`` and ``test`` holding ``data``, ``fine_labels`` and
``coarse_labels``, and ``meta`` holding ``fine_label_names`` and ``coarse_label_names``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from xmanager.xm.data.datasets import base
from xmanager.xm.data.datasets.archives import load_pickle, names_from, read_tar_members
from xmanager.xm.data.datasets.arrays import TrainValTestImages, check_n_val
from xmanager.xm.data.datasets.cifar10 import batch_arrays

NAME = "cifar100"
TARBALL = "cifar-100-python.tar.gz"

FILES: tuple[base.SourceFile, ...] = (
    base.SourceFile(
        TARBALL,
        (f"https://www.cs.toronto.edu/~kriz/{TARBALL}",),
        "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    ),
)
"""The raw file with its published SHA-256 digest."""


def _unpickle(stream: IO[bytes], size: int) -> Any:
    return load_pickle(stream)


def convert(paths: Mapping[str, Path], out: base.CacheWriter) -> None:
    path = paths[TARBALL]
    members = read_tar_members(path, {"train": _unpickle, "test": _unpickle, "meta": _unpickle})
    for split in ("train", "test"):
        where = f"{path}:{split}"
        x, y = batch_arrays(members[split], "fine_labels", where)
        _, y_coarse = batch_arrays(members[split], "coarse_labels", where)
        out.save(f"{split}_X_u8", x)
        out.save(f"{split}_y", y)
        out.save(f"{split}_y_coarse", y_coarse)
    meta = members["meta"]
    if not isinstance(meta, dict) or "fine_label_names" not in meta or "coarse_label_names" not in meta:
        raise base.DatasetFormatError(f"{path}:meta lacks 'fine_label_names' / 'coarse_label_names'")
    out.meta["class_names"] = names_from(meta["fine_label_names"])
    out.meta["class_names_coarse"] = names_from(meta["coarse_label_names"])


def fetch_cifar100(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """Download (if needed), verify and convert CIFAR-100; returns the memory-mapped arrays."""
    return base.load(NAME, FILES, convert, mirror=mirror)


def delete_cache() -> None:
    """Remove the converted CIFAR-100 arrays."""
    base.delete_cache(NAME)


class CIFAR100(TrainValTestImages):
    """CIFAR-100 with fine (``*_y``) and coarse (``*_y_coarse``) labels; the last ``n_val`` training samples validate."""

    def __init__(
        self,
        n_val: int | None = 10000,
        val_lower: float = 0.0,
        val_upper: float = 1.0,
        *,
        mirror: str | os.PathLike[str] | None = None,
    ) -> None:
        check_n_val(n_val, None)
        loaded = fetch_cifar100(mirror)
        super().__init__(loaded.arrays, n_val, val_lower, val_upper, extra_labels=("y_coarse",))
        self.class_names: list[str] = list(loaded.meta["class_names"])
        self.class_names_coarse: list[str] = list(loaded.meta["class_names_coarse"])
