"""pytest plugin: the standard datasets served from a loopback mirror of synthetic files in their published formats.

Loaded with ``-p dataset_mirror`` (batchup's suite does so through ``tests/compat/batchup.toml``), so tests that would
download MNIST, Fashion-MNIST, SVHN, CIFAR-10/100 or USPS from the internet run offline against the real
download -> verify -> convert -> memory-map path:

- the first time a dataset is loaded, its raw files are generated (real formats, real sample counts, shapes and
  dtypes; every image distinct and labels 0-9 spread, so train/test disjointness checks mean something) into a cache
  under ``~/.cache/xmanager-compat/synthetic-datasets/`` (``$XM_COMPAT_CACHE``) and reused by later runs; images are
  mostly blank, so the files compress well and are quick to make;
- the cache is served on 127.0.0.1 and ``$XM_DATASETS_MIRROR`` points the loaders at it; ``$XM_DATASETS_DIR`` is a
  fresh folder for this run (removed at the end), so every run downloads and converts;
- the loaders check every downloaded file against the synthetic file's SHA-256, which this plugin substitutes for
  the published digest in ``base.load``'s file list, in this process only. The product's digests are untouched.

STL-10 (2.7 GB of unlabelled images) is not generated: batchup marks its tests ``bigdataset``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import dataset_formats as formats
import numpy as np

FORMAT_VERSION = "v1"
CACHE = Path(os.environ.get("XM_COMPAT_CACHE", Path.home() / ".cache" / "xmanager-compat"))
DIGESTS = "digests.json"


def synthetic_root() -> Path:
    return CACHE / "synthetic-datasets" / FORMAT_VERSION


# ------------------------------------------------------------------------------------------------- the samples


def distinct_images(count: int, item_shape: tuple[int, ...], first: int, labels: np.ndarray) -> np.ndarray:
    """``count`` uint8 images, blank but for their running number ``first + i`` (three bytes) and a mark at a
    position given by their label: all distinct (across splits too, given disjoint numbers), and cheap to compress."""
    size = int(np.prod(item_shape))
    images = np.zeros((count, size), dtype=np.uint8)
    number = np.arange(first, first + count, dtype=np.int64)
    images[:, 0] = number >> 16
    images[:, 1] = (number >> 8) & 0xFF
    images[:, 2] = number & 0xFF
    images[np.arange(count), 3 + (labels.astype(np.int64) * (size - 4)) // 10] = 255
    return images.reshape((count, *item_shape))


def labels_for(count: int, classes: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, classes, size=count)


# ------------------------------------------------------------------------------------------------ the datasets


def _idx(n_train: int, n_test: int, seed: int) -> dict[str, bytes]:
    out = {}
    first = 0
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = labels_for(n, 10, seed + first)
        out[f"{prefix}-images-idx3-ubyte.gz"] = formats.gz(
            formats.idx_images(distinct_images(n, (28, 28), first, labels))
        )
        out[f"{prefix}-labels-idx1-ubyte.gz"] = formats.gz(formats.idx_labels(labels))
        first += n
    return out


def _svhn() -> dict[str, bytes]:
    out = {}
    first = 0
    for split, n in (("train", 73257), ("test", 26032)):
        digits = labels_for(n, 10, first + 3)
        out[f"{split}_32x32.mat"] = formats.svhn_mat(distinct_images(n, (3, 32, 32), first, digits), digits, True)
        first += n
    return out


def _cifar10() -> dict[str, bytes]:
    members = {}
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        labels = labels_for(10000, 10, i + 10)
        data = distinct_images(10000, (3072,), i * 10000, labels)
        members[f"cifar-10-batches-py/{name}"] = formats.cifar_pickle(
            {"batch_label": name, "data": data, "labels": [int(v) for v in labels]}
        )
    members["cifar-10-batches-py/batches.meta"] = formats.cifar_pickle(
        {"label_names": list(formats.CIFAR10_CLASSES), "num_cases_per_batch": 10000, "num_vis": 3072}
    )
    return {"cifar-10-python.tar.gz": formats.tar_gz(members)}


def _cifar100() -> dict[str, bytes]:
    members = {}
    first = 0
    for split, n in (("train", 50000), ("test", 10000)):
        fine = labels_for(n, 100, first + 20)
        data = distinct_images(n, (3072,), first, fine % 10)
        members[f"cifar-100-python/{split}"] = formats.cifar_pickle(
            {"data": data, "fine_labels": [int(v) for v in fine], "coarse_labels": [int(v) // 5 for v in fine]}
        )
        first += n
    members["cifar-100-python/meta"] = formats.cifar_pickle(
        {
            "fine_label_names": [f"fine_{i}" for i in range(100)],
            "coarse_label_names": [f"coarse_{i}" for i in range(20)],
        }
    )
    return {"cifar-100-python.tar.gz": formats.tar_gz(members)}


def _usps() -> dict[str, bytes]:
    splits = {}
    first = 0
    for split, n in (("train", 7291), ("test", 2007)):
        labels = labels_for(n, 10, first + 30)
        images = np.zeros((n, 256), dtype=np.float32)
        images[:, 0] = np.arange(first, first + n) / 16384.0  # exact in float32: distinct samples
        images[np.arange(n), 1 + labels * 25] = 1.0
        splits[split] = (images.reshape(n, 1, 16, 16), labels.astype(np.int32))
        first += n
    return {"usps.h5": formats.usps_h5(splits)}


GENERATORS: dict[str, Callable[[], dict[str, bytes]]] = {
    "mnist": functools.partial(_idx, 60000, 10000, 0),
    "fashion_mnist": functools.partial(_idx, 60000, 10000, 100),
    "svhn": _svhn,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "usps": _usps,
}
"""Generators by the loaders' dataset directory names (the mirror's layout is ``<dataset>/<file>``)."""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_generated(dataset: str) -> dict[str, str]:
    """The synthetic files of ``dataset`` (made once, then cached): their SHA-256 digests by file name."""
    folder = synthetic_root() / dataset
    digests = folder / DIGESTS
    if not digests.is_file():
        with _locked(synthetic_root() / f".{dataset}.lock"):
            if not digests.is_file():
                staging = Path(tempfile.mkdtemp(prefix=f".{dataset}-", dir=synthetic_root()))
                try:
                    found = {}
                    for name, data in GENERATORS[dataset]().items():
                        (staging / name).write_bytes(data)
                        found[name] = hashlib.sha256(data).hexdigest()
                    (staging / DIGESTS).write_text(json.dumps(found, indent=1, sort_keys=True))
                    shutil.rmtree(folder, ignore_errors=True)
                    staging.rename(folder)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
    return json.loads(digests.read_text())


# --------------------------------------------------------------------------------------------------- the mirror


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@attrs.define
class _Mirror:
    httpd: http.server.ThreadingHTTPServer
    thread: threading.Thread
    data_dir: Path
    saved_env: dict[str, str | None]
    saved_load: Callable[..., Any] | None = None


_mirror: _Mirror | None = None

_ENV = ("XM_DATASETS_MIRROR", "XM_DATASETS_DIR", "XM_DATA_CONFIG")


def _trusting_synthetic_digests(load: Callable[..., Any]) -> Callable[..., Any]:
    """``base.load`` checking the datasets this plugin serves against their synthetic files' digests."""

    @functools.wraps(load)
    def wrapped(dataset: str, files: Any, convert: Any, mirror: Any = None) -> Any:
        if dataset in GENERATORS:
            digests = ensure_generated(dataset)
            files = tuple(attrs.evolve(f, sha256=digests[f.filename]) for f in files)
        return load(dataset, files, convert, mirror=mirror)

    return wrapped


def pytest_configure(config: Any) -> None:
    global _mirror
    synthetic_root().mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(synthetic_root()))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), daemon=True, name="dataset-mirror")
    thread.start()
    data_dir = Path(tempfile.mkdtemp(prefix="xm-datasets-"))
    saved = {name: os.environ.get(name) for name in _ENV}
    os.environ["XM_DATASETS_MIRROR"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    os.environ["XM_DATASETS_DIR"] = str(data_dir)
    os.environ["XM_DATA_CONFIG"] = str(data_dir / "no-config-file.cfg")
    _mirror = _Mirror(httpd=httpd, thread=thread, data_dir=data_dir, saved_env=saved)
    from xmanager.xm.data.datasets import base

    _mirror.saved_load = base.load
    base.load = _trusting_synthetic_digests(base.load)


def pytest_unconfigure(config: Any) -> None:
    global _mirror
    if _mirror is None:
        return
    from xmanager.xm.data.datasets import base

    if _mirror.saved_load is not None:
        base.load = _mirror.saved_load
    _mirror.httpd.shutdown()
    _mirror.httpd.server_close()
    _mirror.thread.join()
    for name, value in _mirror.saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(_mirror.data_dir, ignore_errors=True)
    _mirror = None
