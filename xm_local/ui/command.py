"""``xmanager ui``: serve the dashboard, print where, report failures as the command line's one-line errors."""

from __future__ import annotations

import os
from typing import Optional

from xmanager.xm_local.cli_errors import UsageError

__all__ = ["TOKEN_ENV", "run"]

#: The access token when ``--token`` is not given (a command line is visible to every user of the machine).
TOKEN_ENV = "XM_UI_TOKEN"


def _print_urls(urls: list[str]) -> None:
    for url in urls:
        print(f"dashboard on {url}", flush=True)


def run(host: str, port: int, token: Optional[str], database_url: str) -> int:
    """Serves until SIGTERM or SIGINT (exit status 0); prints ``dashboard on <url>`` per address served, with
    the real port when ``port`` is 0.

    Raises:
      UsageError: a bad port, a missing ``ui`` extra, a non-loopback host without a token, an address that
        cannot be served.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"ui: --port must be from 0 to 65535, got {port}")
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    try:
        from xmanager.xm_local.ui import server
    except ImportError as error:
        raise UsageError(f"ui: {error}") from None
    try:
        server.serve(database_url, host, port, token=token, on_listening=_print_urls)
    except server.UiError as error:
        raise UsageError(f"ui: {error}") from None
    except OSError as error:
        raise UsageError(f"ui: cannot serve on {host}:{port}: {error.strerror or error}") from None
    return 0
