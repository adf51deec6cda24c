"""The shared fetch -> verify -> convert -> cache machinery, driven through MNIST and the loopback mirror: cache
reuse, offline errors and manual drop-in, corrupt/truncated/stalled downloads, interrupted conversion, locking."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import socket
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import attrs
import numpy as np
import pytest
from xmanager.xm.data import config
from xmanager.xm.data.datasets import base, cifar10, mnist


@pytest.fixture
def mnist_files(mirror, fakes: SimpleNamespace) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    files, expected = fakes.mnist(n_train=30, n_test=12)
    fakes.publish(mnist, files, mirror.root)
    return files, expected


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def test_second_construction_reuses_cache_without_network(mirror, mnist_files, ds_dir: Path) -> None:
    first = mnist.MNIST(n_val=5)
    hits = mirror.hits
    assert sum(hits.values()) == 4
    manifest = json.loads((ds_dir / "mnist" / base.MANIFEST).read_text())
    assert manifest["arrays"]["train_X_u8"] == {"shape": [30, 1, 28, 28], "dtype": "uint8"}
    assert not any((ds_dir / "mnist" / "raw").iterdir())  # downloaded raw files are removed after conversion
    converted = {p.name: p.stat().st_mtime_ns for p in (ds_dir / "mnist").glob("*.npy")}

    mirror.stop()
    second = mnist.MNIST(n_val=10)
    assert {p.name: p.stat().st_mtime_ns for p in (ds_dir / "mnist").glob("*.npy")} == converted  # not re-converted
    np.testing.assert_array_equal(second.test_X_u8, first.test_X_u8)
    np.testing.assert_array_equal(second.val_y, mnist_files[1]["train_y"][-10:])
    assert mirror.hits == hits
    with pytest.raises(ValueError):
        second.train_X_u8[0, 0, 0, 0] = 1  # read-only memory map


def test_offline_error_names_urls_and_directory_then_manual_drop_in_works(
    fakes: SimpleNamespace, ds_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, expected = fakes.mnist()
    dead = _closed_port_url()
    table = tuple(
        attrs.evolve(f, sha256=fakes.sha256(files[f.filename]), urls=(f"{dead}/mnist/{f.filename}",))
        for f in mnist.FILES
    )
    monkeypatch.setattr(mnist, "FILES", table)
    raw = ds_dir / "mnist" / "raw"
    with pytest.raises(base.DatasetUnavailableError) as info:
        mnist.MNIST(n_val=5)
    message = str(info.value)
    assert isinstance(info.value, config.DownloadError)
    assert str(raw) in message
    for f in table:  # every missing file is named with its URL and checksum
        assert f.urls[0] in message and f.sha256 in message
    assert not (ds_dir / "mnist" / base.MANIFEST).exists()

    for name, data in files.items():
        (raw / name).write_bytes(data)
    ds = mnist.MNIST(n_val=5)
    np.testing.assert_array_equal(ds.test_X_u8, expected["test_X_u8"])
    assert sorted(p.name for p in raw.iterdir()) == sorted(files)  # files put in by hand are kept


def test_mirror_may_be_a_local_directory(fakes: SimpleNamespace, tmp_path: Path, monkeypatch) -> None:
    files, expected = fakes.mnist()
    fakes.publish(mnist, files, tmp_path / "local-mirror")
    monkeypatch.setenv(base.MIRROR_ENV, str(tmp_path / "local-mirror"))
    np.testing.assert_array_equal(mnist.MNIST(n_val=0).train_y, expected["train_y"])


def test_mirror_argument_beats_environment(mirror, mnist_files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(base.MIRROR_ENV, _closed_port_url())
    ds = mnist.MNIST(n_val=0, mirror=mirror.url)
    assert len(ds.train_y) == 30 and sum(mirror.hits.values()) == 4


def test_corrupt_download_names_file_and_both_checksums(mirror, mnist_files, ds_dir: Path) -> None:
    mirror.faults["mnist/t10k-labels-idx1-ubyte.gz"] = "corrupt"
    expected_sha = next(f.sha256 for f in mnist.FILES if f.filename == "t10k-labels-idx1-ubyte.gz")
    good = mnist_files[0]["t10k-labels-idx1-ubyte.gz"]
    corrupted = bytes([good[0] ^ 0xFF]) + good[1:]
    with pytest.raises(config.DownloadError) as info:
        mnist.MNIST(n_val=5)
    assert not isinstance(info.value, base.DatasetUnavailableError)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert expected_sha in message and hashlib.sha256(corrupted).hexdigest() in message
    assert mirror.hits["mnist/t10k-labels-idx1-ubyte.gz"] == base.RETRIES  # retried, then gave up
    raw = ds_dir / "mnist" / "raw"
    assert not list(raw.glob("*.unverified")) and not (raw / "t10k-labels-idx1-ubyte.gz").exists()
    assert not (ds_dir / "mnist" / base.MANIFEST).exists()


def test_truncated_download_is_an_error_naming_the_file(mirror, mnist_files) -> None:
    mirror.faults["mnist/train-images-idx3-ubyte.gz"] = "truncate"
    with pytest.raises(config.DownloadError, match=r"train-images-idx3-ubyte\.gz"):
        mnist.MNIST(n_val=5)


def test_stalled_download_times_out_instead_of_hanging(mirror, mnist_files, monkeypatch) -> None:
    monkeypatch.setattr(base, "DOWNLOAD_TIMEOUT", 0.2)
    monkeypatch.setattr(base, "RETRIES", 1)
    mirror.faults["mnist/train-images-idx3-ubyte.gz"] = "stall"
    with pytest.raises(config.DownloadError, match=r"train-images-idx3-ubyte\.gz"):
        mnist.MNIST(n_val=5)


def test_transient_failure_is_retried(mirror, mnist_files, fakes) -> None:
    class Once(dict):
        def get(self, key, default=None):  # corrupt only the first request for the file
            if key == "mnist/train-labels-idx1-ubyte.gz" and mirror.httpd.hits.get(key, 0) <= 1:
                return "corrupt"
            return default

    mirror.httpd.faults = Once()
    ds = mnist.MNIST(n_val=5)
    assert mirror.hits["mnist/train-labels-idx1-ubyte.gz"] == 2
    np.testing.assert_array_equal(ds.train_y, mnist_files[1]["train_y"][:-5])


def test_wrong_file_dropped_in_by_hand_is_reported(fakes, ds_dir: Path, monkeypatch) -> None:
    files, _ = fakes.mnist()
    fakes.publish(mnist, files, ds_dir.parent / "unused")
    monkeypatch.setenv(base.MIRROR_ENV, _closed_port_url())
    raw = ds_dir / "mnist" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not mnist")
    with pytest.raises(base.DatasetUnavailableError) as info:
        mnist.MNIST(n_val=5)
    assert f"{raw / 'train-images-idx3-ubyte.gz'} is present but its sha256 is" in str(info.value)


def test_interrupted_conversion_leaves_no_trusted_cache(mirror, mnist_files, ds_dir, monkeypatch) -> None:
    real_save = base.CacheWriter.save
    calls = []

    def crash_on_third(self, name, array):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated crash")
        real_save(self, name, array)

    monkeypatch.setattr(base.CacheWriter, "save", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        mnist.MNIST(n_val=5)
    directory = ds_dir / "mnist"
    assert not (directory / base.MANIFEST).exists()
    assert not list(directory.glob("*.npy")) and not list(directory.glob(".convert-*"))

    monkeypatch.setattr(base.CacheWriter, "save", real_save)
    hits = mirror.hits
    ds = mnist.MNIST(n_val=5)  # converts again from the raw files kept after the failure: no new download
    assert mirror.hits == hits
    np.testing.assert_array_equal(ds.test_y, mnist_files[1]["test_y"])


def test_damaged_cache_is_rebuilt(mirror, mnist_files, ds_dir: Path) -> None:
    mnist.MNIST(n_val=5)
    (ds_dir / "mnist" / "train_y.npy").write_bytes(b"garbage")
    ds = mnist.MNIST(n_val=5)
    np.testing.assert_array_equal(ds.train_y, mnist_files[1]["train_y"][:-5])
    assert mirror.hits["mnist/train-labels-idx1-ubyte.gz"] == 2  # raw files were removed, so fetched again


def test_changed_checksums_invalidate_the_cache(mirror, fakes, ds_dir: Path) -> None:
    files, _ = fakes.mnist(seed=1)
    fakes.publish(mnist, files, mirror.root)
    mnist.MNIST(n_val=5)
    files2, expected2 = fakes.mnist(seed=2)
    fakes.publish(mnist, files2, mirror.root)
    np.testing.assert_array_equal(mnist.MNIST(n_val=0).train_y, expected2["train_y"])


def test_delete_cache(mirror, mnist_files, ds_dir: Path) -> None:
    mnist.MNIST(n_val=5)
    mnist.delete_cache()
    assert not list((ds_dir / "mnist").glob("*.npy")) and not (ds_dir / "mnist" / base.MANIFEST).exists()
    mnist.MNIST(n_val=5)
    assert mirror.hits["mnist/t10k-images-idx3-ubyte.gz"] == 2


def test_bad_raw_content_is_a_format_error_naming_the_file(mirror, fakes, ds_dir: Path) -> None:
    files, _ = fakes.mnist()
    files["t10k-images-idx3-ubyte.gz"] = gzip.compress(np.array([0x801, 3, 1, 1], dtype=">u4").tobytes() + b"abc")
    fakes.publish(mnist, files, mirror.root)
    with pytest.raises(base.DatasetFormatError, match=r"t10k-images-idx3-ubyte\.gz.*magic"):
        mnist.MNIST(n_val=5)
    files["t10k-images-idx3-ubyte.gz"] = b"\x1f\x8b truncated gzip"
    fakes.publish(mnist, files, mirror.root)
    with pytest.raises(base.DatasetFormatError, match=r"t10k-images-idx3-ubyte\.gz"):
        mnist.MNIST(n_val=5)
    assert not (ds_dir / "mnist" / base.MANIFEST).exists()


def test_pickles_that_run_code_are_refused(mirror, fakes) -> None:
    files, _ = fakes.cifar10()
    with tarfile.open(fileobj=io.BytesIO(files["cifar-10-python.tar.gz"]), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    members["cifar-10-batches-py/test_batch"] = pickle.dumps(_Evil(), protocol=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fakes.publish(cifar10, {"cifar-10-python.tar.gz": buf.getvalue()}, mirror.root)
    with pytest.raises(base.DatasetFormatError, match=r"test_batch.*refusing to load .*print"):
        cifar10.CIFAR10(n_val=5)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_concurrent_loads_download_and_convert_once(mirror, mnist_files) -> None:
    results: list[object] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            results.append(mnist.MNIST(n_val=5))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    assert all(n == 1 for n in mirror.hits.values())


@pytest.mark.parametrize("bad", [-1, 30, 31, 2.5, "5", True])
def test_bad_n_val_is_a_value_error_naming_it(mirror, mnist_files, bad) -> None:
    with pytest.raises(ValueError, match="n_val"):
        mnist.MNIST(n_val=bad)


def test_negative_n_val_fails_before_downloading(mirror, mnist_files) -> None:
    with pytest.raises(ValueError, match="n_val"):
        mnist.MNIST(n_val=-3)
    assert mirror.hits == {}


@pytest.mark.parametrize("n_val", [0, None])
def test_no_validation_set_gives_empty_arrays(mirror, mnist_files, n_val) -> None:
    ds = mnist.MNIST(n_val=n_val)
    assert len(ds.train_y) == 30
    assert ds.val_X_u8.shape == (0, 1, 28, 28) and ds.val_X_u8.dtype == np.uint8
    assert ds.val_y.shape == (0,) and ds.val_y.dtype == np.int32
    assert ds.val_X.shape == (0, 1, 28, 28) and ds.val_X[:].shape == (0, 1, 28, 28)


def test_source_file_validation() -> None:
    with pytest.raises(ValueError, match="filename"):
        base.SourceFile("a/b", ("http://x/a/b",), None)
    with pytest.raises(ValueError, match="sha256"):
        base.SourceFile("a", ("http://x/a",), "ABC")


def test_stale_conversion_dirs_are_cleaned(mirror, mnist_files, ds_dir: Path) -> None:
    stale = ds_dir / "mnist" / ".convert-old"
    stale.mkdir(parents=True)
    (stale / "train_y.npy").write_bytes(b"half")
    mnist.MNIST(n_val=5)
    assert not stale.exists()
