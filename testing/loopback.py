"""Ports on 127.0.0.1 for the private servers we start: dev clusters, engines, registries, test servers.

Test infrastructure (see :mod:`xmanager.testing`), not for production.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Optional


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float, alive: Optional[Callable[[], bool]] = None) -> bool:
    """Waits until something accepts connections on 127.0.0.1:``port``.

    False once ``timeout`` seconds have passed, or as soon as ``alive()`` says the server's process has
    gone; the caller raises its own error, which knows where the server's log is.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.02)
    return False
