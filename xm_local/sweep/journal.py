"""An append-only journal of a run's completed psets, so a killed run loses none of them.

While ``run()`` works, every completed row is pickled and appended to
``<calc_dir>/.xm_journal/<run_id>.pk`` with one ``write()`` (no buffering in the
process, so a kill -9 cannot lose it). The journal is deleted once the database and
the metadata store hold the run. The next ``run()`` on that calc dir finds leftover
journals and merges their rows in first; a record cut short by the kill is dropped.
A live run holds an exclusive lock on its journal, so another process never takes it
for a leftover.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Iterator
from typing import Any

FOLDER = ".xm_journal"


class Journal:
    """The journal file of one run."""

    def __init__(self, calc_dir: str, run_id: str) -> None:
        self.path = os.path.join(calc_dir, FOLDER, f"{run_id}.pk")
        self._fd = -1  # Opened with the first row: a run that completes nothing leaves no folder.
        self._dumps = pickle.dumps

    def _open(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def append(self, row: dict[str, Any]) -> None:
        if self._fd < 0:
            self._open()
        os.write(self._fd, self._dumps(row, pickle.HIGHEST_PROTOCOL))

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
    """The complete rows of a journal; a trailing record cut short by a kill is ignored."""
    rows: list[dict[str, Any]] = []
    with open(path, "rb") as handle:
        while True:
            try:
                rows.append(pickle.load(handle))
            except EOFError:
                break
            except (pickle.UnpicklingError, ValueError, AttributeError, IndexError):
                break  # The last record was being written when the process died.
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
