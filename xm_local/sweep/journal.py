"""An append-only journal of a run's completed psets, so a killed run loses none of them.

While ``run()`` works, every completed row is pickled and appended to
``<calc_dir>/.xm_journal/<run_id>.pk`` with one ``write()`` system call: once it
returns, the bytes are in the kernel's page cache, so even ``kill -9`` cannot lose them
(a memory map was tried and measured slower here: the first touch of a page costs
milliseconds). Each record is a 4-byte length then the pickle; a record cut short ends
the journal. A row with the same keys as the one before is stored as a tuple of values.
The journal is deleted once the database and the metadata store hold the run; the next
``run()`` on that calc dir merges leftover journals in first. A live run holds an
exclusive lock on its journal, so another process never takes it for a leftover.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import struct
from collections.abc import Iterator
from typing import Any

FOLDER = ".xm_journal"
_LENGTH = struct.Struct("<I")
_pack_length = _LENGTH.pack
_dumps = pickle.dumps
_PROTOCOL = pickle.HIGHEST_PROTOCOL


class Journal:
    """The journal file of one run."""

    def __init__(self, calc_dir: str, run_id: str) -> None:
        self.path = os.path.join(calc_dir, FOLDER, f"{run_id}.pk")
        self._fd = -1  # Opened with the first row: a run that completes nothing leaves no folder.
        self._keys: Any = None

    def _open(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def append(self, row: dict[str, Any]) -> None:
        if self._fd < 0:
            self._open()
        keys = row.keys()
        if keys == self._keys:
            data = _dumps(tuple(row.values()), _PROTOCOL)
        else:
            data, self._keys = _dumps(row, _PROTOCOL), keys
        os.write(self._fd, _pack_length(len(data)) + data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        try:
            os.rmdir(os.path.dirname(self.path))  # Only when no other run's journal is left.
        except OSError:
            pass


def read(path: str) -> list[dict[str, Any]]:
    """The complete rows of a journal; a record cut short by a kill ends it."""
    with open(path, "rb") as handle:
        data = handle.read()
    rows: list[dict[str, Any]] = []
    keys: list[Any] = []
    position = 0
    while position + _LENGTH.size <= len(data):
        (size,) = _LENGTH.unpack_from(data, position)
        start = position + _LENGTH.size
        if size == 0 or start + size > len(data):
            break
        try:
            record = pickle.loads(data[start : start + size])
        except Exception:  # noqa: BLE001 - a damaged record ends the journal.
            break
        if isinstance(record, dict):
            keys = list(record)
            rows.append(record)
        else:
            rows.append(dict(zip(keys, record)))
        position = start + size
    return rows


def leftovers(calc_dir: str) -> Iterator[str]:
    """Journals of earlier runs in ``calc_dir`` that did not finish, oldest first."""
    folder = os.path.join(calc_dir, FOLDER)
    try:
        names = [name for name in os.listdir(folder) if name.endswith(".pk")]
    except FileNotFoundError:
        return
    paths = [os.path.join(folder, name) for name in names]
    for path in sorted(paths, key=os.path.getmtime):
        if not _in_use(path):
            yield path


def _in_use(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # Finished and removed meanwhile.
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # Closing releases the lock.
    return False
