"""SVHN cropped digits (73257 train / 26032 test / 531131 extra, 3x32x32, labels 0-9), as ``batchup.datasets.svhn``.

The raw files are MATLAB ``.mat`` files holding ``X`` of shape (32, 32, 3, N) and ``y`` of shape (N, 1) where the
digit 0 is labelled 10; labels are converted to 0-9. Reading them needs scipy (imported only here, when converting).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from xmanager.xm.data.datasets import base
from xmanager.xm.data.datasets.arrays import ImageArrayUInt8ToFloat32, TrainValTestImages, check_n_val

NAME = "svhn"
EXTRA_NAME = "svhn_extra"
_BASE_URL = "http://ufldl.stanford.edu/housenumbers/"

TRAIN_MAT = "train_32x32.mat"
TEST_MAT = "test_32x32.mat"
EXTRA_MAT = "extra_32x32.mat"
_CHUNK = 8192

FILES: tuple[base.SourceFile, ...] = (
    base.SourceFile(TRAIN_MAT, (_BASE_URL + TRAIN_MAT,), "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),
    base.SourceFile(TEST_MAT, (_BASE_URL + TEST_MAT,), "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),
)
"""The train and test files with their published SHA-256 digests."""

EXTRA_FILES: tuple[base.SourceFile, ...] = (
    base.SourceFile(EXTRA_MAT, (_BASE_URL + EXTRA_MAT,), "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3"),
)
"""The 'extra' file (1.3 GB) with its published SHA-256 digest."""


def _loadmat() -> Any:
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise ImportError(
            "reading SVHN's MATLAB files needs scipy: pip install scipy (or the 'datasets' extra)"
        ) from exc
    return loadmat


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(X as stored: uint8 (32, 32, 3, N), int32 labels (N,) in 0-9) from one SVHN ``.mat`` file."""
    loadmat = _loadmat()
    with base.reading(path):
        mat = loadmat(path)
        if "X" not in mat or "y" not in mat:
            raise base.DatasetFormatError(f"{path} lacks the variables 'X' and 'y'")
        x = mat["X"]
        if x.ndim != 4 or x.shape[2] != 3 or x.dtype.kind not in "uif":
            raise base.DatasetFormatError(f"{path}: 'X' is {x.dtype} {x.shape}, expected uint8 (rows, cols, 3, N)")
        labels = np.asarray(mat["y"], dtype=np.int32).reshape(-1)
        if len(labels) != x.shape[3]:
            raise base.DatasetFormatError(f"{path}: {len(labels)} labels for {x.shape[3]} images")
        labels[labels == 10] = 0
        return x, labels


def _write_images(out: base.CacheWriter, name: str, x: np.ndarray) -> None:
    """(rows, cols, 3, N) -> (N, 3, rows, cols), a chunk at a time (the extra set is 1.3 GB)."""
    count = x.shape[3]
    target = out.create(name, (count, 3, x.shape[0], x.shape[1]), np.uint8)
    for start in range(0, count, _CHUNK):
        target[start : start + _CHUNK] = x[:, :, :, start : start + _CHUNK].transpose(3, 2, 0, 1).astype(np.uint8)
    target.flush()
    del target


def convert(paths: Mapping[str, Path], out: base.CacheWriter) -> None:
    for split, filename in (("train", TRAIN_MAT), ("test", TEST_MAT)):
        x, y = read_svhn_mat(paths[filename])
        _write_images(out, f"{split}_X_u8", x)
        out.save(f"{split}_y", y)


def convert_extra(paths: Mapping[str, Path], out: base.CacheWriter) -> None:
    x, y = read_svhn_mat(paths[EXTRA_MAT])
    _write_images(out, "extra_X_u8", x)
    out.save("extra_y", y)


def fetch_svhn_train_test(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """Download (if needed), verify and convert SVHN's train and test sets; returns the memory-mapped arrays."""
    return base.load(NAME, FILES, convert, mirror=mirror)


def fetch_svhn_extra(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """The same for SVHN's extra set."""
    return base.load(EXTRA_NAME, EXTRA_FILES, convert_extra, mirror=mirror)


def delete_cache() -> None:
    """Remove the converted SVHN arrays (train/test and extra)."""
    base.delete_cache(NAME)
    base.delete_cache(EXTRA_NAME)


class SVHN(TrainValTestImages):
    """SVHN train/test; the last ``n_val`` training samples validate. ``*_X`` are float32 views, ``*_X_u8`` uint8."""

    def __init__(
        self,
        n_val: int | None = 10000,
        val_lower: float = 0.0,
        val_upper: float = 1.0,
        *,
        mirror: str | os.PathLike[str] | None = None,
    ) -> None:
        check_n_val(n_val, None)
        super().__init__(fetch_svhn_train_test(mirror).arrays, n_val, val_lower, val_upper)


class SVHNExtra:
    """SVHN's extra set: ``X_u8``, ``y`` and the float32 view ``X``."""

    def __init__(
        self, val_lower: float = 0.0, val_upper: float = 1.0, *, mirror: str | os.PathLike[str] | None = None
    ) -> None:
        arrays = fetch_svhn_extra(mirror).arrays
        self.X_u8, self.y = arrays["extra_X_u8"], arrays["extra_y"]
        self.X = ImageArrayUInt8ToFloat32(self.X_u8, val_lower, val_upper)
