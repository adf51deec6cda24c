"""Fixtures for the dataset loaders: a private data directory, a loopback HTTP mirror with fault injection, and
generators of tiny raw files in each dataset's real published format (made at test time, never shipped)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import attrs
import dataset_formats as formats
import numpy as np
import pytest
from xmanager.xm.data import config
from xmanager.xm.data.datasets import base

# ------------------------------------------------------------------------------------------- data directory


@pytest.fixture(autouse=True)
def ds_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets a fresh datasets directory, no mirror and no config file (never the user's real cache)."""
    d = tmp_path / "datasets"
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "no-such.cfg"))
    monkeypatch.setenv(config.DIR_ENV, str(d))
    monkeypatch.delenv(base.MIRROR_ENV, raising=False)
    return d


# ------------------------------------------------------------------------------------------- loopback mirror


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        server: Any = self.server
        path = self.path.lstrip("/")
        with server.lock:
            server.hits[path] = server.hits.get(path, 0) + 1
        file = server.root / path
        if not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        fault = server.faults.get(path)
        if fault == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault in ("truncate", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if fault == "stall":
                server.release.wait(10)  # stay silent until the test ends (the client must time out first)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@attrs.define
class Mirror:
    """A loopback HTTP server serving ``root`` as ``<url>/<dataset>/<file>``."""

    url: str
    root: Path
    httpd: Any
    thread: threading.Thread

    @property
    def hits(self) -> dict[str, int]:
        return dict(self.httpd.hits)

    @property
    def faults(self) -> dict[str, str]:
        return self.httpd.faults

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.release.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def mirror(tmp_path: Path, ds_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    """A running loopback mirror, named by ``$XM_DATASETS_MIRROR``."""
    root = tmp_path / "mirror"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.root, httpd.hits, httpd.faults = root, {}, {}  # type: ignore[attr-defined]
    httpd.lock, httpd.release = threading.Lock(), threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    m = Mirror(url=f"http://127.0.0.1:{httpd.server_address[1]}", root=root, httpd=httpd, thread=thread)
    monkeypatch.setenv(base.MIRROR_ENV, m.url)
    try:
        yield m
    finally:
        m.stop()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish(
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    files: dict[str, bytes],
    root: Path,
    dataset: str | None = None,
    table: str = "FILES",
) -> None:
    """Put ``files`` under ``root/<dataset>/`` and patch the module's file table with their checksums."""
    dataset = dataset or module.NAME
    (root / dataset).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / dataset / name).write_bytes(data)
    patched = tuple(attrs.evolve(f, sha256=sha256(files[f.filename])) for f in getattr(module, table))
    assert {f.filename for f in patched} == set(files), "generated files must match the module's table"
    monkeypatch.setattr(module, table, patched)


# ------------------------------------------------------------------------------------------- real-format fakes


def fake_mnist(n_train: int = 30, n_test: int = 12, seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """MNIST's four gzipped IDX files (big-endian header: magic, count[, rows, cols]) and the arrays they hold."""
    rng = np.random.default_rng(seed)
    out: dict[str, bytes] = {}
    expected: dict[str, np.ndarray] = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        out[f"{prefix}-images-idx3-ubyte.gz"] = formats.gz(formats.idx_images(images))
        out[f"{prefix}-labels-idx1-ubyte.gz"] = formats.gz(formats.idx_labels(labels))
        expected[f"{split}_X_u8"] = images.reshape(n, 1, 28, 28)
        expected[f"{split}_y"] = labels.astype(np.int32)
    return out, expected


def fake_svhn(sizes: dict[str, int], seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """SVHN ``.mat`` files (MATLAB v5 via scipy): X (32, 32, 3, N) uint8, y (N, 1) in 1-10 with 10 for the digit 0."""
    rng = np.random.default_rng(seed)
    out: dict[str, bytes] = {}
    expected: dict[str, np.ndarray] = {}
    for split, n in sizes.items():
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        digits = np.arange(n) % 10  # every digit, including 0
        out[f"{split}_32x32.mat"] = formats.svhn_mat(images, digits)
        expected[f"{split}_X_u8"] = images
        expected[f"{split}_y"] = digits.astype(np.int32)
    return out, expected


def fake_cifar10(per_batch: int = 6, n_test: int = 8, seed: int = 0) -> tuple[dict[str, bytes], dict[str, Any]]:
    """``cifar-10-python.tar.gz``: pickled dicts with uint8 ``data`` (N, 3072) and a ``labels`` list."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {}
    train_x, train_y = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        members[f"cifar-10-batches-py/data_batch_{i}"] = formats.cifar_pickle(
            {"batch_label": f"batch {i}", "data": x, "labels": y}
        )
        train_x.append(x)
        train_y += y
    test_x = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_y = [int(v) for v in rng.integers(0, 10, size=n_test)]
    members["cifar-10-batches-py/test_batch"] = formats.cifar_pickle({"data": test_x, "labels": test_y})
    names = list(formats.CIFAR10_CLASSES)
    members["cifar-10-batches-py/batches.meta"] = formats.cifar_pickle({"label_names": names, "num_vis": 3072})
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    expected = {
        "train_X_u8": np.concatenate(train_x).reshape(-1, 3, 32, 32),
        "train_y": np.array(train_y, dtype=np.int32),
        "test_X_u8": test_x.reshape(-1, 3, 32, 32),
        "test_y": np.array(test_y, dtype=np.int32),
        "class_names": names,
    }
    return {"cifar-10-python.tar.gz": formats.tar_gz(members)}, expected


def fake_cifar100(n_train: int = 20, n_test: int = 8, seed: int = 0) -> tuple[dict[str, bytes], dict[str, Any]]:
    """``cifar-100-python.tar.gz``: ``train``/``test`` with fine and coarse labels, ``meta`` with both name lists."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {}
    expected: dict[str, Any] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        coarse = [f // 5 for f in fine]
        members[f"cifar-100-python/{split}"] = formats.cifar_pickle(
            {"data": x, "fine_labels": fine, "coarse_labels": coarse}
        )
        expected[f"{split}_X_u8"] = x.reshape(-1, 3, 32, 32)
        expected[f"{split}_y"] = np.array(fine, dtype=np.int32)
        expected[f"{split}_y_coarse"] = np.array(coarse, dtype=np.int32)
    fine_names = [f"fine{i}" for i in range(100)]
    coarse_names = [f"coarse{i}" for i in range(20)]
    members["cifar-100-python/meta"] = formats.cifar_pickle(
        {"fine_label_names": fine_names, "coarse_label_names": coarse_names}
    )
    expected["class_names"], expected["class_names_coarse"] = fine_names, coarse_names
    return {"cifar-100-python.tar.gz": formats.tar_gz(members)}, expected


STL_CLASSES = formats.STL_CLASSES


def fake_stl(
    n_train: int = 20, n_test: int = 6, n_unl: int = 5, seed: int = 0
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """``stl10_binary.tar.gz``: column-major uint8 images, labels 1-10, class names and ten lines of fold indices."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {}
    expected: dict[str, Any] = {}
    for split, member, n in (("train", "train", n_train), ("test", "test", n_test), ("unl", "unlabeled", n_unl)):
        images = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        members[f"stl10_binary/{member}_X.bin"] = formats.stl_images(images)
        expected[f"{split}_X_u8"] = images
        if split != "unl":
            labels = rng.integers(1, 11, size=n, dtype=np.uint8)
            members[f"stl10_binary/{member}_y.bin"] = labels.tobytes()
            expected[f"{split}_y"] = labels.astype(np.int32) - 1
    folds = [rng.choice(n_train, size=n_train // 5, replace=False) for _ in range(10)]
    members["stl10_binary/class_names.txt"] = ("\n".join(STL_CLASSES) + "\n").encode("ascii")
    members["stl10_binary/fold_indices.txt"] = "".join(" ".join(map(str, f)) + " \n" for f in folds).encode("ascii")
    expected["folds"], expected["class_names"] = folds, STL_CLASSES
    return {"stl10_binary.tar.gz": formats.tar_gz(members)}, expected


def fake_usps(n_train: int = 25, n_test: int = 9, seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """``usps.h5`` as batchup publishes it: group ``usps`` with float32 (N, 1, 16, 16) images and labels."""
    pytest.importorskip("h5py", reason="h5py is needed to write the USPS HDF5 fixture")
    rng = np.random.default_rng(seed)
    expected: dict[str, np.ndarray] = {}
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.random((n, 1, 16, 16), dtype=np.float32)
        y = rng.integers(0, 10, size=n).astype(np.int32)
        splits[split] = (x, y)
        expected[f"{split}_X"], expected[f"{split}_y"] = x, y
    return {"usps.h5": formats.usps_h5(splits)}, expected


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The generators above, plus ``publish(module, files, root, ...)`` bound to this test's monkeypatch."""
    return SimpleNamespace(
        mnist=fake_mnist,
        svhn=fake_svhn,
        cifar10=fake_cifar10,
        cifar100=fake_cifar100,
        stl=fake_stl,
        usps=fake_usps,
        sha256=sha256,
        publish=partial(publish, monkeypatch),
    )
