"""The process table read from /proc in one pass: every process's children, for executors that stop whole trees.

Shared by the local executor (stopping a job's descendants, matched by start time) and the Slurm task
runner (stopping and reaping everything below it on the node).
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional


class Child(NamedTuple):
    pid: int
    #: Start time in clock ticks since boot (``/proc/<pid>/stat`` field 22): with the pid, names a process.
    ticks: int
    #: The state letter (``b"Z"``: a zombie).
    state: bytes


def read_stat(pid: int) -> Optional[bytes]:
    """``/proc/<pid>/stat``, or None when the process is gone (or there is no /proc)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)  # One read: the kernel renders the file whole (well under 4 KiB).
    except OSError:
        return None
    finally:
        os.close(fd)


def children() -> dict[int, list[Child]]:
    """Parent pid -> its children, for every process in /proc."""
    table: dict[int, list[Child]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        stat = read_stat(int(name))
        if stat is None:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        table.setdefault(int(fields[1]), []).append(Child(int(name), int(fields[19]), fields[0]))
    return table
