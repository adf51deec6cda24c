"""Every loader, fed tiny files in its dataset's real format through the loopback mirror: download -> verify ->
convert -> memory-mapped cache, with batchup's attribute names, shapes, dtypes and split conventions."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from xmanager.xm.data.datasets import cifar10, cifar100, fashion_mnist, mnist, stl, svhn, usps


def _is_mmap(array: object) -> bool:
    return isinstance(array, np.memmap) or isinstance(getattr(array, "base", None), np.memmap)


def test_mnist(mirror, fakes: SimpleNamespace, ds_dir: Path) -> None:
    files, exp = fakes.mnist(n_train=30, n_test=12)
    fakes.publish(mnist, files, mirror.root)
    ds = mnist.MNIST(n_val=7, val_lower=-1.0, val_upper=1.0)
    np.testing.assert_array_equal(ds.train_X_u8, exp["train_X_u8"][:-7])
    np.testing.assert_array_equal(ds.val_X_u8, exp["train_X_u8"][-7:])
    np.testing.assert_array_equal(ds.train_y, exp["train_y"][:-7])
    np.testing.assert_array_equal(ds.val_y, exp["train_y"][-7:])
    np.testing.assert_array_equal(ds.test_X_u8, exp["test_X_u8"])
    np.testing.assert_array_equal(ds.test_y, exp["test_y"])
    assert ds.train_X.shape == (23, 1, 28, 28) and ds.train_X.dtype == np.float32
    assert ds.test_y.dtype == np.int32 and ds.train_X_u8.dtype == np.uint8
    x = ds.test_X[:]
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, exp["test_X_u8"].astype(np.float32) / 255.0 * 2.0 - 1.0, atol=1e-6)
    assert _is_mmap(ds.train_X_u8) and _is_mmap(ds.test_y)
    assert sorted(p.name for p in (ds_dir / "mnist").glob("*.npy")) == [
        "test_X_u8.npy", "test_y.npy", "train_X_u8.npy", "train_y.npy",
    ]  # fmt: skip
    assert all(n == 1 for n in mirror.hits.values()) and len(mirror.hits) == 4


def test_fashion_mnist(mirror, fakes: SimpleNamespace, ds_dir: Path) -> None:
    files, exp = fakes.mnist(n_train=20, n_test=6, seed=4)  # MNIST's file names and IDX format
    fakes.publish(fashion_mnist, files, mirror.root)
    ds = fashion_mnist.FashionMNIST(n_val=0)
    np.testing.assert_array_equal(ds.train_X_u8, exp["train_X_u8"])
    np.testing.assert_array_equal(ds.test_y, exp["test_y"])
    assert ds.val_X.shape == (0, 1, 28, 28) and ds.val_y.dtype == np.int32
    assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10
    assert (ds_dir / "fashion_mnist" / "train_X_u8.npy").is_file()
    assert set(mirror.hits) == {f"fashion_mnist/{f.filename}" for f in fashion_mnist.FILES}


def test_svhn(mirror, fakes: SimpleNamespace) -> None:
    pytest.importorskip("scipy", reason="SVHN needs scipy")
    files, exp = fakes.svhn({"train": 24, "test": 10})
    fakes.publish(svhn, files, mirror.root)
    ds = svhn.SVHN(n_val=4)
    assert ds.train_X_u8.shape == (20, 3, 32, 32) and ds.val_X_u8.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(ds.train_X_u8, exp["train_X_u8"][:-4])
    np.testing.assert_array_equal(ds.val_X_u8, exp["train_X_u8"][-4:])
    np.testing.assert_array_equal(ds.test_X_u8, exp["test_X_u8"])
    np.testing.assert_array_equal(ds.test_y, exp["test_y"])  # the label 10 became the digit 0
    assert ds.test_y.dtype == np.int32 and set(ds.test_y.tolist()) == set(range(10))
    assert ds.val_X.shape == (4, 3, 32, 32) and ds.val_X[0].dtype == np.float32


def test_svhn_extra(mirror, fakes: SimpleNamespace) -> None:
    pytest.importorskip("scipy", reason="SVHN needs scipy")
    files, exp = fakes.svhn({"extra": 11}, seed=3)
    fakes.publish(svhn, files, mirror.root, dataset=svhn.EXTRA_NAME, table="EXTRA_FILES")
    ds = svhn.SVHNExtra()
    np.testing.assert_array_equal(ds.X_u8, exp["extra_X_u8"])
    np.testing.assert_array_equal(ds.y, exp["extra_y"])
    assert len(ds.X) == 11


def test_cifar10(mirror, fakes: SimpleNamespace) -> None:
    files, exp = fakes.cifar10(per_batch=6, n_test=8)
    fakes.publish(cifar10, files, mirror.root)
    ds = cifar10.CIFAR10(n_val=5)
    np.testing.assert_array_equal(ds.train_X_u8, exp["train_X_u8"][:-5])
    np.testing.assert_array_equal(ds.val_X_u8, exp["train_X_u8"][-5:])
    np.testing.assert_array_equal(ds.train_y, exp["train_y"][:-5])
    np.testing.assert_array_equal(ds.val_y, exp["train_y"][-5:])
    np.testing.assert_array_equal(ds.test_X_u8, exp["test_X_u8"])
    np.testing.assert_array_equal(ds.test_y, exp["test_y"])
    assert ds.train_X.shape == (25, 3, 32, 32)
    assert ds.class_names == exp["class_names"]


def test_cifar100(mirror, fakes: SimpleNamespace) -> None:
    files, exp = fakes.cifar100(n_train=20, n_test=8)
    fakes.publish(cifar100, files, mirror.root)
    ds = cifar100.CIFAR100(n_val=3)
    np.testing.assert_array_equal(ds.train_X_u8, exp["train_X_u8"][:-3])
    np.testing.assert_array_equal(ds.val_y, exp["train_y"][-3:])
    np.testing.assert_array_equal(ds.train_y_coarse, exp["train_y_coarse"][:-3])
    np.testing.assert_array_equal(ds.val_y_coarse, exp["train_y_coarse"][-3:])
    np.testing.assert_array_equal(ds.test_y_coarse, exp["test_y_coarse"])
    np.testing.assert_array_equal(ds.test_X_u8, exp["test_X_u8"])
    assert ds.class_names == exp["class_names"] and ds.class_names_coarse == exp["class_names_coarse"]
    empty = cifar100.CIFAR100(n_val=0)
    assert empty.val_y_coarse.shape == (0,) and len(empty.train_y_coarse) == 20


def test_stl(mirror, fakes: SimpleNamespace) -> None:
    files, exp = fakes.stl(n_train=20, n_test=6, n_unl=5)
    fakes.publish(stl, files, mirror.root)
    ds = stl.STL(n_val_folds=1)
    # images were stored column-major: the loader must give them back row-major
    np.testing.assert_array_equal(ds.test_X_u8, exp["test_X_u8"])
    np.testing.assert_array_equal(ds.unl_X_u8, exp["unl_X_u8"])
    np.testing.assert_array_equal(ds.test_y, exp["test_y"])  # 1-10 became 0-9
    val_idx = exp["folds"][-1]
    train_idx = np.setdiff1d(np.arange(20), val_idx)
    np.testing.assert_array_equal(ds.val_X_u8, exp["train_X_u8"][val_idx])
    np.testing.assert_array_equal(ds.val_y, exp["train_y"][val_idx])
    np.testing.assert_array_equal(ds.train_X_u8, exp["train_X_u8"][train_idx])
    np.testing.assert_array_equal(ds.train_y, exp["train_y"][train_idx])
    assert len(ds.tr_folds) == 10 and all(np.array_equal(a, b) for a, b in zip(ds.tr_folds, exp["folds"]))
    assert ds.class_names == exp["class_names"]
    assert ds.val_X.shape == (4, 3, 96, 96)

    two = stl.STL(n_val_folds=2)
    val2 = np.concatenate(exp["folds"][-2:])
    np.testing.assert_array_equal(two.val_y, exp["train_y"][val2])
    assert len(two.train_y) == 20 - len(np.unique(val2))
    none = stl.STL(n_val_folds=0)
    assert none.val_X_u8.shape == (0, 3, 96, 96) and len(none.train_y) == 20
    with pytest.raises(ValueError, match="n_val_folds"):
        stl.STL(n_val_folds=11)
    with pytest.raises(ValueError, match="n_val_folds"):
        stl.STL(n_val_folds=-1)


def test_usps(mirror, fakes: SimpleNamespace) -> None:
    files, exp = fakes.usps(n_train=25, n_test=9)
    fakes.publish(usps, files, mirror.root)
    ds = usps.USPS(n_val=5)
    np.testing.assert_array_equal(ds.train_X, exp["train_X"][:-5])
    np.testing.assert_array_equal(ds.val_X, exp["train_X"][-5:])
    np.testing.assert_array_equal(ds.train_y, exp["train_y"][:-5])
    np.testing.assert_array_equal(ds.test_X, exp["test_X"])
    np.testing.assert_array_equal(ds.test_y, exp["test_y"])
    assert ds.train_X.dtype == np.float32 and ds.train_y.dtype == np.int32
    zero = usps.USPS(n_val=0)
    assert zero.val_X.shape == (0, 1, 16, 16) and zero.val_X.dtype == np.float32 and len(zero.train_X) == 25
