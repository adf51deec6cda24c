"""Array helpers shared by the dataset classes: validation splits and train/val/test attributes.

``ImageArrayUInt8ToFloat32`` lives in :mod:`xmanager.xm.data.image.utils` and is re-exported here.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from xmanager.xm.data.image.utils import ImageArrayUInt8ToFloat32

__all__ = ["ImageArrayUInt8ToFloat32", "TrainValTestImages", "check_n_val", "split_folds", "split_last"]


def check_n_val(n_val: Any, n_train: int | None, name: str = "n_val") -> int:
    """``n_val`` as an int in ``[0, n_train)``; ``None`` means 0. Raises ValueError naming the argument.

    With ``n_train=None`` only the type and sign are checked (before anything is downloaded).
    """
    if n_val is None:
        return 0
    if isinstance(n_val, bool) or not isinstance(n_val, numbers.Integral):
        raise ValueError(f"{name} must be an int or None, got {n_val!r}")
    value = int(n_val)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if n_train is not None and value >= n_train:
        raise ValueError(f"{name} must be >= 0 and < the {n_train} training samples, got {value}")
    return value


def split_last(array: Any, n_val: int) -> tuple[Any, Any]:
    """(train, val): the last ``n_val`` samples are the validation set; with 0 it is empty (same item shape/dtype)."""
    if n_val == 0:
        return array, np.zeros((0,) + tuple(array.shape[1:]), dtype=array.dtype)
    return array[:-n_val], array[-n_val:]


def split_folds(n_samples: int, folds: Sequence[np.ndarray], n_val_folds: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Train and validation indices when the last ``n_val_folds`` folds are the validation set (None for 0 folds)."""
    if n_val_folds is None:
        n_val_folds = 0
    if isinstance(n_val_folds, bool) or not isinstance(n_val_folds, numbers.Integral):
        raise ValueError(f"n_val_folds must be an int or None, got {n_val_folds!r}")
    count = int(n_val_folds)
    if not 0 <= count <= len(folds):
        raise ValueError(f"n_val_folds must be between 0 and the {len(folds)} folds, got {count}")
    if count == 0:
        return None
    val_idx = np.concatenate([np.asarray(f, dtype=np.int64) for f in folds[len(folds) - count :]])
    mask = np.zeros(n_samples, dtype=bool)
    mask[val_idx] = True
    train_idx = np.flatnonzero(~mask)
    if len(train_idx) == 0:
        raise ValueError(f"n_val_folds={n_val_folds} leaves no training samples")
    return train_idx, val_idx


class TrainValTestImages:
    """``train_*``/``val_*``/``test_*`` attributes from converted arrays (``train_X_u8``, ``train_y``, ``test_X_u8``,
    ``test_y``): the last ``n_val`` training samples validate; ``*_X`` are float32 views in
    ``[val_lower, val_upper]`` of the raw ``*_X_u8``. Extra label arrays named in ``extra_labels`` (e.g.
    ``"y_coarse"``) are split the same way."""

    def __init__(
        self,
        arrays: Mapping[str, Any],
        n_val: int | None,
        val_lower: float,
        val_upper: float,
        extra_labels: Sequence[str] = (),
    ) -> None:
        n_val = check_n_val(n_val, len(arrays["train_y"]))
        self.train_X_u8, self.val_X_u8 = split_last(arrays["train_X_u8"], n_val)
        self.train_y, self.val_y = split_last(arrays["train_y"], n_val)
        self.test_X_u8, self.test_y = arrays["test_X_u8"], arrays["test_y"]
        for label in extra_labels:
            train, val = split_last(arrays[f"train_{label}"], n_val)
            setattr(self, f"train_{label}", train)
            setattr(self, f"val_{label}", val)
            setattr(self, f"test_{label}", arrays[f"test_{label}"])
        self.train_X = ImageArrayUInt8ToFloat32(self.train_X_u8, val_lower, val_upper)
        self.val_X = ImageArrayUInt8ToFloat32(self.val_X_u8, val_lower, val_upper)
        self.test_X = ImageArrayUInt8ToFloat32(self.test_X_u8, val_lower, val_upper)
