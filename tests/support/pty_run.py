"""Runs a command on a pseudo-terminal, as a user at a terminal would, for tests of terminal behaviour."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping
from typing import Optional


def _readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` has something to read within ``timeout`` s: poll, since select.select refuses fds >= 1024
    (a whole test session may have that many open)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def run_on_pty(
    argv: list[str],
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 120.0,
    answer: Optional[bytes] = None,
    prompt: bytes = b"[y/N]",
) -> tuple[int, str]:
    """Runs ``argv`` with stdin, stdout and stderr on a pseudo-terminal; types ``answer`` once ``prompt`` shows.

    Returns (exit status, everything it wrote).
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    output, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if _readable(master, 0.2):
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed.
                    break
                if not data:
                    break
                output += data
                if answer is not None and not answered and prompt in output:
                    os.write(master, answer)
                    answered = True
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    return code, output.decode("utf-8", "replace")
