"""The study server: experiment-server 0.3.9's REST API on a small asyncio HTTP/1.1 server.

Only the standard library is used: asyncio streams and a minimal request parser (request line,
headers, ``Content-Length`` bodies; persistent connections and pipelining; no chunked request
bodies). The ``/api/...`` endpoints give the same status codes, bodies and content types as
experiment-server 0.3.9 (Tornado), so existing Unity, JS and Python clients work unchanged. Its routes
are kept too: ``/api/<action>`` with zero, one or two ids of ASCII digits goes to the API (GET, POST and
PUT; other methods 405); any other path is a static file there, so GET and HEAD answer 404 (or our
pages) and every other method 405 (``POST /api/move-to-next/abc`` is 405, ``POST
/api/move-to-next/1/2`` is 404). A PUT to an action that takes none does nothing and answers 200 with
an empty body, as in 0.3.9. This module is also experiment-server's ``_server``: :func:`_server` and
:func:`server_process` have its names and arguments.

Differences from 0.3.9:

* With ``persist``, participants and their block ids are kept on disk (see :mod:`.state`) and a restart
  loses nothing; by default they live in memory, as in 0.3.9.
* The config file is reloaded when its modification time, size or inode changes, which is checked before
  each API call is answered (every GET, and every POST or PUT that passes the token check), whereas 0.3.9
  watches the file from a thread. A broken file is logged and the previous config is kept.
* The server binds 127.0.0.1 by default, as 0.3.9. Binding any other address needs an access token unless
  ``insecure=True`` (0.3.9 binds it without one): unauthenticated, anyone who can reach the server could move
  participants. When a token is set, every POST and PUT to the API must carry ``Authorization: Bearer <token>``
  (401 otherwise); on loopback it is opt-in.
* Where 0.3.9 fails with a 500 (a GET or PUT with two ids, ``PUT /api/add-participant`` and
  ``POST /api/move-all-to-block`` without an id) we answer 404 (406 for ``add-participant``), and
  ``POST /api/move-to-next/<pid>/<n>`` answers its 404 without moving the participant (0.3.9 moves it).
* Participant ids and block ids with more than 15 digits are treated as unknown / out of range
  instead of failing with a server error.
* Two endpoints 0.3.9 lacks, for the web UI: ``GET /api/participants`` (JSON list of every participant's
  ``participant_index``, ``block_id``, ``block_name``, ``active``, ``blocks_count``, by id) and
  ``POST /api/reset-participant[/<pid>]`` (rebuild the blocks from the current config and go back before
  the first block; answers that participant's row as JSON).
* Outside ``/api/``: the web UI at ``/`` and the OpenAPI description at ``/openapi.json``
  (:mod:`.pages`); 0.3.9's ``/web/...`` fragments and static assets are not served (404).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import multiprocessing
import os
import re
import signal
import time
from typing import Any

import attrs
from xmanager.xm.study.errors import ExperimentServerException, StudyConfigError
from xmanager.xm_local.studyserver.state import ParticipantState, StudyState, UnknownParticipantError

__all__ = ["StudyServer", "StudyServerError", "check_access", "is_loopback", "serve", "server_process"]

log = logging.getLogger(__name__)
access_log = logging.getLogger(f"{__name__}.access")  # Tornado's access lines: `200 GET /api/config (ip) 0.52ms`.
access_log.addHandler(logging.NullHandler())  # Without logging set up, nothing (not even 4xx lines) reaches stderr.

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
_RELOAD_INTERVAL = 0.0  # Checked on every request: 0.3.9 reloads as soon as the file changes.
# experiment-server's API routes: an action and up to two ids of ASCII digits. Anything else is a static path.
_API_ROUTE = re.compile(r"/api/([^/]+)(?:/([0-9]+))?(?:/([0-9]+))?")
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


def _error_text(error: Exception) -> str:
    """An error for an answer body: its message, as experiment-server's ``e.message``."""
    return str(error)


