"""One uvicorn server in this process, bound before it serves, stopped cleanly.

:class:`WebServer` binds its sockets itself (so a bad address or a port in use raises ``OSError`` at the
caller, and with port 0 the real port is known), hands them to uvicorn (httptools and uvloop when installed),
reports the URLs it listens on, and stops on SIGTERM/SIGINT (exit status 0: a stop asked for is not a crash)
or on :meth:`WebServer.stop`, which a request handler may call: the listening sockets close at once, so once a
client has the answer to "stop", connecting fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator, Sequence

import uvicorn
from starlette.types import ASGIApp

__all__ = ["WebServer", "bind_sockets", "socket_urls"]

_UVICORN_LOGGER = "uvicorn.error"  # uvicorn's start/stop chatter and its protocol warnings.


def bind_sockets(host: str | None, port: int, backlog: int = 2048) -> list[socket.socket]:
    """Listening sockets for every address of ``host`` (all interfaces if empty or None), on one port.

    With ``port`` 0 the system picks a free port for the first address and the others share it.

    Raises:
      OSError: ``host`` does not resolve, or an address cannot be bound.
    """
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, proto, address) for family, _, proto, _, address in infos))
    for attempt in range(10):
        sockets: list[socket.socket] = []
        try:
            for family, proto, address in addresses:
                if port == 0 and sockets:
                    address = (address[0], sockets[0].getsockname()[1], *address[2:])
                # The protocol as resolved (TCP), not 0: asyncio sets TCP_NODELAY only on sockets that say TCP,
                # and without it a response written in two parts waits for the client's delayed ACK (40 ms).
                sock = socket.socket(family, socket.SOCK_STREAM, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
            return sockets
        except OSError as error:
            for sock in sockets:
                sock.close()
            # A port picked for the first address may be taken on another: pick again.
            if port != 0 or len(addresses) < 2 or error.errno != errno.EADDRINUSE or attempt == 9:
                raise
    raise AssertionError("unreachable")


def socket_urls(sockets: Sequence[socket.socket], scheme: str = "http") -> list[str]:
    """``http://<address>:<port>/`` of each listening socket (IPv6 addresses in brackets)."""
    urls = []
    for sock in sockets:
        address, port = sock.getsockname()[:2]
        host = f"[{address}]" if ":" in address else address
        urls.append(f"{scheme}://{host}:{port}/")
    return urls


class _Quiet(logging.Filter):
    """Drops uvicorn's INFO lines ("Started server process", "Shutting down", ...); keeps its warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """SIGTERM and SIGINT stop the server (a second SIGINT stops it at once); unlike uvicorn, the signal is
        not raised again afterwards, so the process ends normally."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: object) -> None:
            del frame
            if self.should_exit and signum == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        saved = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)


class WebServer:
    """Serves ``app`` on ``host``:``port`` with uvicorn until :meth:`stop`, SIGTERM or SIGINT.

    ``idle_timeout``: seconds a keep-alive connection may sit idle before it is closed. ``on_listening`` is
    called with the URLs listened on once the server accepts connections. ``quiet`` keeps uvicorn's INFO lines
    out of the logs (its warnings still go through).
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        idle_timeout: float = 120.0,
        on_listening: Callable[[list[str]], None] | None = None,
        graceful_timeout: float = 2.0,
        quiet: bool = True,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.on_listening = on_listening
        self.graceful_timeout = graceful_timeout
        self.quiet = quiet
        self.urls: list[str] = []
        self._server: _Server | None = None
        self._stop_asked = False

    def run(self) -> None:
        """Bind, serve, return once stopped.

        Raises:
          OSError: the address cannot be bound (nothing was served).
        """
        sockets = bind_sockets(self.host, self.port)
        self.urls = socket_urls(sockets)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            interface="asgi3",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=self.idle_timeout,  # type: ignore[arg-type]  # A float works: it is a call_later delay.
            timeout_graceful_shutdown=int(max(1, round(self.graceful_timeout))),
        )
        server = _Server(config, self._started)
        self._server = server
        quiet = _Quiet()
        uvicorn_log = logging.getLogger(_UVICORN_LOGGER)
        if self.quiet:
            uvicorn_log.addFilter(quiet)
        try:
            if self._stop_asked:
                return
            server.run(sockets=sockets)
        finally:
            uvicorn_log.removeFilter(quiet)
            for sock in sockets:
                sock.close()

    def _started(self) -> None:
        if self.on_listening is not None:
            self.on_listening(list(self.urls))

    def stop(self) -> None:
        """Stop accepting connections now and end the server (from a request handler or another thread)."""
        self._stop_asked = True
        server = self._server
        if server is None:
            return
        loop = server.loop
        if loop is None:
            server.should_exit = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._stop_now(server)
        else:
            with contextlib.suppress(RuntimeError):  # The loop has already closed: nothing left to stop.
                loop.call_soon_threadsafe(self._stop_now, server)

    @staticmethod
    def _stop_now(server: _Server) -> None:
        for listener in getattr(server, "servers", ()):
            listener.close()
        server.should_exit = True
