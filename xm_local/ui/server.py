"""Serving the dashboard: who may reach it, the app, and the uvicorn server.

On a loopback address (the default, ``127.0.0.1``) the dashboard is reachable only from this machine. Any
other address needs an access token: anyone who can reach the server can read it, and with the token, cancel
(``POST`` requests carry ``Authorization: Bearer <token>``). A given token is always required for cancelling.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable
from typing import Optional

if importlib.util.find_spec("plotly") is None:  # pragma: no cover - only without the extra
    raise ImportError(
        "plotly is not installed: the dashboard draws its charts with it (pip install 'xmanager-launcher[ui]')",
        name="plotly",
    )

from starlette.applications import Starlette
from starlette.types import ASGIApp
from xmanager.xm_local.store import Store
from xmanager.xm_local.ui.routes import Dashboard, routes
from xmanager.xm_local.web.access import needs_token
from xmanager.xm_local.web.middleware import AccessLog
from xmanager.xm_local.web.runner import WebServer

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "UiError", "build_app", "check_access", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050

access_log = logging.getLogger(f"{__name__}.access")
access_log.addHandler(logging.NullHandler())


class UiError(ValueError):
    """The dashboard cannot start with these options."""


def check_access(host: str, token: Optional[str]) -> None:
    """Refuse to serve beyond this machine without a token, and an empty token.

    Raises:
      UiError: ``host`` is not a loopback address and no token is given, or the token is empty.
    """
    if token is not None and not token:
        raise UiError("the access token must not be empty")
    if needs_token(host, token, insecure=False):
        raise UiError(
            f"refusing to serve the dashboard on {host!r} without an access token: anyone who can reach it could read "
            "every experiment and cancel units; pass --token TOKEN (cancelling then sends `Authorization: Bearer "
            "TOKEN`), or serve on 127.0.0.1"
        )


def build_app(store: Store, *, token: Optional[str] = None) -> ASGIApp:
    """The dashboard's ASGI app on ``store``; with ``token``, cancelling needs ``Authorization: Bearer <token>``."""
    dashboard = Dashboard(store, token)
    app = Starlette(routes=routes())
    app.state.dashboard = dashboard
    return AccessLog(app, access_log)


def serve(
    database_url: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: Optional[str] = None,
    on_listening: Optional[Callable[[list[str]], None]] = None,
) -> None:
    """Serve the dashboard on the store at ``database_url`` until SIGTERM or SIGINT.

    ``port=0`` picks a free port; ``on_listening`` gets the URLs once the server accepts connections.

    Raises:
      UiError: a non-loopback ``host`` without a token, or an empty token.
      StoreError: the store cannot be opened.
      OSError: the address cannot be bound.
    """
    check_access(host, token)
    store = Store(database_url)
    app = build_app(store, token=token)
    threading.Thread(target=_warm_up, name="xm-ui-warm-up", daemon=True).start()
    try:
        WebServer(app, host, port, on_listening=on_listening).run()
    finally:
        dashboard_of(app).close()
        store.close()


def dashboard_of(app: ASGIApp) -> Dashboard:
    """The :class:`~.routes.Dashboard` behind an app :func:`build_app` made."""
    inner = app.app if isinstance(app, AccessLog) else app
    dashboard: Dashboard = inner.state.dashboard  # type: ignore[attr-defined]
    return dashboard


def _warm_up() -> None:
    """Imports plotly and builds a figure while the server starts, so the first chart asked for is not slow."""
    from xmanager.xm_local.ui import charts

    charts.warm_up()
