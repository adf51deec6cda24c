"""Fetch -> verify -> convert -> memory-mapped cache: the machinery shared by every dataset module.

A dataset module declares its raw files (:class:`SourceFile`: name, official URLs, published SHA-256) and a
converter that turns them into named arrays. :func:`load` then

1. reuses the converted cache in ``<data dir>/<dataset>/`` if its manifest is present and matches;
2. otherwise takes each raw file from ``<data dir>/<dataset>/raw/`` (where it may have been put by hand) or
   downloads it there, from the official URLs or from a mirror (:data:`MIRROR_ENV`), checking its SHA-256;
3. converts the raw files into ``.npy`` files in a private temporary directory, moves them into place and writes the
   manifest last, so an interrupted conversion never leaves a cache that is trusted;
4. opens every array with ``numpy.load(mmap_mode="r")``.

Concurrent loads of one dataset (several jobs starting on one host) are serialised by a lock file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import urllib.error
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from xmanager.xm.converters import str_tuple
from xmanager.xm.data import config, downloads

__all__ = [
    "CACHE_FORMAT",
    "MIRROR_ENV",
    "CacheWriter",
    "DatasetFormatError",
    "DatasetUnavailableError",
    "LoadedDataset",
    "SourceFile",
    "cache_dir",
    "delete_cache",
    "load",
    "raw_dir",
    "reading",
]

MIRROR_ENV = "XM_DATASETS_MIRROR"
"""Base URL (or local directory) of a mirror laid out as ``<mirror>/<dataset>/<file name>``; replaces official URLs."""

DOWNLOAD_TIMEOUT = 60.0
"""Seconds a connection may stay silent before the transfer counts as failed (so a stalled server never hangs us)."""

RETRIES = 3
"""Attempts per URL before giving up on it."""

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
RAW_SUBDIR = "raw"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_ARRAY_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DatasetUnavailableError(config.DownloadError):
    """Raw files could not be fetched because their hosts were unreachable (e.g. this machine is offline)."""


class DatasetFormatError(RuntimeError):
    """A raw file could not be converted: it is not in the format its dataset publishes."""


def _check_filename(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ValueError(f"{attribute.name} must be a plain file name, got {value!r}")


def _check_sha256(_: Any, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not _SHA256_RE.match(value):
        raise ValueError(f"{attribute.name} must be 64 lower-case hex digits or None, got {value!r}")


@attrs.frozen
class SourceFile:
    """One raw file of a dataset as its authors publish it."""

    filename: str = attrs.field(validator=_check_filename)
    urls: tuple[str, ...] = attrs.field(converter=str_tuple)
    sha256: str | None = attrs.field(validator=_check_sha256)


@attrs.frozen
class LoadedDataset:
    """The converted arrays of a dataset (read-only memory maps) and its small metadata (class names, folds)."""

    directory: Path
    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any]


class CacheWriter:
    """Handed to a converter: writes arrays as ``.npy`` files into a private temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.meta: dict[str, Any] = {}
        self._names: list[str] = []

    def _path(self, name: str) -> Path:
        if not _ARRAY_NAME_RE.match(name):
            raise ValueError(f"array name must be an identifier, got {name!r}")
        if name in self._names:
            raise ValueError(f"array {name!r} written twice")
        self._names.append(name)
        return self.directory / f"{name}.npy"

    def save(self, name: str, array: np.ndarray) -> None:
        """Store a whole in-memory array."""
        np.save(self._path(name), np.ascontiguousarray(array), allow_pickle=False)

    def create(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """A writable ``.npy`` memory map to fill piece by piece (for arrays too large to hold in memory)."""
        return np.lib.format.open_memmap(self._path(name), mode="w+", dtype=np.dtype(dtype), shape=shape)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)


