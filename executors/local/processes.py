"""Finding and signalling local job processes by handle, from this or another process.

A handle records the pid and the kernel's start time of the job's process, so a recycled pid is
never signalled by mistake. Stopping a job stops its whole process tree: its process group, and
every descendant found through ``/proc`` (children of the job's pid, recursively), including
children that called ``setsid`` and left the group. Each descendant is kept as (pid, start time)
and signalled only while that pid still has that start time.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Optional

from xmanager.executors import proctable

#: Seconds a stopped job has between SIGTERM and SIGKILL.
GRACE_S = 3.0
#: Why a job whose launcher is gone ended failed: it never started, or its process is gone without
#: an exit record.
LAUNCHER_DIED = "launcher died"

_BOOTTIME: Optional[int] = getattr(time, "CLOCK_BOOTTIME", None)  # Linux.
_CLK_TCK = os.sysconf("SC_CLK_TCK") if _BOOTTIME is not None else 0
#: Whether a start time read off the clock has matched /proc (None: not checked yet in this process).
_clock_matches_proc: Optional[bool] = None if _BOOTTIME is not None and 10**9 % _CLK_TCK == 0 else False


def start_ticks(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux), or None if unknown/gone."""
    stat = proctable.read_stat(pid)
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
    stat = proctable.read_stat(pid)
    if stat is None:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


def signal_group(pid: int, signum: int) -> None:
    """Signals the job's process group (jobs run in their own session)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def descendants(pid: int, ticks: Optional[int]) -> list[tuple[int, int]]:
    """The live descendants of ``pid`` (children, recursively) as (pid, start ticks), whatever their
    session or group; empty when ``pid`` is not the process the handle recorded."""
    if ticks is not None and start_ticks(pid) != ticks:
        return []
    return _walk([pid], proctable.children())


def _walk(roots: list[int], children: dict[int, list[proctable.Child]]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append((child.pid, child.ticks))
            stack.append(child.pid)
    return found


def _signal_tree(members: dict[int, Optional[int]], signum: int) -> None:
    """Signals every member still alive as recorded (and the group each one leads)."""
    for pid, ticks in members.items():
        if not is_alive(pid, ticks):
            continue
        signal_group(pid, signum)
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def terminate(pid: int, ticks: Optional[int], grace: float = GRACE_S) -> None:
    """Stops the job's process tree: SIGTERM to its group and every descendant (those that left
    the group included), then SIGKILL to whatever is still alive after ``grace`` seconds.

    Descendants are collected before the first signal and again while waiting (children forked
    meanwhile), so those reparented when their parent dies are still known by pid and start time."""
    members: dict[int, Optional[int]] = {pid: ticks}
    members.update(descendants(pid, ticks))  # Also when the job's process is a zombie not yet reaped.
    current = start_ticks(pid)
    # The group outlives its leader, and its id is not reused while it exists: signal it unless the
    # pid now belongs to another process.
    own_group = current is None or ticks is None or current == ticks
    if not any(is_alive(member, member_ticks) for member, member_ticks in members.items()):
        return
    if own_group:
        signal_group(pid, signal.SIGTERM)
    _signal_tree(members, signal.SIGTERM)
    deadline = time.monotonic() + grace
    delay = 0.005
    while time.monotonic() < deadline:
        alive = [member for member, member_ticks in members.items() if is_alive(member, member_ticks)]
        if not alive:
            return
        new = [child for child in _walk(alive, proctable.children()) if child[0] not in members]
        if new:
            members.update(new)
            _signal_tree(dict(new), signal.SIGTERM)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    if own_group:
        signal_group(pid, signal.SIGKILL)
    _signal_tree(members, signal.SIGKILL)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
