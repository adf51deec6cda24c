"""Following a job's log files: where they are (the executor says) and what was added since an offset.

A page asks for the bytes after the offset it has read; the answer is the new text (cut at the last whole
UTF-8 character) and the offset to ask from next. The first read of a large file starts at its last
:data:`TAIL_BYTES`, at a line start. A file that shrank (rewritten) is read again from its start.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

from xmanager.executors.api import BackendSettings, ExecutorBackend, Handle, LogFiles, StatusUpdate
from xmanager.xm_local import registry
from xmanager.xm_local.store.rows import JobRow

__all__ = ["LogLocator", "read_from"]

#: Most bytes one answer carries.
CHUNK_BYTES = 256 * 1024
#: How much of a large log the first read shows.
TAIL_BYTES = 64 * 1024


def _ignore(update: StatusUpdate) -> None:
    """The dashboard launches nothing: statuses a backend might report are not its to record."""
    del update


class LogLocator:
    """The log files of stored jobs, through each executor's ``ExecutorBackend.logs(handle)`` (opened on first use).

    Paths the store recorded (detached executors) are used as they are; found paths are kept per job.
    """

    def __init__(self) -> None:
        self._backends: dict[str, ExecutorBackend[Any]] = {}
        self._found: dict[tuple[int, int, str], LogFiles] = {}
        self._lock = threading.Lock()

    def files(self, row: JobRow) -> LogFiles:
        if row.stdout_path or row.stderr_path:
            return LogFiles(stdout=row.stdout_path, stderr=row.stderr_path)
        key = (row.experiment_id, row.work_unit_id, row.job_name)
        found = self._found.get(key)
        if found is not None:
            return found
        if not isinstance(row.handle, dict) or "executor" not in row.handle:
            return LogFiles()  # Not launched yet.
        handle = Handle.from_json(row.handle, row.experiment_id, row.work_unit_id, row.job_name)
        try:
            files = self._backend(handle.executor).logs(handle)
        except LookupError:  # An executor this installation does not have.
            return LogFiles()
        if files.stdout or files.stderr:
            self._found[key] = files
        return files

    def _backend(self, name: str) -> ExecutorBackend[Any]:
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = self._backends[name] = registry.plugin(name).open(_ignore, BackendSettings())
            return backend

    def close(self) -> None:
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.close()


def _whole_characters(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut off at its end (read next time, whole)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # The first byte of a character: complete if its length fits.
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= length else data[:-back]
    return data


def read_from(path: Optional[str], offset: Optional[int]) -> dict[str, Any]:
    """The text of ``path`` after ``offset`` (None: the file's tail) and the next offset.

    Returns ``{"text", "offset", "size", "exists", "reset"}``; ``reset`` means the text replaces what was shown
    (a first read, or a file that shrank).
    """
    if not path:
        return {"text": "", "offset": 0, "size": 0, "exists": False, "reset": offset is None}
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            reset = offset is None or offset > size
            start = 0 if offset is None or offset > size else offset
            skipped = False
            if offset is None and size > TAIL_BYTES:
                start, skipped = size - TAIL_BYTES, True
            handle.seek(start)
            data = handle.read(min(CHUNK_BYTES, max(0, size - start)))
    except FileNotFoundError:
        return {"text": "", "offset": 0, "size": 0, "exists": False, "reset": offset is None}
    except OSError as error:
        return {"text": "", "offset": offset or 0, "size": 0, "exists": False, "reset": False,
                "error": f"cannot read {path}: {error.strerror}"}
    if skipped:  # Start at a line.
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data, start = data[newline + 1:], start + newline + 1
    data = _whole_characters(data)
    text = data.decode("utf-8", errors="replace")
    if skipped:
        text = f"[... {start:,} earlier bytes not shown ...]\n" + text
    return {"text": text, "offset": start + len(data), "size": size, "exists": True, "reset": reset}