Converter = Callable[[Mapping[str, Path], CacheWriter], None]


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Re-raise anything that goes wrong while parsing ``path`` as a :class:`DatasetFormatError` naming it."""
    try:
        yield
    except DatasetFormatError:
        raise
    except Exception as exc:
        raise DatasetFormatError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------------------------------- locations


def cache_dir(name: str) -> Path:
    """``<data dir>/<name>``, where the converted ``.npy`` files and the manifest live (created)."""
    return config.dataset_dir(name)


def raw_dir(name: str) -> Path:
    """``<data dir>/<name>/raw``, where raw files are downloaded to or can be put by hand (not created)."""
    return config.get_base_dir() / name / RAW_SUBDIR


def mirror_base(mirror: str | os.PathLike[str] | None = None) -> str | None:
    """The mirror to use: the ``mirror`` argument, else ``$XM_DATASETS_MIRROR``; a local directory becomes a file URL."""
    value: str | os.PathLike[str] | None = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if value is None:
        return None
    text = os.fspath(value)
    if not text.strip():
        return None
    if "://" not in text:
        return Path(os.path.expanduser(text)).resolve().as_uri()
    return text.rstrip("/")


def source_urls(dataset: str, source: SourceFile, mirror: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The URLs to try for ``source``: the mirror's only, if a mirror is set, else the official ones."""
    base = mirror_base(mirror)
    if base is not None:
        return (f"{base}/{dataset}/{source.filename}",)
    return source.urls


# ---------------------------------------------------------------------------------------------------- fetching


@attrs.frozen
class _Failure:
    source: SourceFile
    urls: tuple[str, ...]
    reason: str
    unreachable: bool


def _is_unreachable(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, urllib.error.URLError) and not isinstance(cause, urllib.error.HTTPError)


def _download_verified(url: str, dest: Path, sha256: str | None) -> tuple[str | None, bool]:
    """Download ``url`` to ``dest`` through ``<dest>.unverified``; returns (error or None, host unreachable)."""
    tmp = dest.with_name(dest.name + ".unverified")
    error = ""
    unreachable = False
    for _ in range(max(1, RETRIES)):
        try:
            downloads.fetch_url(url, tmp, timeout=DOWNLOAD_TIMEOUT)
        except downloads.DownloadError as exc:
            tmp.unlink(missing_ok=True)
            error, unreachable = str(exc), _is_unreachable(exc)
            continue
        unreachable = False
        actual = downloads.sha256_of_file(tmp)
        if sha256 is None or actual == sha256:
            os.replace(tmp, dest)
            return None, False
        size = tmp.stat().st_size
        tmp.unlink(missing_ok=True)
        error = (
            f"checksum mismatch for {dest.name} downloaded from {url} ({size} bytes): "
            f"expected sha256 {sha256}, got {actual}"
        )
    return error, unreachable


def fetch_sources(
    dataset: str, files: Sequence[SourceFile], mirror: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Path], list[Path]]:
    """Make every raw file of ``dataset`` present and verified in :func:`raw_dir`.

    Returns the paths by file name and the files that were downloaded now (as opposed to found in place).
    Raises :class:`DatasetUnavailableError` when hosts were unreachable, else :class:`config.DownloadError`
    (e.g. a corrupt or truncated download after all retries); both name every missing file, its URLs and the
    directory to put it in by hand.
    """
    raw = raw_dir(dataset)
    raw.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    downloaded: list[Path] = []
    failures: list[_Failure] = []
    offline = False
    for source in files:
        dest = raw / source.filename
        present_note = ""
        if dest.is_file():
            actual = downloads.sha256_of_file(dest)
            if source.sha256 is None or actual == source.sha256:
                paths[source.filename] = dest
                continue
            present_note = f"{dest} is present but its sha256 is {actual}, expected {source.sha256}; "
        urls = source_urls(dataset, source, mirror)
        if offline:
            failures.append(_Failure(source, urls, present_note + "not attempted: previous host unreachable", True))
            continue
        reasons: list[str] = []
        all_unreachable = True
        for url in urls:
            error, unreachable = _download_verified(url, dest, source.sha256)
            if error is None:
                paths[source.filename] = dest
                downloaded.append(dest)
                break
            reasons.append(error)
            all_unreachable = all_unreachable and unreachable
        else:
            if not urls:
                reasons.append("no URL known")
            failures.append(_Failure(source, urls, present_note + "; ".join(reasons), all_unreachable))
            offline = offline or all_unreachable
    if failures:
        raise _fetch_error(dataset, raw, failures)
    return paths, downloaded