def _participant_row(participant: ParticipantState) -> dict[str, Any]:
    return {
        "participant_index": participant.participant_index,
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

    # -- config reload -----------------------------------------------------------------------------

    def maybe_reload(self, now: float | None = None) -> None:
        """Reload the config if the file changed (checked on each request, as 0.3.9 reloads on each change)."""
        now = time.monotonic() if now is None else now
        if now - self._last_check < _RELOAD_INTERVAL:
            return
        self._last_check = now
        self.state.reload_if_changed()

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
        route = _API_ROUTE.fullmatch(path)
        if route is None:
            # experiment-server serves every other path from its static folder: GET and HEAD, else 405.
            if method not in ("GET", "HEAD"):
                return _tornado_page(405)
            from xmanager.xm_local.studyserver.pages import page_for

            page = page_for(path)
            return _tornado_page(404) if page is None else page(self)
        if method in ("POST", "PUT"):
            if not self._authorized(headers):
                return Response(401, "unauthorized", headers=(("WWW-Authenticate", "Bearer"),))
        elif method != "GET":
            return _tornado_page(405)
        self.maybe_reload()
        action = route.group(1)
        params = [_number(p) for p in route.groups()[1:] if p is not None]
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
        if action not in _GET_ACTIONS or len(params) > 1:  # Two ids: 0.3.9 fails with a 500.
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
            if log.isEnabledFor(logging.INFO):
                log.info("Config returned: %s", participant.block["config"] if participant.block else None)
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
        return Response(200, participant.status_string().replace("\n", "&nbsp;&nbsp;&nbsp;"))

    def _post(self, action: str, params: list[int]) -> Response:
        state = self.state
        if len(params) == 2 and action in ("move-to-next", "move-all-to-block"):
            return Response(404, f"unknown second parameter {params[1]}")
        if len(params) == 2 and action == "reset-participant":
            return Response(404, "n/a")
        if action == "move-to-next":
            name = state.move_to_next(params[0] if params else None)
            log.info("Loading block: %s\n", name)
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
                return Response(406, _error_text(exc))
            state.move_to_block(-1, pid)
            return Response(200, json.dumps(_participant_row(state.participant(pid))), JSON)
        if action == "shutdown":
            self.shutdown_requested = True
            return Response(200, json.dumps({"message": "shutting down"}), JSON)
        return Response(404, "n/a")

    def _put(self, action: str, params: list[int]) -> Response:
        state = self.state
        if len(params) == 2:  # 0.3.9 fails with a 500.
            return Response(404, "n/a")
        if action == "new-participant":
            if params:
                return Response(406, "`new-participant` doesn't take params")
            try:
                return Response(200, str(state.new_participant()))
            except ExperimentServerException as exc:
                return Response(406, _error_text(exc))
        if action == "add-participant":
            if not params:
                return Response(406, "`add-participant` needs a participant id")
            pid = params[0]
            if pid >= _MAX_PARTICIPANT:
                return Response(406, f"participant id must be < {_MAX_PARTICIPANT}")
            try:
                added = state.add_participant(pid)
            except ExperimentServerException as exc:
                return Response(406, _error_text(exc))
            return Response(200, "true") if added else Response(406, "false")
        return Response(200, "")  # 0.3.9 ignores a PUT to any other action.


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
        self.server: asyncio.Server | None = None  # Closed (no new connections) as soon as a shutdown is asked.

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
            if app.shutdown_requested:  # Asked on another connection: this one gets no more answers.
                return
            started = time.perf_counter()
            try:
                response = app.handle(method, target, headers, body)
            except Exception:
                log.exception("%s %s failed", method, target)
                response = _tornado_page(500)
            _log_access(response.status, method, target, writer, started)
            if app.shutdown_requested:
                keep_alive = False
                if self.server is not None:
                    self.server.close()  # Before answering: once the client has the answer, connecting fails.
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


def _log_access(status: int, method: str, target: str, writer: asyncio.StreamWriter, started: float) -> None:
    """Tornado's access line: INFO below 400, WARNING below 500, else ERROR."""
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if access_log.isEnabledFor(level):
        peer = writer.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        elapsed = 1000.0 * (time.perf_counter() - started)
        access_log.log(level, "%d %s %s (%s) %.2fms", status, method, target, address, elapsed)


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
    connections.server = server
    bound = ", ".join(str(sock.getsockname()[:2]) for sock in server.sockets)
    if port == 0:  # Only a port picked by the system needs telling (experiment-server logs nothing here).
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
    persist: bool = False,
) -> None:
    """Run the study server until ``POST /api/shutdown``, SIGTERM or SIGINT.

    ``port=0`` picks a free port (logged). Keep-alive connections idle for ``idle_timeout`` seconds are closed.
    With ``token``, every POST and PUT must carry ``Authorization: Bearer <token>``; a ``host`` that is not a
    loopback address needs one, or ``insecure=True`` to serve it without one (as experiment-server does). With
    ``persist``, the participants are kept in ``<config>.participants.sqlite3`` and a restarted server carries
    on; without it (as experiment-server) they live in memory.

    Raises:
      StudyServerError: ``host`` is not a loopback address and neither ``token`` nor ``insecure`` is given, or
        ``token`` is empty.
      StudyConfigError: the config file is invalid.
    """
    check_access(host, token, insecure)
    state = StudyState(config_path, default_participant, db_path=None if persist else ":memory:")
    try:
        asyncio.run(_run(StudyServer(state, token), host, port, idle_timeout))
    finally:
        state.close()


