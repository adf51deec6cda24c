"""Finds the processes a test started, by a marker string in their command line (or environment), via /proc.

Tests of cancel and kill put a unique marker in what they start, then check that nothing carrying it
is left running: every living process (zombies are not running) other than the test's own.
"""

from __future__ import annotations

import os
import time


def _is_zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # Gone.


def marked(marker: str, *, environ: bool = True) -> list[int]:
    """PIDs of living processes whose command line (or, with ``environ``, environment) holds ``marker``."""
    needle = marker.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                hit = needle in handle.read()
            if not hit and environ:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    hit = needle in handle.read()
        except OSError:
            continue
        if hit and not _is_zombie(name):
            found.append(int(name))
    return found


def wait_none_marked(marker: str, timeout: float = 20.0, *, environ: bool = True) -> list[int]:
    """Waits until no process carries ``marker``; returns those still left after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not marked(marker, environ=environ):
            return []
        time.sleep(0.05)
    return marked(marker, environ=environ)
