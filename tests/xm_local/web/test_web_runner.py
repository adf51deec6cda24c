"""xm_local/web: the uvicorn runner (bind first, URLs, stop), the access check and the two middlewares."""

from __future__ import annotations

import http.client
import logging
import socket
import threading

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from xmanager.xm_local.web.access import bearer_authorized, is_loopback, needs_token
from xmanager.xm_local.web.middleware import AccessLog, RawPathRouting
from xmanager.xm_local.web.runner import WebServer, bind_sockets, socket_urls

pytestmark = pytest.mark.integration


async def _number(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"number {request.path_params['n']}")


async def _echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"{len(body)} bytes")


def _app() -> Starlette:
    return Starlette(routes=[Route("/n/{n:int}", _number), Route("/echo", _echo, methods=["POST"])])


class _Running:
    """A WebServer in a thread of this process; its URLs once it listens."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, **kwargs) -> None:
        self.listening = threading.Event()
        self.urls: list[str] = []
        self.server = WebServer(app, host, port, on_listening=self._listening, **kwargs)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _listening(self, urls: list[str]) -> None:
        self.urls = urls
        self.listening.set()

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as error:  # Reported by the test.
            self.error = error
            self.listening.set()

    def __enter__(self) -> _Running:
        self.thread.start()
        assert self.listening.wait(10), "not listening after 10 s"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()

    @property
    def port(self) -> int:
        return int(self.urls[0].rsplit(":", 1)[1].rstrip("/"))

    def request(self, method: str, path: str, body: bytes | None = None, headers=None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


def test_port_0_reports_the_bound_port_and_serves_there():
    with _Running(_app()) as running:
        assert len(running.urls) == 1 and running.urls[0].startswith("http://127.0.0.1:")
        assert running.port != 0
        assert running.server.urls == running.urls
        assert running.request("GET", "/n/7") == (200, "number 7")


def test_stop_from_another_thread_closes_the_port():
    with _Running(_app()) as running:
        port = running.port
        running.request("GET", "/n/1")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_port_in_use_raises_at_the_caller_before_anything_is_served():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        called = []
        server = WebServer(_app(), "127.0.0.1", taken.getsockname()[1], on_listening=called.append)
        with pytest.raises(OSError):
            server.run()
        assert called == []


def test_chunked_request_bodies_are_read():
    with _Running(_app()) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n11 bytes")


def test_bind_sockets_one_port_for_every_address_and_tcp_sockets():
    sockets = bind_sockets("localhost", 0)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(ports) == 1 and ports != {0}
        # The protocol is TCP (not 0), so asyncio's transports set TCP_NODELAY on accepted connections.
        assert all(sock.proto == socket.IPPROTO_TCP for sock in sockets)
        urls = socket_urls(sockets)
        port = ports.pop()
        assert f"http://127.0.0.1:{port}/" in urls
        assert all(url in (f"http://127.0.0.1:{port}/", f"http://[::1]:{port}/") for url in urls)
    finally:
        for sock in sockets:
            sock.close()


def test_access_check():
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("") and not is_loopback("example")
    assert needs_token("0.0.0.0", None, False) and needs_token("0.0.0.0", "", False)
    assert not needs_token("0.0.0.0", "t", False) and not needs_token("0.0.0.0", None, True)
    assert not needs_token("127.0.0.1", None, False)

    def scope(value: bytes | None) -> dict:
        return {"headers": [] if value is None else [(b"authorization", value)]}

    assert bearer_authorized(scope(None), None)
    assert bearer_authorized(scope(b"Bearer s3cret"), "s3cret") and bearer_authorized(scope(b"bearer s3cret "), "s3cret")
    assert not bearer_authorized(scope(None), "s3cret")
    assert not bearer_authorized(scope(b"Basic s3cret"), "s3cret")
    assert not bearer_authorized(scope(b"Bearer s3cre"), "s3cret")


def test_raw_path_routing_keeps_percent_escapes(caplog):
    logger = logging.getLogger("test_web_runner.access")
    app = RawPathRouting(AccessLog(_app(), logger))
    with caplog.at_level(logging.INFO, logger=logger.name), _Running(app) as running:
        assert running.request("GET", "/n/12") == (200, "number 12")
        assert running.request("GET", "/n/%31")[0] == 404  # Decoded it would be /n/1.
        assert running.request("GET", "/n/3?x=%31")[0] == 200
    lines = [(r.levelname, r.getMessage().rsplit(" ", 1)[0]) for r in caplog.records if r.name == logger.name]
    assert lines == [
        ("INFO", "200 GET /n/12 (127.0.0.1)"),
        ("WARNING", "404 GET /n/%31 (127.0.0.1)"),
        ("INFO", "200 GET /n/3?x=%31 (127.0.0.1)"),
    ]
