"""USPS handwritten digits (7291 train / 2007 test, 1x16x16 float32, labels 0-9), as ``batchup.datasets.usps``.

The raw file is the HDF5 file batchup downloads (``usps.h5``): a group ``usps`` holding ``train_X``, ``train_y``,
``test_X`` and ``test_y``. Reading it needs h5py (imported only here, when converting); the converted cache is plain
``.npy`` like every other dataset's. Images stay float32 as published; labels become int32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from xmanager.xm.data.datasets import base
from xmanager.xm.data.datasets.arrays import check_n_val, split_last

NAME = "usps"
H5_FILE = "usps.h5"

FILES: tuple[base.SourceFile, ...] = (
    base.SourceFile(
        H5_FILE,
        ("https://github.com/Britefury/usps_dataset/raw/master/usps.h5",),
        "ba768d9a9b11e79b31c1e40130647c4fc04e6afc1fb41a0d4b9f1176065482b4",
    ),
)
"""The raw file with its published SHA-256 digest."""

SIDE = 16


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("reading USPS's HDF5 file needs h5py: pip install h5py (or the 'datasets' extra)") from exc
    return h5py


def _images(data: Any, where: str) -> np.ndarray:
    x = np.asarray(data, dtype=np.float32)
    if x.ndim == 2 and x.shape[1] == SIDE * SIDE:
        x = x.reshape(-1, 1, SIDE, SIDE)
    if x.ndim != 4 or x.shape[1:] != (1, SIDE, SIDE):
        raise base.DatasetFormatError(f"{where} has shape {x.shape}, expected (N, 1, 16, 16)")
    return x


def convert(paths: Mapping[str, Path], out: base.CacheWriter) -> None:
    path = paths[H5_FILE]
    h5py = _h5py()
    with base.reading(path), h5py.File(path, "r") as f:
        if "usps" not in f:
            raise base.DatasetFormatError(f"{path} has no group 'usps' (found {sorted(f.keys())})")
        group = f["usps"]
        for split in ("train", "test"):
            for key in (f"{split}_X", f"{split}_y"):
                if key not in group:
                    raise base.DatasetFormatError(f"{path} lacks the dataset usps/{key}")
            x = _images(group[f"{split}_X"][()], f"{path}:usps/{split}_X")
            y = np.asarray(group[f"{split}_y"][()], dtype=np.int32).reshape(-1)
            if len(y) != len(x):
                raise base.DatasetFormatError(f"{path}: usps/{split}_y has {len(y)} labels for {len(x)} images")
            out.save(f"{split}_X", x)
            out.save(f"{split}_y", y)


def fetch_usps(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """Download (if needed), verify and convert USPS; returns the memory-mapped arrays."""
    return base.load(NAME, FILES, convert, mirror=mirror)


def delete_cache() -> None:
    """Remove the converted USPS arrays."""
    base.delete_cache(NAME)


class USPS:
    """USPS; the last ``n_val`` training samples validate. ``*_X`` are float32 arrays (no uint8 variant)."""

    def __init__(self, n_val: int | None = 729, *, mirror: str | os.PathLike[str] | None = None) -> None:
        check_n_val(n_val, None)
        arrays = fetch_usps(mirror).arrays
        n_val = check_n_val(n_val, len(arrays["train_y"]))
        self.train_X, self.val_X = split_last(arrays["train_X"], n_val)
        self.train_y, self.val_y = split_last(arrays["train_y"], n_val)
        self.test_X, self.test_y = arrays["test_X"], arrays["test_y"]
