"""Where datasets live on disk, with batchup's ``config`` helpers for fetching files into that place.

The data directory is chosen from, in this order (the first that is set wins):

1. the config file: ``$XM_DATA_CONFIG`` if set, else ``~/.xmanager-data.cfg``; an INI file with a
   ``[paths]`` section holding ``data_dir = ...``;
2. the environment variable ``XM_DATASETS_DIR``;
3. the default ``~/.local/share/xmanager/datasets``.

The built-in datasets keep their converted arrays in ``<data directory>/<dataset>/`` (:func:`dataset_dir`).
batchup's names work as in batchup, with the data directory in the role of batchup's home: :func:`get_data_dir` is its
``data`` subfolder, where datasets declared with :mod:`xmanager.xm.data.datasets.dataset` are kept; paths are
``str``; :func:`download_data` and friends print their progress and return None when they fail. The helpers that
raise instead are in :mod:`xmanager.xm.data.downloads` (``DownloadError`` and ``sha256_of_file`` are re-exported
here).
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
from pathlib import Path
from urllib.request import urlretrieve

from xmanager.xm.data.downloads import DownloadError, sha256_of_file

__all__ = [
    "CONFIG_ENV",
    "DIR_ENV",
    "DownloadError",
    "compute_sha256",
    "config_file_path",
    "copy_and_verify",
    "copy_data",
    "dataset_dir",
    "download",
    "download_and_verify",
    "download_data",
    "get_base_dir",
    "get_batchup_path",
    "get_config",
    "get_data_dir",
    "get_data_path",
    "sha256_of_file",
    "verify_file",
]

CONFIG_ENV = "XM_DATA_CONFIG"
DIR_ENV = "XM_DATASETS_DIR"
DEFAULT_CONFIG_NAME = ".xmanager-data.cfg"
DEFAULT_DIR = Path(".local") / "share" / "xmanager" / "datasets"
DATA_SUBDIR = "data"
"""The subfolder of the data directory that :func:`get_data_dir` names (batchup's ``<home>/data``)."""

_MAX_DOWNLOAD_TRIES = 3
"""Attempts :func:`download_and_verify` makes (batchup's name)."""


# ------------------------------------------------------------------------------------------------------ locations


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def config_file_path() -> Path:
    """The config file consulted for ``[paths] data_dir``."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(os.path.expanduser(override))
    return _home() / DEFAULT_CONFIG_NAME


def get_config() -> configparser.ConfigParser:
    """The parsed config file (empty when there is none); a file that is not INI is a ValueError naming it."""
    parser = configparser.ConfigParser()
    path = config_file_path()
    if path.is_file():
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ValueError(f"cannot parse data config file {path}: {exc}") from exc
    return parser


def get_base_dir() -> Path:
    """The data directory (not created)."""
    value = get_config().get("paths", "data_dir", fallback="").strip()
    if value:
        return Path(os.path.expanduser(value))
    from_env = os.environ.get(DIR_ENV)
    if from_env:
        return Path(os.path.expanduser(from_env))
    return _home() / DEFAULT_DIR


def dataset_dir(name: str) -> Path:
    """``<data directory>/<name>``, where a built-in dataset keeps its converted arrays; created on first use."""
    path = get_base_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_batchup_path() -> str:
    """The data directory as a ``str``, created if missing (batchup's home); a file in its place is a RuntimeError."""
    path = get_base_dir()
    if path.exists() and not path.is_dir():
        raise RuntimeError(f"the data directory {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def get_data_dir() -> str:
    """``<data directory>/data``: where files of datasets declared with ``datasets.dataset`` go (not created)."""
    return os.path.join(get_batchup_path(), DATA_SUBDIR)


def get_data_path(filename: str | os.PathLike[str]) -> str:
    """``filename`` inside :func:`get_data_dir`; an absolute path is returned unchanged."""
    name = os.fspath(filename)
    if os.path.isabs(name):
        return name
    return os.path.join(get_data_dir(), name)


# ------------------------------------------------------------------------------------ batchup's fetching helpers


def _say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def download(path: str, source_url: str) -> str:
    """Download ``source_url`` to ``path`` unless ``path`` exists, printing progress; returns ``path``.

    A failed transfer removes the partial file and re-raises the error.
    """
    if os.path.exists(path):
        return path
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    print(f"Downloading {source_url} to {path}")
    name = source_url.split("/")[-1]

    def progress(blocks: int, block_size: int, total_size: int) -> None:
        done = blocks * block_size
        if total_size > 0:
            _say(f"\rDownloading {name} {min(done / total_size, 1.0):.2%}")
        else:
            _say(f"\rDownloading {name} {done} bytes")

    try:
        urlretrieve(source_url, path, reporthook=progress)
    except BaseException:
        _say("\r")
        if os.path.exists(path):
            os.remove(path)
        raise
    _say("\r")
    return path


def compute_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of the file at ``path``."""
    return sha256_of_file(path)


def verify_file(path: str | os.PathLike[str], sha256: str | None) -> bool:
    """Whether ``path`` is a file whose SHA-256 is ``sha256``; with None, any file passes and its digest is printed."""
    if not os.path.isfile(path):
        return False
    digest = compute_sha256(path)
    if sha256 is None:
        print(f"SHA-256 of {path}:")
        print(f'  "{digest}"')
        return True
    return digest == sha256.lower()


def _existing(path: str, sha256: str | None) -> bool:
    """Whether a file already at ``path`` can be used (printing its digest when there is none to check)."""
    if not os.path.exists(path):
        return False
    if sha256 is None:
        print(f'The SHA-256 of {path} is "{compute_sha256(path)}"')
        return True
    if os.path.isfile(path) and compute_sha256(path) == sha256.lower():
        return True
    print(f"{path} does not have the expected SHA-256; fetching it again")
    return False


def download_and_verify(path: str, source_url: str, sha256: str | None) -> str | None:
    """Download ``source_url`` to ``path`` through ``<path>.unverified`` and check its SHA-256.

    A file already at ``path`` is kept if its digest matches (or none is given). Up to three attempts; each failure
    is printed. Returns ``path``, or None when every attempt failed.
    """
    if _existing(path, sha256):
        return path
    unverified = path + ".unverified"
    if os.path.exists(unverified):
        os.remove(unverified)  # left by an interrupted run: never trusted
    for _ in range(_MAX_DOWNLOAD_TRIES):
        try:
            download(unverified, source_url)
        except Exception as exc:
            print(f"Download of {source_url} unsuccessful; error {exc}; deleting and re-trying...")
            if os.path.exists(unverified):
                os.remove(unverified)
            continue
        if not os.path.exists(unverified):
            continue
        if verify_file(unverified, sha256):
            os.replace(unverified, path)
            return path
        print(f"Download of {source_url} unsuccessful; verification failed; deleting and re-trying...")
        os.remove(unverified)
    print(f"Did not succeed in downloading {source_url} (tried {_MAX_DOWNLOAD_TRIES} times)")
    return None


def copy_and_verify(path: str, source_path: str, sha256: str | None) -> str | None:
    """Copy ``source_path`` to ``path`` through ``<path>.unverified`` and check its SHA-256.

    A file already at ``path`` is kept if its digest matches (or none is given). Returns ``path``, or None when the
    source is missing or the copy does not match.
    """
    if _existing(path, sha256):
        return path
    if not os.path.exists(source_path):
        return None
    unverified = path + ".unverified"
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    shutil.copy(source_path, unverified)
    if verify_file(unverified, sha256):
        os.replace(unverified, path)
        return path
    print(f"SHA verification of file {source_path} failed")
    os.remove(unverified)
    return None


def download_data(filename: str, source_url: str, sha256: str | None) -> str | None:
    """:func:`download_and_verify` into :func:`get_data_path` ``(filename)``."""
    return download_and_verify(get_data_path(filename), source_url, sha256)


def copy_data(filename: str, source_path: str, sha256: str | None) -> str | None:
    """:func:`copy_and_verify` into :func:`get_data_path` ``(filename)``."""
    return copy_and_verify(get_data_path(filename), source_path, sha256)
