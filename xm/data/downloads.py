"""Downloads and copies that either deliver a file with the right SHA-256 or raise :class:`DownloadError`.

These are what the dataset loaders use. Files are written to ``<path>.unverified`` and renamed into place only once
their digest matches, so a file at ``path`` is always a complete, verified one. (``config`` keeps batchup's helpers,
which report failures by returning None instead.)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["DownloadError", "copy_verified", "fetch_url", "fetch_verified", "sha256_of_file", "unverified_path"]

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed, was truncated, or did not match its checksum."""


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unverified_path(dest: Path) -> Path:
    """Where a file is written until its digest has been checked."""
    return dest.with_name(dest.name + ".unverified")


def fetch_url(url: str, path: str | os.PathLike[str], timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path``. Raises :class:`DownloadError` naming the URL and file.

    A response shorter than its ``Content-Length`` counts as a failed (truncated) transfer; a connection silent for
    ``timeout`` seconds as a failed one.
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
        # ValueError covers malformed URLs.
        raise DownloadError(f"download of {url} to {dest} failed: {exc}") from exc
    except Exception as exc:  # e.g. http.client.IncompleteRead, which is not an OSError
        raise DownloadError(f"download of {url} to {dest} failed: {exc!r}") from exc
    return dest


def fetch_verified(
    url: str, sha256: str | None, path: str | os.PathLike[str], retries: int = 3, retry_delay: float = 0.0
) -> Path:
    """Download ``url`` to ``path`` and check its SHA-256 (skipped if ``sha256`` is None).

    A file already at ``path`` with the right checksum is kept and nothing is downloaded. Failed or truncated
    transfers and checksum mismatches are retried up to ``retries`` attempts in all; after that a
    :class:`DownloadError` names the URL, the file and, if the host could not be reached, the directory to put the
    file in by hand.
    """
    if retries < 1:
        raise ValueError(f"retries must be >= 1, not {retries}")
    dest = Path(path)
    if dest.is_file() and (sha256 is None or sha256_of_file(dest) == sha256.lower()):
        return dest
    tmp = unverified_path(dest)
    last_error = ""
    unreachable = False
    for attempt in range(retries):
        if attempt and retry_delay:
            time.sleep(retry_delay)
        try:
            fetch_url(url, tmp)
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


def copy_verified(src: str | os.PathLike[str], sha256: str | None, dst: str | os.PathLike[str]) -> Path:
    """Copy ``src`` to ``dst`` through a ``.unverified`` temporary file, checking its SHA-256."""
    source, dest = Path(src), Path(dst)
    if not source.is_file():
        raise FileNotFoundError(f"source file {source} does not exist")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = unverified_path(dest)
    shutil.copyfile(source, tmp)
    actual = sha256_of_file(tmp)
    if sha256 is not None and actual != sha256.lower():
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch copying {source} to {dest}: expected sha256 {sha256}, got {actual}")
    os.replace(tmp, dest)
    return dest
