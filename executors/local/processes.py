"""Finding and signalling local job processes by handle, from this or another process.

A handle records the pid and the kernel's start time of the process group leader, so a
recycled pid is never signalled by mistake.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Optional


def start_ticks(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux), or None if unknown/gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are space-separated.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19])


def is_alive(pid: int, ticks: Optional[int]) -> bool:
    """True when ``pid`` runs and is the same process the handle recorded."""
    if ticks is not None and os.path.exists("/proc"):
        current = start_ticks(pid)
        return current is not None and current == ticks and not _is_zombie(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


def signal_group(pid: int, signum: int) -> None:
    """Signals the job's process group (jobs run in their own session)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def terminate(pid: int, ticks: Optional[int], grace: float = 5.0) -> None:
    """SIGTERM to the group, then SIGKILL if the leader is still alive after ``grace`` s."""
    if not is_alive(pid, ticks):
        return
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    delay = 0.005
    while time.monotonic() < deadline:
        if not is_alive(pid, ticks):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    signal_group(pid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
