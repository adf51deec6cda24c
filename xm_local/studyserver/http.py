"""The study server: experiment-server 0.3.9's REST API on a small asyncio HTTP/1.1 server.

Only the standard library is used: asyncio streams and a minimal request parser (request line,
headers, ``Content-Length`` bodies; persistent connections and pipelining; no chunked request
bodies). The ``/api/...`` endpoints give the same status codes, bodies and content types as
experiment-server 0.3.9 (Tornado), so existing Unity, JS and Python clients work unchanged.

Differences from 0.3.9:

* Participants and their block ids are persisted (see :mod:`.state`); a restart loses nothing.
* The config file is reloaded when its modification time or size changes (checked at most once
  per second, when a request arrives). A broken file is logged and the previous config is kept.
* The server binds 127.0.0.1 by default. Binding any other address needs an access token unless
  ``insecure=True``; when a token is set, every POST and PUT must carry
  ``Authorization: Bearer <token>`` (401 otherwise).
* Participant ids and block ids with more than 15 digits are treated as unknown / out of range
  instead of failing with a server error.
* Two endpoints 0.3.9 lacks, for the web UI: ``GET /api/participants`` (JSON list of every participant's
  ``participant_index``, ``block_id``, ``block_name``, ``active``, ``blocks_count``, by id) and
  ``POST /api/reset-participant[/<pid>]`` (rebuild the blocks from the current config and go back before
  the first block; answers that participant's row as JSON).
* Outside ``/api/``: the web UI at ``/`` and the OpenAPI description at ``/openapi.json``
  (:mod:`.pages`); anything else is 404.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import multiprocessing
import os
import signal
import time
from typing import Any

import attrs
from xmanager.xm.study.config import StudyConfigError
from xmanager.xm_local.studyserver.state import Participant, StudyState, UnknownParticipantError

__all__ = ["StudyServer", "StudyServerError", "is_loopback", "serve", "server_process"]

log = logging.getLogger(__name__)

HTML = "text/html; charset=UTF-8"
JSON = "application/json; charset=UTF-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
_MAX_HEAD = 16 * 1024
_MAX_BODY = 1024 * 1024
_HUGE = 10**16  # Stands for any number with more than 15 digits.
_MAX_PARTICIPANT = 2**53
_RELOAD_INTERVAL = 1.0
_GET_ACTIONS = frozenset(
    {"blocks-count", "block-id", "active", "config", "summary-data", "all-configs", "status-string", "participants"}
)


class StudyServerError(RuntimeError):
    """The server cannot start with the given options."""


@attrs.frozen
class Response:
    status: int
    body: str
    content_type: str = HTML
    headers: tuple[tuple[str, str], ...] = ()


def _tornado_page(status: int) -> Response:
    reason = _REASONS.get(status, "Error")
    return Response(status, f"<html><title>{status}: {reason}</title><body>{status}: {reason}</body></html>")


def _number(text: str) -> int:
    return int(text) if len(text) <= 15 else _HUGE


def _participant_row(participant: Participant) -> dict[str, Any]:
    return {
        "participant_index": participant.participant_id,
        "block_id": participant.block_id,
        "block_name": participant.block_name,
        "active": participant.active,
        "blocks_count": participant.blocks_count,
    }


def is_loopback(host: str) -> bool:
    """True if ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StudyServer:
    """The request handling of the study server (no sockets): :meth:`handle` maps a request to a response."""

    def __init__(self, state: StudyState, token: str | None = None) -> None:
        self.state = state
        self.token = token
        self.shutdown_requested = False
        self._last_check = time.monotonic()
        self._signature = self._config_signature()

    # -- config reload -----------------------------------------------------------------------------

    def _config_signature(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.state.config_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def maybe_reload(self, now: float | None = None) -> None:
        """Reload the config if the file changed; checks the file at most once per second."""
        now = time.monotonic() if now is None else now
        if now - self._last_check < _RELOAD_INTERVAL:
            return
        self._last_check = now
        signature = self._config_signature()
        if signature is None or signature == self._signature:
            return
        self._signature = signature
        try:
            self.state.reload()
        except StudyConfigError as exc:
            log.error("config not reloaded, keeping the previous one: %s", exc)
        else:
            log.info("config reloaded from %s", self.state.config_path)

    # -- dispatch ----------------------------------------------------------------------------------

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.token is None:
            return True
        value = headers.get("authorization", "")
        scheme, _, credentials = value.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self.token.encode())

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Response:
        path = target.split("?", 1)[0].split("#", 1)[0]
        if not path.startswith("/api/"):
            from xmanager.xm_local.studyserver.pages import page_for

            page = page_for(path)
            if page is None or method not in ("GET", "HEAD"):
                return _tornado_page(404)
            return page(self)
        parts = path[5:].split("/")
        if not parts[0] or len(parts) > 3 or not all(p.isascii() and p.isdigit() for p in parts[1:]):
            return _tornado_page(404)
        if method in ("POST", "PUT"):
            if not self._authorized(headers):
                return Response(401, "unauthorized", headers=(("WWW-Authenticate", "Bearer"),))
        elif method != "GET":
            return _tornado_page(405)
        self.maybe_reload()
        action, params = parts[0], [_number(p) for p in parts[1:]]
        try:
            if method == "GET":
                return self._get(action, params)
            if method == "POST":
                return self._post(action, params)
            return self._put(action, params)
        except UnknownParticipantError as exc:
            return Response(
                406, f"Participant with ID {exc.participant_id} not known. Consider initializing new participant."
            )

    def _get(self, action: str, params: list[int]) -> Response:
        if action not in _GET_ACTIONS:
            return Response(404, "N/A")
        state = self.state
        if action == "participants":
            if params:
                return Response(404, "N/A")
            rows = [_participant_row(state.participants[p]) for p in sorted(state.participants)]
            return Response(200, json.dumps(rows), JSON)
        pid = params[0] if params else None
        participant = state.participant(pid)
        if action == "config":
            text = participant.config_json()
            if text is None:
                return Response(
                    406,
                    f"participant {pid} not active. A call to `/move-to-next` must be made before calling `/config`",
                )
            return Response(200, text)
        if action == "blocks-count":
            return Response(200, str(participant.blocks_count))
        if action == "block-id":
            return Response(200, str(participant.block_id))
        if action == "active":
            return Response(200, json.dumps(participant.active))
        if action == "summary-data":
            data = {"participant_index": participant.participant_id, "configs_length": participant.blocks_count}
            return Response(200, json.dumps(data), JSON)
        if action == "all-configs":
            return Response(200, json.dumps(state.get_all_configs(pid), indent=4))
        return Response(200, participant.status_string())

    def _post(self, action: str, params: list[int]) -> Response:
        state = self.state
        if action == "move-to-next":
            name = state.move_to_next(params[0] if params else None)
            return Response(200, json.dumps({"name": name}), JSON)
        if action == "move-to-block":
            if not params:
                return Response(404, "Need atleast one paramter.")
            pid, bid = (None, params[0]) if len(params) == 1 else (params[0], params[1])
            count = state.participant(pid).blocks_count
            if not 0 <= bid < count:
                return Response(404, f"param should be >= 0 and < {count}")
            state.move_to_block(bid, pid)
            return Response(200, str(bid))
        if action == "move-all-to-block":
            if not params:
                return Response(404, "Need atleast one paramter.")
            bid = params[0]
            count = state.participant(None).blocks_count
            if not 0 <= bid < count:
                return Response(404, f"param should be >= 0 and < {count}")
            state.move_all_to_block(bid)
            return Response(200, str(bid))
        if action == "reset-participant":
            pid = params[0] if params else None
            try:
                state.reset_participant(pid)
            except StudyConfigError as exc:
                return Response(406, str(exc))
            return Response(200, json.dumps(_participant_row(state.participant(pid))), JSON)
        if action == "shutdown":
            self.shutdown_requested = True
            return Response(200, json.dumps({"message": "shutting down"}), JSON)
        return Response(404, "n/a")

    def _put(self, action: str, params: list[int]) -> Response:
        state = self.state
        if action == "new-participant":
            if params:
                return Response(406, "`new-participant` doesn't take params")
            try:
                return Response(200, str(state.new_participant()))
            except StudyConfigError as exc:
                return Response(406, str(exc))
        if action == "add-participant":
            if not params:
                return Response(406, "`add-participant` needs a participant id")
            pid = params[0]
            if pid >= _MAX_PARTICIPANT:
                return Response(406, f"participant id must be < {_MAX_PARTICIPANT}")
            try:
                added = state.add_participant(pid)
            except StudyConfigError as exc:
                return Response(406, str(exc))
            return Response(200, "true") if added else Response(406, "false")
        return Response(404, "n/a")


