"""Array wrappers for images: :class:`ImageArrayUInt8ToFloat32`, a lazy ``uint8`` -> ``float32`` view."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ImageArrayUInt8ToFloat32"]


class ImageArrayUInt8ToFloat32:
    """A read-only view of a ``uint8`` image array whose items come out as ``float32`` in ``[val_lower, val_upper]``.

    Only the items asked for are converted, so wrapping a memory-mapped array does not load it. It has ``len()``,
    indexing by int, slice or index array (which is what data sources need), ``dtype`` (float32), and ``shape`` and
    ``ndim`` when the wrapped array has a shape (an AttributeError otherwise).
    """

    def __init__(self, arr_u8: Any, val_lower: float = 0.0, val_upper: float = 1.0) -> None:
        self.arr_u8 = arr_u8
        self.offset = np.float32(val_lower)
        self.scale = np.float32((val_upper - val_lower) / 255.0)
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        try:
            return tuple(self.arr_u8.shape)
        except AttributeError:
            raise AttributeError(f"the wrapped {type(self.arr_u8).__name__} has no shape") from None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.arr_u8)

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.arr_u8[index]).astype(np.float32) * self.scale + self.offset

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        lower = float(self.offset)
        upper = lower + float(self.scale) * 255.0
        try:
            shape = f"shape={self.shape}"
        except AttributeError:
            shape = f"len={len(self)}"
        return f"ImageArrayUInt8ToFloat32({shape}, range=[{lower}, {upper}])"
