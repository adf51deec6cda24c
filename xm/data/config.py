"""Where datasets live on disk, and verified downloads into that place.

The data directory is chosen from, in this order (the first that is set wins):

1. the config file: ``$XM_DATA_CONFIG`` if set, else ``~/.xmanager-data.cfg``; an INI file with a
   ``[paths]`` section holding ``data_dir = ...``;
2. the environment variable ``XM_DATASETS_DIR``;
3. the default ``~/.local/share/xmanager/datasets``.

The directory is created the first time it is asked for.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

CONFIG_ENV = "XM_DATA_CONFIG"
DIR_ENV = "XM_DATASETS_DIR"
DEFAULT_CONFIG_NAME = ".xmanager-data.cfg"
DEFAULT_DIR = Path(".local") / "share" / "xmanager" / "datasets"

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed, was truncated, or did not match its checksum."""


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def config_file_path() -> Path:
    """The config file consulted for ``[paths] data_dir``."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(os.path.expanduser(override))
    return _home() / DEFAULT_CONFIG_NAME


def _dir_from_config() -> Path | None:
    path = config_file_path()
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ValueError(f"cannot parse data config file {path}: {exc}") from exc
    value = parser.get("paths", "data_dir", fallback="").strip()
    if not value:
        return None
    return Path(os.path.expanduser(value))


def get_base_dir() -> Path:
    """The data directory (not created)."""
    from_config = _dir_from_config()
    if from_config is not None:
        return from_config
    from_env = os.environ.get(DIR_ENV)
    if from_env:
        return Path(os.path.expanduser(from_env))
    return _home() / DEFAULT_DIR


def get_data_dir(name: str | None = None) -> Path:
    """The data directory, or its subdirectory ``name``; created on first use."""
    path = get_base_dir()
    if name is not None:
        path = path / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_data_path(*parts: str) -> Path:
    """A path inside the data directory; its parent directory is created."""
    if not parts:
        return get_data_dir()
    path = get_base_dir().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, path: str | os.PathLike[str], timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path``. Raises :class:`DownloadError` naming the URL and file.

    A response shorter than its ``Content-Length`` counts as a failed (truncated) transfer.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
            expected = resp.headers.get("Content-Length")
            written = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
        if expected is not None and written != int(expected):
            raise DownloadError(f"download of {url} to {dest} truncated: got {written} of {expected} bytes")
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the open response
        raise DownloadError(f"download of {url} to {dest} failed: {exc}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # http.client.IncompleteRead is not an OSError; ValueError covers malformed URLs.
        raise DownloadError(f"download of {url} to {dest} failed: {exc}") from exc
    except Exception as exc:  # e.g. http.client.IncompleteRead
        raise DownloadError(f"download of {url} to {dest} failed: {exc!r}") from exc
    return dest


def _unverified_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".unverified")


def download_and_verify(
    url: str, sha256: str | None, path: str | os.PathLike[str], retries: int = 3, retry_delay: float = 0.0
) -> Path:
    """Download ``url`` to ``path`` and check its SHA-256 (skipped if ``sha256`` is None).

    The file is written to ``<path>.unverified`` and renamed to ``path`` only once verified. A file already at
    ``path`` with the right checksum is kept and nothing is downloaded. Failed or truncated transfers and checksum
    mismatches are retried up to ``retries`` attempts in all; after that a :class:`DownloadError` names the URL, the
    file and, if the host could not be reached, the directory to put the file in by hand.
    """
    if retries < 1:
        raise ValueError(f"retries must be >= 1, not {retries}")
    dest = Path(path)
    if dest.is_file() and (sha256 is None or sha256_of_file(dest) == sha256.lower()):
        return dest
    tmp = _unverified_path(dest)
    last_error = ""
    unreachable = False
    for attempt in range(retries):
        if attempt and retry_delay:
            time.sleep(retry_delay)
        try:
            download(url, tmp)
        except DownloadError as exc:
            last_error = str(exc)
            cause = exc.__cause__
            unreachable = isinstance(cause, urllib.error.URLError) and not isinstance(cause, urllib.error.HTTPError)
            tmp.unlink(missing_ok=True)
            continue
        unreachable = False
        actual = sha256_of_file(tmp)
        if sha256 is None or actual == sha256.lower():
            os.replace(tmp, dest)
            return dest
        tmp.unlink(missing_ok=True)
        last_error = f"checksum mismatch for {url} (file {dest}): expected sha256 {sha256}, got {actual}"
    tmp.unlink(missing_ok=True)
    message = f"could not download {url} to {dest} after {retries} attempt(s): {last_error}"
    if unreachable:
        message += f". If this machine is offline, fetch {url} elsewhere and put it in {dest.parent}"
    raise DownloadError(message)


def copy_and_verify(src: str | os.PathLike[str], sha256: str | None, dst: str | os.PathLike[str]) -> Path:
    """Copy ``src`` to ``dst`` through a ``.unverified`` temporary file, checking its SHA-256."""
    source, dest = Path(src), Path(dst)
    if not source.is_file():
        raise FileNotFoundError(f"source file {source} does not exist")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unverified_path(dest)
    shutil.copyfile(source, tmp)
    actual = sha256_of_file(tmp)
    if sha256 is not None and actual != sha256.lower():
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch copying {source} to {dest}: expected sha256 {sha256}, got {actual}")
    os.replace(tmp, dest)
    return dest
