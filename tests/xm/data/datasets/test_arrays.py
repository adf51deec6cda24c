"""Array helpers (float views, split checks) and the package's lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xmanager.xm.data import data_source
from xmanager.xm.data.datasets import arrays, svhn, usps


def test_float_view_maps_0_255_onto_the_range() -> None:
    u8 = np.array([[0, 51, 255]], dtype=np.uint8)
    view = arrays.ImageArrayUInt8ToFloat32(u8, val_lower=-1.0, val_upper=1.0)
    assert view.shape == (1, 3) and len(view) == 1 and view.dtype == np.float32
    np.testing.assert_allclose(view[0], [-1.0, -0.6, 1.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(view), [[-1.0, -0.6, 1.0]], atol=1e-6)
    assert view[np.array([0, 0])].shape == (2, 3)


def test_float_view_feeds_a_data_source() -> None:
    u8 = np.arange(20, dtype=np.uint8).reshape(10, 2)
    view = arrays.ImageArrayUInt8ToFloat32(u8)
    y = np.arange(10)
    batches = list(data_source.ArrayDataSource([view, y]).batch_iterator(4, shuffle=np.random.RandomState(0)))
    xs = np.concatenate([b[0] for b in batches])
    ys = np.concatenate([b[1] for b in batches])
    assert xs.dtype == np.float32 and sorted(ys.tolist()) == list(range(10))
    np.testing.assert_allclose(xs, u8[ys].astype(np.float32) / 255.0, atol=1e-7)


def test_check_n_val() -> None:
    assert arrays.check_n_val(None, 10) == 0
    assert arrays.check_n_val(np.int64(9), 10) == 9
    assert arrays.check_n_val(10**6, None) == 10**6  # the size is not known yet: only the sign is checked
    for bad in (-1, 10, 1.0, True):
        with pytest.raises(ValueError, match="n_val"):
            arrays.check_n_val(bad, 10)


def test_split_last_keeps_item_shape_for_empty_validation() -> None:
    x = np.zeros((5, 2, 3), dtype=np.uint8)
    train, val = arrays.split_last(x, 0)
    assert train is x and val.shape == (0, 2, 3) and val.dtype == np.uint8
    train, val = arrays.split_last(np.arange(5), 2)
    assert train.tolist() == [0, 1, 2] and val.tolist() == [3, 4]


def test_split_folds() -> None:
    folds = [np.array([0, 1]), np.array([2, 3]), np.array([3, 4])]
    assert arrays.split_folds(6, folds, 0) is None
    train, val = arrays.split_folds(6, folds, 2)
    assert val.tolist() == [2, 3, 3, 4] and train.tolist() == [0, 1, 5]
    with pytest.raises(ValueError, match="n_val_folds"):
        arrays.split_folds(6, folds, 4)
    with pytest.raises(ValueError, match="no training samples"):
        arrays.split_folds(5, folds, 3)


def test_heavy_readers_are_imported_lazily() -> None:
    code = (
        "import sys\n"
        "import xmanager.xm.data.datasets as d\n"
        "assert 'xmanager.xm.data.datasets.mnist' not in sys.modules\n"
        "d.svhn, d.usps, d.stl, d.cifar10, d.cifar100, d.mnist\n"
        "assert 'scipy' not in sys.modules and 'h5py' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_scipy_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match="SVHN.*scipy"):
        svhn.read_svhn_mat(Path("unused.mat"))


def test_missing_h5py_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="USPS.*h5py"):
        usps.convert({usps.H5_FILE: Path("unused.h5")}, None)  # type: ignore[arg-type]
