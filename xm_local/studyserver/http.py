"""The study server: experiment-server 0.3.9's REST API, a Starlette app served by uvicorn.

The app (:func:`build_app`) is the API's routes (:mod:`.api`), the pages (:mod:`.pages`) and, for every other
path, 0.3.9's static-file answers; :class:`~xmanager.xm_local.web.WebServer` serves it (httptools and uvloop
when installed; keep-alive, pipelining, chunked request bodies, ``Expect: 100-continue``). The ``/api/...``
endpoints give the same status codes, bodies and content types as experiment-server 0.3.9 (Tornado), so
existing Unity, JS and Python clients work unchanged. Its routes are kept too, matched on the path as sent
(percent escapes kept, as Tornado does): ``/api/<action>`` with zero, one or two ids of ASCII digits goes to
the API (GET, POST and PUT; other methods 405); any other path is a static file there, so GET and HEAD answer
404 (or our pages) and every other method 405 (``POST /api/move-to-next/abc`` is 405, ``POST
/api/move-to-next/1/2`` is 404). A PUT to an action that takes none does nothing and answers 200 with an
empty body, as in 0.3.9. Each request is logged as Tornado logs it (``200 GET /api/config (127.0.0.1)
0.52ms``, logger ``xmanager.xm_local.studyserver.http.access``). This module is also experiment-server's
``_server``: :func:`_server` and :func:`server_process` have its names and arguments.

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
* ``xmanager study run`` prints ``Listening on <url>`` on stdout for each address it listens on, with the
  port the system picked for port 0 (0.3.9 prints nothing).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from xmanager.xm_local import web  # noqa: F401 - first: a missing Starlette or uvicorn is named with its remedy

# isort: split
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp
from xmanager.xm_local.studyserver.api import StudyServer, api_routes
from xmanager.xm_local.studyserver.pages import page_routes
from xmanager.xm_local.studyserver.responses import HTML, JSON, tornado_page
from xmanager.xm_local.studyserver.state import StudyState
from xmanager.xm_local.web.access import is_loopback, needs_token
from xmanager.xm_local.web.middleware import AccessLog, RawPathRouting
from xmanager.xm_local.web.runner import WebServer

__all__ = [
    "HTML",
    "JSON",
    "StudyServer",
    "StudyServerError",
    "build_app",
    "check_access",
    "is_loopback",
    "serve",
    "server_process",
]

log = logging.getLogger(__name__)
access_log = logging.getLogger(f"{__name__}.access")  # Tornado's access lines: `200 GET /api/config (ip) 0.52ms`.
access_log.addHandler(logging.NullHandler())  # Without logging set up, nothing (not even 4xx lines) reaches stderr.


class StudyServerError(RuntimeError):
    """The server cannot start with the given options."""


async def _error_page(request: Request, exc: Exception) -> Response:
    """Tornado's page for a path no route has (404) or a method the path's routes do not answer (405)."""
    del request
    return tornado_page(exc.status_code if isinstance(exc, HTTPException) else 500)


def build_app(server: StudyServer) -> ASGIApp:
    """The ASGI app serving ``server``: the API, the pages, 0.3.9's answers for any other path, access lines."""
    app = Starlette(
        routes=[*api_routes(server), *page_routes()],
        exception_handlers={404: _error_page, 405: _error_page, Exception: _error_page},
    )
    app.router.redirect_slashes = False  # 0.3.9 answers `/api/config/` with its 404, not a redirect.
    app.state.study = server
    return RawPathRouting(AccessLog(app, access_log))


def serve(
    config_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 5000,
    default_participant: int = 1,
    token: str | None = None,
    insecure: bool = False,
    idle_timeout: float = 120.0,
    persist: bool = False,
    on_listening: Callable[[list[str]], None] | None = None,
) -> None:
    """Run the study server until ``POST /api/shutdown``, SIGTERM or SIGINT.

    ``port=0`` picks a free port. ``on_listening`` is called with the URLs served once the server accepts
    connections (without it, a picked port is logged). Keep-alive connections idle for ``idle_timeout``
    seconds are closed. With ``token``, every POST and PUT must carry ``Authorization: Bearer <token>``; a
    ``host`` that is not a loopback address needs one, or ``insecure=True`` to serve it without one (as
    experiment-server does). With ``persist``, the participants are kept in ``<config>.participants.sqlite3``
    and a restarted server carries on; without it (as experiment-server) they live in memory.

    Raises:
      StudyServerError: ``host`` is not a loopback address and neither ``token`` nor ``insecure`` is given, or
        ``token`` is empty.
      StudyConfigError: the config file is invalid.
      OSError: the address cannot be bound.
    """
    check_access(host, token, insecure)
    state = StudyState(config_path, default_participant, db_path=None if persist else ":memory:")

    def listening(urls: list[str]) -> None:
        if on_listening is not None:
            on_listening(urls)
        elif port == 0:  # Only a port picked by the system needs telling (experiment-server logs nothing here).
            log.info("study server for %s listening on %s", state.config_path, ", ".join(urls))

    try:
        server = StudyServer(state, token)
        web = WebServer(build_app(server), host, port, idle_timeout=idle_timeout, on_listening=listening)
        server.stop = web.stop
        web.run()
    finally:
        state.close()


def check_access(host: str, token: str | None, insecure: bool) -> None:
    """Refuse a server that anyone on the network could change: a non-loopback ``host`` without a token.

    Raises:
      StudyServerError: ``host`` is not a loopback address and neither ``token`` nor ``insecure`` is given, or
        ``token`` is empty.
    """
    if needs_token(host, token, insecure):
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

    A ``default_participant_index`` of None is participant 1. Prints ``Listening on <url>`` on stdout for each
    address served (the real port when ``port`` is 0).
    """
    serve(
        config_file,
        host=host,
        port=_port(port),
        default_participant=1 if default_participant_index is None else default_participant_index,
        token=token,
        insecure=insecure,
        persist=persist,
        on_listening=_print_urls,
    )


def _print_urls(urls: list[str]) -> None:
    for url in urls:
        print(f"Listening on {url}", flush=True)


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
