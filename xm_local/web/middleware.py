"""Two thin ASGI layers: routing on the path as sent, and an access-log line per request."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "RawPathRouting"]


class RawPathRouting:
    """Routes on the request's path as sent, percent escapes kept (``/a/%31`` is not ``/a/1``).

    uvicorn hands over the decoded path; a server that must answer as one that matched routes on the raw path
    (Tornado does) puts the raw path back before the router sees it. Only paths with a ``%`` change.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if raw is not None and b"%" in raw:
            scope = dict(scope, path=raw.decode("latin-1"))
        await self.app(scope, receive, send)


class AccessLog:
    """One line per answered request: ``<status> <METHOD> <target> (<client ip>) <ms>ms``.

    Logged at INFO below 400, WARNING below 500, else ERROR (Tornado's access-log line and levels).
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self._log(scope, status, started)

    def _log(self, scope: Scope, status: int, started: float) -> None:
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        if not self.logger.isEnabledFor(level):
            return
        target = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        client = scope.get("client")
        address = client[0] if client else ""
        elapsed = 1000.0 * (time.perf_counter() - started)
        self.logger.log(level, "%d %s %s (%s) %.2fms", status, scope["method"], target, address, elapsed)
