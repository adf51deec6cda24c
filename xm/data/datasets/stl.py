"""STL-10 (5000 train / 8000 test / 100000 unlabelled, 3x96x96, 10 classes), as ``batchup.datasets.stl``.

The raw file is ``stl10_binary.tar.gz``: ``train_X.bin``, ``test_X.bin`` and ``unlabeled_X.bin`` hold uint8 images,
each stored channel by channel in column-major order; ``train_y.bin``/``test_y.bin`` hold one byte per label in
1-10 (converted to 0-9); ``class_names.txt`` has one name a line; ``fold_indices.txt`` has ten lines of
space-separated 0-based indices into the training set. Images are streamed from the archive into the memory-mapped
cache, so the 2.7 GB unlabelled set is never held in memory.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from xmanager.xm.data.datasets import base
from xmanager.xm.data.datasets.archives import read_tar_members
from xmanager.xm.data.datasets.arrays import ImageArrayUInt8ToFloat32, split_folds

NAME = "stl10"
TARBALL = "stl10_binary.tar.gz"

FILES: tuple[base.SourceFile, ...] = (
    base.SourceFile(
        TARBALL,
        (f"http://ai.stanford.edu/~acoates/stl10/{TARBALL}",),
        "f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866",
    ),
)
"""The raw file with its published SHA-256 digest."""

SIDE = 96
_IMAGE_BYTES = 3 * SIDE * SIDE
_CHUNK_IMAGES = 512


def _image_writer(out: base.CacheWriter, array_name: str, member: str) -> Any:
    def handle(stream: IO[bytes], size: int) -> int:
        if size % _IMAGE_BYTES:
            raise base.DatasetFormatError(f"{member} has {size} bytes, not a multiple of {_IMAGE_BYTES} (3x96x96)")
        count = size // _IMAGE_BYTES
        target = out.create(array_name, (count, 3, SIDE, SIDE), np.uint8)
        for start in range(0, count, _CHUNK_IMAGES):
            n = min(_CHUNK_IMAGES, count - start)
            data = stream.read(n * _IMAGE_BYTES)
            if len(data) != n * _IMAGE_BYTES:
                raise base.DatasetFormatError(f"{member} ended early at image {start + len(data) // _IMAGE_BYTES}")
            # each channel is stored column by column: swap the last two axes to get (rows, cols)
            target[start : start + n] = np.frombuffer(data, dtype=np.uint8).reshape(n, 3, SIDE, SIDE).transpose(0, 1, 3, 2)
        target.flush()
        del target
        return count

    return handle


def _labels(stream: IO[bytes], size: int) -> np.ndarray:
    labels = np.frombuffer(stream.read(), dtype=np.uint8).astype(np.int32)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise base.DatasetFormatError(f"labels outside 1-10 (found {labels.min()}-{labels.max()})")
    return labels - 1


def _lines(stream: IO[bytes], size: int) -> list[str]:
    return [line.strip() for line in stream.read().decode("ascii").splitlines() if line.strip()]


def convert(paths: Mapping[str, Path], out: base.CacheWriter) -> None:
    path = paths[TARBALL]
    members = read_tar_members(
        path,
        {
            "train_X.bin": _image_writer(out, "train_X_u8", f"{path}:train_X.bin"),
            "train_y.bin": _labels,
            "test_X.bin": _image_writer(out, "test_X_u8", f"{path}:test_X.bin"),
            "test_y.bin": _labels,
            "unlabeled_X.bin": _image_writer(out, "unl_X_u8", f"{path}:unlabeled_X.bin"),
            "class_names.txt": _lines,
            "fold_indices.txt": _lines,
        },
    )
    for split in ("train", "test"):
        labels = members[f"{split}_y.bin"]
        if len(labels) != members[f"{split}_X.bin"]:
            raise base.DatasetFormatError(
                f"{path}: {split}_y.bin has {len(labels)} labels for {members[f'{split}_X.bin']} images"
            )
        out.save(f"{split}_y", labels)
    n_train = members["train_X.bin"]
    folds: list[list[int]] = []
    for number, line in enumerate(members["fold_indices.txt"], start=1):
        try:
            fold = [int(v) for v in line.split()]
        except ValueError as exc:
            raise base.DatasetFormatError(f"{path}:fold_indices.txt line {number} is not integers") from exc
        if any(not 0 <= i < n_train for i in fold):
            raise base.DatasetFormatError(f"{path}:fold_indices.txt line {number} indexes outside 0-{n_train - 1}")
        folds.append(fold)
    out.meta["fold_indices"] = folds
    out.meta["class_names"] = members["class_names.txt"]


def fetch_stl(mirror: str | os.PathLike[str] | None = None) -> base.LoadedDataset:
    """Download (if needed), verify and convert STL-10; returns the memory-mapped arrays."""
    return base.load(NAME, FILES, convert, mirror=mirror)


def delete_cache() -> None:
    """Remove the converted STL-10 arrays."""
    base.delete_cache(NAME)


class STL:
    """STL-10; the last ``n_val_folds`` of the ten predefined folds validate and the other training samples train.

    ``tr_folds`` lists the folds' index arrays; ``unl_X_u8``/``unl_X`` are the unlabelled images.
    """

    def __init__(
        self,
        n_val_folds: int | None = 1,
        val_lower: float = 0.0,
        val_upper: float = 1.0,
        *,
        mirror: str | os.PathLike[str] | None = None,
    ) -> None:
        if n_val_folds is not None and (isinstance(n_val_folds, bool) or not isinstance(n_val_folds, numbers.Integral)):
            raise ValueError(f"n_val_folds must be an int or None, got {n_val_folds!r}")
        if n_val_folds is not None and n_val_folds < 0:
            raise ValueError(f"n_val_folds must be >= 0, got {n_val_folds}")
        loaded = fetch_stl(mirror)
        arrays = loaded.arrays
        self.tr_folds = [np.asarray(f, dtype=np.int32) for f in loaded.meta["fold_indices"]]
        train_x_u8, train_y = arrays["train_X_u8"], arrays["train_y"]
        split = split_folds(len(train_y), self.tr_folds, n_val_folds)
        if split is None:
            self.train_X_u8, self.train_y = train_x_u8, train_y
            self.val_X_u8 = np.zeros((0, 3, SIDE, SIDE), dtype=np.uint8)
            self.val_y = np.zeros((0,), dtype=np.int32)
        else:
            train_idx, val_idx = split
            self.train_X_u8, self.train_y = train_x_u8[train_idx], train_y[train_idx]
            self.val_X_u8, self.val_y = train_x_u8[val_idx], train_y[val_idx]
        self.test_X_u8, self.test_y = arrays["test_X_u8"], arrays["test_y"]
        self.unl_X_u8 = arrays["unl_X_u8"]
        self.class_names: list[str] = list(loaded.meta["class_names"])
        self.train_X = ImageArrayUInt8ToFloat32(self.train_X_u8, val_lower, val_upper)
        self.val_X = ImageArrayUInt8ToFloat32(self.val_X_u8, val_lower, val_upper)
        self.test_X = ImageArrayUInt8ToFloat32(self.test_X_u8, val_lower, val_upper)
        self.unl_X = ImageArrayUInt8ToFloat32(self.unl_X_u8, val_lower, val_upper)