def check_access(host: str, token: str | None, insecure: bool) -> None:
    """Refuse a server that anyone on the network could change: a non-loopback ``host`` without a token.

    Raises:
      StudyServerError: ``host`` is not a loopback address and neither ``token`` nor ``insecure`` is given, or
        ``token`` is empty.
    """
    if not is_loopback(host) and not token and not insecure:
        raise StudyServerError(
            f"refusing to bind {host!r} without an access token: anyone who can reach it could move participants; "
            "pass a token (clients then send `Authorization: Bearer <token>` on every POST and PUT) or insecure=True"
        )
    if token is not None and not token:
        raise StudyServerError("the access token must not be empty")


def _port(port: int | str) -> int:
    text = str(port)
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise StudyServerError(f"the port must be a number from 0 to 65535, got {port!r}")
    return int(text)


def _server(
    config_file: str | os.PathLike[str],
    default_participant_index: int | None,
    host: str = "127.0.0.1",
    port: int | str = 5000,
    token: str | None = None,
    insecure: bool = False,
    persist: bool = False,
) -> None:
    """experiment-server's entry point of ``run``: :func:`serve` with its argument names (``port`` may be text).

    A ``default_participant_index`` of None is participant 1.
    """
    serve(
        config_file,
        host=host,
        port=_port(port),
        default_participant=1 if default_participant_index is None else default_participant_index,
        token=token,
        insecure=insecure,
        persist=persist,
    )


def _server_logged(**kwargs: Any) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _server(**kwargs)


def server_process(
    config_file: str | os.PathLike[str],
    default_participant_index: int | None = None,
    host: str = "127.0.0.1",
    port: int | str = "5000",
    token: str | None = None,
    insecure: bool = False,
    persist: bool = False,
) -> multiprocessing.Process:
    """An unstarted process serving ``config_file`` (call ``.start()``; ``POST /api/shutdown`` ends it).

    experiment-server's function and arguments (a ``default_participant_index`` of None is participant 1),
    plus ``token``, ``insecure`` and ``persist`` (see :func:`serve`).

    Raises:
      StudyServerError: a bad port, or a non-loopback ``host`` without ``token`` or ``insecure`` (see :func:`serve`).
    """
    _port(port)
    check_access(host, token, insecure)
    return multiprocessing.Process(
        target=_server_logged,
        kwargs={
            "config_file": os.fspath(config_file),
            "default_participant_index": default_participant_index,
            "host": host,
            "port": port,
            "token": token,
            "insecure": insecure,
            "persist": persist,
        },
        daemon=False,
    )
