"""Finding and signalling local job processes by handle, from this or another process.

A handle records the pid and the kernel's start time of the process group leader, so a
recycled pid is never signalled by mistake.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Optional

_BOOTTIME: Optional[int] = getattr(time, "CLOCK_BOOTTIME", None)  # Linux.
_CLK_TCK = os.sysconf("SC_CLK_TCK") if _BOOTTIME is not None else 0
#: Whether a start time read off the clock has matched /proc (None: not checked yet in this process).
_clock_matches_proc: Optional[bool] = None if _BOOTTIME is not None and 10**9 % _CLK_TCK == 0 else False


def start_ticks(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux), or None if unknown/gone."""
    stat = _read_stat(pid)
    if stat is None:
        return None
    # The command name (field 2) may hold spaces; fields after it are space-separated.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19])


def boot_clock_ns() -> int:
    """CLOCK_BOOTTIME in ns (0 where there is none), the clock of a process's start time."""
    return time.clock_gettime_ns(_BOOTTIME) if _BOOTTIME is not None else 0


def new_start_ticks(pid: int, before_ns: int) -> Optional[int]:
    """``start_ticks(pid)`` of a child forked after ``before_ns`` (a ``boot_clock_ns()`` reading).

    The kernel's start time is the boot clock at the fork in clock ticks, rounded down: when no tick
    has begun since ``before_ns``, it is the tick of ``before_ns``, and /proc is not read (a new
    process's entry there is slow to look up: tens of microseconds, longer while it starts). The
    first start time so taken in a process is checked against /proc.
    """
    global _clock_matches_proc
    if _clock_matches_proc is not False:
        tick_ns = 10**9 // _CLK_TCK
        ticks = before_ns // tick_ns
        if boot_clock_ns() // tick_ns == ticks:
            if _clock_matches_proc:
                return ticks
            _clock_matches_proc = start_ticks(pid) == ticks
            if _clock_matches_proc:
                return ticks
    return start_ticks(pid)


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
    stat = _read_stat(pid)
    if stat is None:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


def _read_stat(pid: int) -> Optional[bytes]:
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