def _fetch_error(dataset: str, raw: Path, failures: list[_Failure]) -> config.DownloadError:
    lines = [f"could not fetch {len(failures)} raw file(s) of dataset {dataset!r}:"]
    for failure in failures:
        checksum = failure.source.sha256 or "not checked"
        lines.append(
            f"  - {failure.source.filename} (sha256 {checksum}) from {', '.join(failure.urls) or '-'}: {failure.reason}"
        )
    lines.append(
        f"If this machine is offline, download these files elsewhere and put them in {raw} "
        f"(names and SHA-256 as above), or set {MIRROR_ENV} to a URL or directory laid out as "
        f"<mirror>/{dataset}/<file name>."
    )
    message = "\n".join(lines)
    if all(f.unreachable for f in failures):
        return DatasetUnavailableError(message)
    return config.DownloadError(message)


# ---------------------------------------------------------------------------------------------------- the cache


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield
        return
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _expected_sources(files: Sequence[SourceFile]) -> dict[str, str | None]:
    return {f.filename: f.sha256 for f in files}


def _open_cache(directory: Path, dataset: str, files: Sequence[SourceFile]) -> LoadedDataset | None:
    """The cache if its manifest exists and matches the current sources and format, else None."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if (
            manifest.get("format") != CACHE_FORMAT
            or manifest.get("dataset") != dataset
            or manifest.get("sources") != _expected_sources(files)
        ):
            return None
        arrays: dict[str, np.ndarray] = {}
        for name, info in manifest["arrays"].items():
            array = np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
                return None
            arrays[name] = array
        return LoadedDataset(directory=directory, arrays=arrays, meta=manifest.get("meta", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _convert(directory: Path, dataset: str, files: Sequence[SourceFile], paths: dict[str, Path], convert: Converter) -> None:
    for stale in directory.glob(".convert-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=directory))
    try:
        writer = CacheWriter(tmp)
        convert(paths, writer)
        arrays: dict[str, dict[str, Any]] = {}
        for name in writer.names:
            array = np.load(tmp / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            arrays[name] = {"shape": list(array.shape), "dtype": str(array.dtype)}
            del array
        manifest = {
            "format": CACHE_FORMAT,
            "dataset": dataset,
            "sources": _expected_sources(files),
            "arrays": arrays,
            "meta": writer.meta,
        }
        (directory / MANIFEST).unlink(missing_ok=True)  # the old cache stops being trusted before it changes
        for name in writer.names:
            os.replace(tmp / f"{name}.npy", directory / f"{name}.npy")
        manifest_tmp = tmp / MANIFEST
        manifest_tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(manifest_tmp, directory / MANIFEST)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load(
    dataset: str, files: Sequence[SourceFile], convert: Converter, mirror: str | os.PathLike[str] | None = None
) -> LoadedDataset:
    """The cached arrays of ``dataset``, fetching and converting its raw files first if there is no valid cache.

    Raw files downloaded for the conversion are deleted afterwards; files that were put in :func:`raw_dir` by hand
    are kept.
    """
    directory = cache_dir(dataset)
    loaded = _open_cache(directory, dataset, files)
    if loaded is not None:
        return loaded
    with _locked(directory):
        loaded = _open_cache(directory, dataset, files)  # another process may have converted it meanwhile
        if loaded is not None:
            return loaded
        paths, downloaded = fetch_sources(dataset, files, mirror)
        _convert(directory, dataset, files, paths, convert)
        for path in downloaded:
            path.unlink(missing_ok=True)
    loaded = _open_cache(directory, dataset, files)
    if loaded is None:  # pragma: no cover - only if the files vanish between writing and reading
        raise DatasetFormatError(f"the cache of {dataset!r} in {directory} could not be reopened after conversion")
    return loaded


def delete_cache(dataset: str) -> None:
    """Remove the converted files of ``dataset`` (raw files put in by hand are kept)."""
    directory = config.get_base_dir() / dataset
    if not directory.is_dir():
        return
    (directory / MANIFEST).unlink(missing_ok=True)
    for path in directory.glob("*.npy"):
        path.unlink()
