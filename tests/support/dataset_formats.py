"""Writers of the standard datasets' raw files in their published formats, from arrays a test chooses.

Used by the dataset loaders' tests (tiny random files) and by the ``dataset_mirror`` plugin (full-size files for
batchup's own dataset tests). Nothing here is shipped: the files are made at test time.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from typing import Any

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def gz(data: bytes, level: int = 6) -> bytes:
    """gzip with a fixed (zero) mtime, so equal data gives equal files."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def idx_images(images: np.ndarray) -> bytes:
    """An IDX image file (uncompressed): big-endian magic 0x803, count, rows, cols, then the uint8 pixels."""
    n, rows, cols = images.shape
    return np.array([0x803, n, rows, cols], dtype=">u4").tobytes() + np.ascontiguousarray(images, np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """An IDX label file (uncompressed): big-endian magic 0x801, count, then one byte per label."""
    return np.array([0x801, len(labels)], dtype=">u4").tobytes() + np.asarray(labels, np.uint8).tobytes()


def svhn_mat(images: np.ndarray, digits: np.ndarray, compress: bool = False) -> bytes:
    """An SVHN ``.mat`` file (MATLAB v5): ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) in 1-10, 10 for the digit 0.

    ``images`` is (N, 3, 32, 32); the loader's (N, 3, rows, cols) result equals it.
    """
    from scipy.io import savemat

    buf = io.BytesIO()
    labels = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    savemat(buf, {"X": images.transpose(2, 3, 1, 0), "y": labels}, do_compression=compress)
    return buf.getvalue()


def tar_gz(members: dict[str, bytes], level: int = 6) -> bytes:
    """A gzipped tar archive holding ``members`` (name -> contents)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=level) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Py2Pickler(pickle._Pickler):  # type: ignore[misc, name-defined]
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), as in the CIFAR batches, which were pickled by Python 2."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _as_py2(obj: Any) -> Any:
    if isinstance(obj, str):
        return obj.encode("latin1")
    if isinstance(obj, dict):
        return {_as_py2(k): _as_py2(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_as_py2(v) for v in obj]
    return obj


def cifar_pickle(obj: Any) -> bytes:
    """A protocol-2 pickle as Python 2 + numpy 1 wrote it: py2 str keys/names, ``numpy.core.multiarray``."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(_as_py2(obj))
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def stl_images(images: np.ndarray) -> bytes:
    """STL-10's ``*_X.bin``: (N, 3, 96, 96) uint8 stored channel by channel, each channel column by column."""
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes()


def usps_h5(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """``usps.h5`` as batchup publishes it: group ``usps`` with ``<split>_X`` float32 (N, 1, 16, 16) and ``<split>_y``."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        group = f.create_group("usps")
        for split, (x, y) in splits.items():
            group.create_dataset(f"{split}_X", data=x)
            group.create_dataset(f"{split}_y", data=y)
    return buf.getvalue()
