"""An append-only journal of a run's completed psets, so a killed run loses none of them.

While ``run()`` works, every completed row is pickled and appended to
``<calc_dir>/.xm_journal/<run_id>.pk`` with one ``write()`` system call: once it
returns, the bytes are in the kernel's page cache, so even ``kill -9`` cannot lose them
(a memory map was tried and measured slower here: the first touch of a page costs
milliseconds). Each record is a 4-byte length then the pickle; a record cut short ends
the journal. A row with the same keys, in the same order, as the one before is stored as
a tuple of values. ``_time_utc`` (a ``pandas.Timestamp``) is stored as its nanoseconds,
which pickle five times faster, and read back as the Timestamp.
The journal is deleted once the database and the metadata store hold the run; the next
``run()`` on that calc dir merges leftover journals in first. A live run holds an
exclusive lock on its journal, so another process never takes it for a leftover.
"""

from __future__ import annotations

import datetime
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


_TIME = "_time_utc"


def _nanoseconds(value: Any) -> Any:
    """A ``pandas.Timestamp`` as its int nanoseconds (other values as they are)."""
    return value.value if isinstance(value, datetime.datetime) and hasattr(value, "value") else value


class Journal:
    """The journal file of one run."""

    def __init__(self, calc_dir: str, run_id: str) -> None:
        self.path = os.path.join(calc_dir, FOLDER, f"{run_id}.pk")
        self._fd = -1  # Opened with the first row: a run that completes nothing leaves no folder.
        self._keys: tuple[Any, ...] = ()
        self._time_at = -1  # Where _time_utc is in those keys.

    def _open(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def append(self, row: dict[str, Any]) -> None:
        if self._fd < 0:
            self._open()
        keys = tuple(row)
        if keys == self._keys:
            values = list(row.values())
            if self._time_at >= 0:
                values[self._time_at] = _nanoseconds(values[self._time_at])
            data = _dumps(tuple(values), _PROTOCOL)
        else:
            self._keys = keys
            self._time_at = keys.index(_TIME) if _TIME in row else -1
            if self._time_at >= 0:
                row = {**row, _TIME: _nanoseconds(row[_TIME])}
            data = _dumps(row, _PROTOCOL)
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
    if rows and any(type(row.get(_TIME)) is int for row in rows):
        import pandas as pd

        for row in rows:
            if type(row.get(_TIME)) is int:
                row[_TIME] = pd.Timestamp(row[_TIME])
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