# -- HTTP/1.1 over asyncio streams -------------------------------------------------------------------


def _encode(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    body = response.body.encode("utf-8")
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(body)}",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


class _Connections:
    """The open connections; a sweeper closes those idle for longer than ``idle_timeout`` seconds."""

    def __init__(self, app: StudyServer, idle_timeout: float) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.last_seen: dict[asyncio.StreamWriter, float] = {}
        self.stop = asyncio.Event()

    @property
    def writers(self) -> list[asyncio.StreamWriter]:
        return list(self.last_seen)

    async def sweep(self) -> None:
        loop = asyncio.get_running_loop()
        interval = max(0.05, min(5.0, self.idle_timeout / 2))
        while True:
            await asyncio.sleep(interval)
            deadline = loop.time() - self.idle_timeout
            for writer, seen in list(self.last_seen.items()):
                if seen < deadline:
                    writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self.last_seen[writer] = loop.time()
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # Keep the server up whatever one connection does.
            log.exception("connection failed")
        finally:
            self.last_seen.pop(writer, None)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        app = self.app
        last_seen = self.last_seen
        loop = asyncio.get_running_loop()
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError:
                writer.write(_encode(_tornado_page(431), False))
                await writer.drain()
                return
            lines = head[:-4].lstrip(b"\r\n").split(b"\r\n")
            request_line = lines[0].decode("latin-1").split(" ")
            if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
                writer.write(_encode(_tornado_page(400), False))
                await writer.drain()
                return
            method, target, version = request_line
            headers: dict[str, str] = {}
            bad = False
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep or not name.strip():
                    bad = True
                    break
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            if bad:
                writer.write(_encode(_tornado_page(400), False))
                await writer.drain()
                return
            if "transfer-encoding" in headers:
                writer.write(_encode(_tornado_page(411), False))
                await writer.drain()
                return
            length_text = headers.get("content-length", "0")
            valid = length_text.isascii() and length_text.isdigit()
            if not valid or int(length_text) > _MAX_BODY:
                writer.write(_encode(_tornado_page(413 if valid else 400), False))
                await writer.drain()
                return
            length = int(length_text)
            if length and headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length) if length else b""
            connection = headers.get("connection", "").lower()
            if version == "HTTP/1.0":
                keep_alive = "keep-alive" in connection
            else:
                keep_alive = "close" not in connection
            try:
                response = app.handle(method, target, headers, body)
            except Exception:
                log.exception("%s %s failed", method, target)
                response = _tornado_page(500)
            if app.shutdown_requested:
                keep_alive = False
            writer.write(_encode(response, keep_alive, head_only=method == "HEAD"))
            last_seen[writer] = loop.time()
            if app.shutdown_requested:
                await writer.drain()
                self.stop.set()
                return
            if not keep_alive:
                await writer.drain()
                return
            transport = writer.transport
            if transport.get_write_buffer_size() > 65536:
                await writer.drain()


async def _run(app: StudyServer, host: str, port: int, idle_timeout: float) -> None:
    connections = _Connections(app, idle_timeout)
    sweeper = asyncio.create_task(connections.sweep())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:  # A clean stop on SIGTERM/SIGINT (only possible in the main thread).
            loop.add_signal_handler(signum, connections.stop.set)
        except (ValueError, RuntimeError, NotImplementedError):
            pass
    server = await asyncio.start_server(connections.handle, host, port, limit=_MAX_HEAD, reuse_address=True)
    bound = ", ".join(str(sock.getsockname()[:2]) for sock in server.sockets)
    log.info("study server for %s listening on %s", app.state.config_path, bound)
    async with server:
        await connections.stop.wait()
        server.close()
        sweeper.cancel()
        for writer in connections.writers:
            writer.close()
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=2.0)
        except TimeoutError:
            pass


def serve(
    config_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 5000,
    default_participant: int = 1,
    token: str | None = None,
    insecure: bool = False,
    idle_timeout: float = 120.0,
) -> None:
    """Run the study server until ``POST /api/shutdown``, SIGTERM or SIGINT.

    ``port=0`` picks a free port (logged). Keep-alive connections idle for ``idle_timeout`` seconds are closed.

    Raises:
      StudyServerError: ``host`` is not a loopback address and neither ``token`` nor ``insecure`` is given.
      StudyConfigError: the config file is invalid.
    """
    if not is_loopback(host) and not token and not insecure:
        raise StudyServerError(
            f"refusing to bind {host!r} without an access token: pass a token (clients then send "
            "`Authorization: Bearer <token>` on every POST and PUT) or insecure=True"
        )
    if token is not None and not token:
        raise StudyServerError("the access token must not be empty")
    state = StudyState(config_path, default_participant)
    try:
        asyncio.run(_run(StudyServer(state, token), host, port, idle_timeout))
    finally:
        state.close()


def _serve_logged(*args: Any, **kwargs: Any) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(*args, **kwargs)


def server_process(
    config_path: str | os.PathLike[str],
    default_participant_index: int = 1,
    host: str = "127.0.0.1",
    port: int = 5000,
    token: str | None = None,
    insecure: bool = False,
) -> multiprocessing.Process:
    """An unstarted process running :func:`serve` (call ``.start()``; ``POST /api/shutdown`` ends it)."""
    if default_participant_index is None:  # 0.3.9 crashed in the child here; use its documented default.
        default_participant_index = 1
    return multiprocessing.Process(
        target=_serve_logged,
        args=(os.fspath(config_path),),
        kwargs={
            "host": host,
            "port": port,
            "default_participant": default_participant_index,
            "token": token,
            "insecure": insecure,
        },
        daemon=False,
    )
