"""experiment-server 0.3.9's REST API as Starlette routes: ``/api/<action>`` with zero, one or two ids.

Every operation the server answers is a route of its own (:data:`SPECS`: method, action, id names, handler
and what it answers, from which :mod:`.openapi` generates the OpenAPI document). After them come the
fallbacks 0.3.9 answers for any other action: a GET 404 ``N/A``, a POST 404 ``n/a`` (``unknown second
parameter <m>`` for ``move-to-next`` and ``move-all-to-block``), a PUT 200 with an empty body (404 ``n/a``
with two ids). Ids are ASCII digits (the ``study_id`` convertor; more than 15 digits stand for a number too
big to be a participant or block). API routes answer GET, POST and PUT only (not HEAD, as in 0.3.9).

Before a request is handled: a POST or PUT body is read (and dropped; more than 1 MiB is a 413), a POST or
PUT without the access token (when the server has one) is a 401, and the config file is reloaded if it
changed. An unknown participant is a 406 with 0.3.9's message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send
from xmanager.xm.study.errors import ExperimentServerException, StudyConfigError
from xmanager.xm_local.studyserver import openapi as doc
from xmanager.xm_local.studyserver.responses import JSON, answer, tornado_page
from xmanager.xm_local.studyserver.state import ParticipantState, StudyState, UnknownParticipantError
from xmanager.xm_local.web.access import bearer_authorized
from xmanager.xm_local.web.openapi import Operation

__all__ = ["SPECS", "StudyServer", "api_routes"]

log = logging.getLogger(__name__)

_HUGE = 10**16  # Stands for any number with more than 15 digits.
_MAX_BODY = 1024 * 1024


class IdConvertor(Convertor[int]):
    """An id in a path: ASCII digits (no sign); more than 15 digits become 10**16 (unknown / out of range)."""

    regex = "[0-9]+"
    openapi_schema = {"type": "integer", "minimum": 0}

    def convert(self, value: str) -> int:
        return int(value) if len(value) <= 15 else _HUGE

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("study_id", IdConvertor())


class StudyServer:
    """What the routes serve: the participants (``state``), the access token, and how to stop the server."""

    def __init__(self, state: StudyState, token: str | None = None, stop: Callable[[], None] | None = None) -> None:
        self.state = state
        self.token = token
        self.stop = stop
        self.shutdown_requested = False

    def maybe_reload(self) -> None:
        """Reload the config if the file changed (checked on each API request: 0.3.9 reloads on each change)."""
        self.state.reload_if_changed()

    def request_shutdown(self) -> None:
        self.shutdown_requested = True
        if self.stop is not None:
            self.stop()


#: ``handler(server, **ids)``: the answer to one request, its path's ids by name.
Handler = Callable[..., Response]


def _participant_row(participant: ParticipantState) -> dict[str, Any]:
    return {
        "participant_index": participant.participant_index,
        "block_id": participant.block_id,
        "block_name": participant.block_name,
        "active": participant.active,
        "blocks_count": participant.blocks_count,
    }


# -- GET ---------------------------------------------------------------------------------------------


def _blocks_count(server: StudyServer, pid: int | None = None) -> Response:
    return answer(200, str(server.state.participant(pid).blocks_count))


def _block_id(server: StudyServer, pid: int | None = None) -> Response:
    return answer(200, str(server.state.participant(pid).block_id))


def _active(server: StudyServer, pid: int | None = None) -> Response:
    return answer(200, json.dumps(server.state.participant(pid).active))


def _config(server: StudyServer, pid: int | None = None) -> Response:
    participant = server.state.participant(pid)
    text = participant.config_json()
    if text is None:
        return answer(
            406, f"participant {pid} not active. A call to `/move-to-next` must be made before calling `/config`"
        )
    if log.isEnabledFor(logging.INFO):
        log.info("Config returned: %s", participant.block["config"] if participant.block else None)
    return answer(200, text)


def _summary_data(server: StudyServer, pid: int | None = None) -> Response:
    participant = server.state.participant(pid)
    data = {"participant_index": participant.participant_id, "configs_length": participant.blocks_count}
    return answer(200, json.dumps(data), JSON)


def _all_configs(server: StudyServer, pid: int | None = None) -> Response:
    server.state.participant(pid)
    return answer(200, json.dumps(server.state.get_all_configs(pid), indent=4))


def _status_string(server: StudyServer, pid: int | None = None) -> Response:
    return answer(200, server.state.participant(pid).status_string().replace("\n", "&nbsp;&nbsp;&nbsp;"))


def _participants(server: StudyServer) -> Response:
    state = server.state
    rows = [_participant_row(state.participants[p]) for p in sorted(state.participants)]
    return answer(200, json.dumps(rows), JSON)


# -- POST --------------------------------------------------------------------------------------------


def _move_to_next(server: StudyServer, pid: int | None = None) -> Response:
    name = server.state.move_to_next(pid)
    log.info("Loading block: %s\n", name)
    return answer(200, json.dumps({"name": name}), JSON)


def _need_a_block_id(server: StudyServer) -> Response:
    del server
    return answer(404, "Need atleast one paramter.")


def _move_to_block(server: StudyServer, bid: int, pid: int | None = None) -> Response:
    count = server.state.participant(pid).blocks_count
    if not 0 <= bid < count:
        return answer(404, f"param should be >= 0 and < {count}")
    server.state.move_to_block(bid, pid)
    return answer(200, str(bid))


def _move_all_to_block(server: StudyServer, bid: int) -> Response:
    count = server.state.participant(None).blocks_count
    if not 0 <= bid < count:
        return answer(404, f"param should be >= 0 and < {count}")
    server.state.move_all_to_block(bid)
    return answer(200, str(bid))


def _reset_participant(server: StudyServer, pid: int | None = None) -> Response:
    state = server.state
    try:
        state.reset_participant(pid)
    except StudyConfigError as exc:
        return answer(406, str(exc))
    state.move_to_block(-1, pid)
    return answer(200, json.dumps(_participant_row(state.participant(pid))), JSON)


def _shutdown(server: StudyServer, ignored: int | None = None, ignored2: int | None = None) -> Response:
    del ignored, ignored2
    server.request_shutdown()
    return answer(200, json.dumps({"message": "shutting down"}), JSON)


# -- PUT ---------------------------------------------------------------------------------------------


def _new_participant(server: StudyServer) -> Response:
    try:
        return answer(200, str(server.state.new_participant()))
    except ExperimentServerException as exc:
        return answer(406, str(exc))


def _new_participant_with_id(server: StudyServer, ignored: int) -> Response:
    del server, ignored
    return answer(406, "`new-participant` doesn't take params")


def _add_participant_without_id(server: StudyServer) -> Response:
    del server
    return answer(406, "`add-participant` needs a participant id")


def _add_participant(server: StudyServer, pid: int) -> Response:
    if pid >= doc.MAX_PARTICIPANT:
        return answer(406, f"participant id must be < {doc.MAX_PARTICIPANT}")
    try:
        added = server.state.add_participant(pid)
    except ExperimentServerException as exc:
        return answer(406, str(exc))
    return answer(200, "true") if added else answer(406, "false")


# -- any other action (not documented) -----------------------------------------------------------------


def _other_get(server: StudyServer, action: str, first: int | None = None, second: int | None = None) -> Response:
    del server, action, first, second
    return answer(404, "N/A")


def _other_post(server: StudyServer, action: str, first: int | None = None, second: int | None = None) -> Response:
    del server, first
    if second is not None and action in ("move-to-next", "move-all-to-block"):
        return answer(404, f"unknown second parameter {second}")
    return answer(404, "n/a")


def _other_put(server: StudyServer, action: str, first: int | None = None, second: int | None = None) -> Response:
    del server, action, first
    return answer(404, "n/a") if second is not None else answer(200, "")  # 0.3.9 ignores the PUT.


# -- the route table -----------------------------------------------------------------------------------


@attrs.frozen
class Spec:
    """One documented operation: ``METHOD /api/<action>/<id>...`` answered by ``handler``."""

    method: str
    action: str
    ids: tuple[str, ...]
    handler: Handler
    summary: str
    responses: Mapping[str, Any]
    tags: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return "/api/" + "/".join([self.action, *(f"{{{name}:study_id}}" for name in self.ids)])

    def operation(self) -> Operation:
        guarded = self.method != "GET"
        responses = dict(self.responses)
        tags = list(self.tags)
        if self.ids and self.ids[-1].startswith("ignored") and self.action != "new-participant":
            tags.append("ignored-param")
        if guarded:
            responses["401"] = doc.UNAUTHORIZED
        return Operation(
            summary=self.summary,
            responses=responses,
            operation_id=f"{self.method.lower()}_{self.action.replace('-', '_')}_{len(self.ids)}",
            tags=tuple(tags),
            parameters={name: doc.ID_DESCRIPTIONS[name] for name in self.ids},
            security=doc.GUARDED if guarded else None,
            extensions={doc.DESTRUCTIVE: True} if self.action == "shutdown" else {},
        )


def _getters() -> list[Spec]:
    text = doc.text
    getters: list[tuple[str, Handler, str, dict[str, Any]]] = [
        ("config", _config, "The config of the participant's current block.",
         text("`json.dumps(config, indent=4)` of the current block's config.", example='{\n    "speed": 2.5\n}')),
        ("blocks-count", _blocks_count, "The number of blocks of the participant.",
         text("The count.", doc.INT_TEXT, "7")),
        ("block-id", _block_id,
         "The participant's block id: -1 before the first block, 0..n-1 while a block runs, n after the last.",
         text("The block id.", doc.INT_TEXT, "-1")),
        ("active", _active, "Whether the participant is in a block.",
         text("`true` or `false`.", {"type": "string", "enum": ["true", "false"]}, "false")),
        ("summary-data", _summary_data, "The participant id and its number of blocks.",
         doc.json_body("Summary.", "SummaryData", {"participant_index": 1, "configs_length": 7})),
        ("all-configs", _all_configs, "The configs of all the participant's blocks.",
         text("`json.dumps([config, ...], indent=4)`.", example='[\n    {\n        "speed": 2.5\n    }\n]')),
        ("status-string", _status_string, "A one-line status of the participant.",
         text("The status line (`Name: N/A` before the first block and after the last).",
              example="Participant index: 1    &nbsp;&nbsp;&nbsp;Block: 0 / 7    &nbsp;&nbsp;&nbsp; Name: intro")),
    ]  # fmt: skip
    specs = []
    for action, handler, summary, ok in getters:
        responses = {"200": ok, "406": doc.NOT_ACTIVE if action == "config" else doc.UNKNOWN}
        for ids in (("pid",), ()):
            specs.append(Spec("GET", action, ids, handler, summary, responses))
    return specs


def _specs() -> list[Spec]:
    text, json_body = doc.text, doc.json_body
    moved = text("The block id moved to.", doc.INT_TEXT, "3")
    move_next = {"200": json_body("The block moved to.", "BlockName", {"name": "intro"}), "406": doc.UNKNOWN}
    reset = {
        "200": json_body("The participant's row after the reset.", "ParticipantRow"),
        "406": text("Unknown participant (as above), or its blocks cannot be built from the current config."),
    }
    shutdown = {"200": json_body("The server stops.", "ShutdownMessage", {"message": "shutting down"})}
    rows = {"type": "array", "items": {"$ref": "#/components/schemas/ParticipantRow"}}
    stop_summary = "Stop the server (after answering)."
    reset_summary = "Rebuild the participant's blocks from the current config and go back before the first block."
    return [
        *_getters(),
        Spec("GET", "participants", (), _participants, "Every participant (by id), for the web UI.",
             {"200": {"description": "Rows.", "content": {JSON: {"schema": rows}}}}, ("webui",)),
        Spec("POST", "move-to-next", ("pid",), _move_to_next, "Move the participant to its next block.", move_next),
        Spec("POST", "move-to-next", (), _move_to_next, "Move the participant to its next block.", move_next),
        Spec("POST", "move-to-block", (), _need_a_block_id, "Needs a block id (always 404).", {"404": doc.NO_PARAM}),
        Spec("POST", "move-to-block", ("bid",), _move_to_block, "Move the default participant to a block.",
             {"200": moved, "404": doc.OUT_OF_RANGE, "406": doc.UNKNOWN}),
        Spec("POST", "move-to-block", ("pid", "bid"), _move_to_block, "Move a participant to a block.",
             {"200": moved, "404": doc.OUT_OF_RANGE, "406": doc.UNKNOWN}),
        Spec("POST", "move-all-to-block", (), _need_a_block_id, "Needs a block id (always 404).",
             {"404": doc.NO_PARAM}),
        Spec("POST", "move-all-to-block", ("bid",), _move_all_to_block,
             "Move every known participant to a block (range checked against the default participant's "
             "block count, clamped per participant).", {"200": moved, "404": doc.OUT_OF_RANGE}),
        Spec("POST", "reset-participant", (), _reset_participant, reset_summary, reset, ("webui",)),
        Spec("POST", "reset-participant", ("pid",), _reset_participant, reset_summary, reset, ("webui",)),
        Spec("POST", "shutdown", (), _shutdown, stop_summary, shutdown),
        Spec("POST", "shutdown", ("ignored",), _shutdown, stop_summary, shutdown),
        Spec("POST", "shutdown", ("ignored", "ignored2"), _shutdown, stop_summary, shutdown),
        Spec("PUT", "new-participant", (), _new_participant, "Create the participant max(existing ids) + 1.",
             {"200": text("The new participant id.", doc.INT_TEXT, "2"),
              "406": text("Its blocks cannot be built from the config (the config error).")}),
        Spec("PUT", "new-participant", ("ignored",), _new_participant_with_id, "Takes no id (always 406).",
             {"406": text("Rejected.", {"type": "string", "enum": ["`new-participant` doesn't take params"]})}),
        Spec("PUT", "add-participant", (), _add_participant_without_id, "Needs a participant id (always 406).",
             {"406": text("Rejected.", {"type": "string", "enum": ["`add-participant` needs a participant id"]})}),
        Spec("PUT", "add-participant", ("pid",), _add_participant, "Create a participant with the given id.",
             {"200": text("Created.", {"type": "string", "enum": ["true"]}),
              "406": text(f"`false` if it exists; `participant id must be < {doc.MAX_PARTICIPANT}`; or the config "
                          "error, naming the file without its folders (e.g. for id 0: participant ids start at 1).")}),
    ]  # fmt: skip


#: Every documented operation, in the order the router tries them (the hot GETs first).
SPECS: tuple[Spec, ...] = tuple(_specs())
_FALLBACKS: tuple[tuple[str, Handler], ...] = (("GET", _other_get), ("POST", _other_post), ("PUT", _other_put))
_FALLBACK_PATHS = (
    "/api/{action}",
    "/api/{action}/{first:study_id}",
    "/api/{action}/{first:study_id}/{second:study_id}",
)


# -- the endpoints -------------------------------------------------------------------------------------


async def _body_fits(receive: Receive) -> bool:
    """Reads the request body to its end (so ``Expect: 100-continue`` is answered); False past 1 MiB."""
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return True
        size += len(message.get("body", b""))
        if size > _MAX_BODY:
            return False
        more = message.get("more_body", False)
    return True


class Endpoint:
    """An ASGI endpoint answering one method of one route with ``handler(server, **ids)``."""

    def __init__(self, server: StudyServer | None, handler: Handler, method: str, openapi: Operation | None) -> None:
        self.server = server
        self.handler = handler
        self.changes = method != "GET"
        self.openapi = openapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self.server
        assert server is not None, "routes built for the document only"
        if not self.changes:
            response = self._answer(server, scope)
        elif not await _body_fits(receive):
            response = tornado_page(413)
            response.headers["Connection"] = "close"
        elif not bearer_authorized(scope, server.token):
            response = answer(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        else:
            response = self._answer(server, scope)
        await response(scope, receive, send)

    def _answer(self, server: StudyServer, scope: Scope) -> Response:
        try:
            server.maybe_reload()
            return self.handler(server, **scope["path_params"])
        except UnknownParticipantError as exc:
            return answer(
                406, f"Participant with ID {exc.participant_id} not known. Consider initializing new participant."
            )
        except Exception:  # One bad request must not take the server down: 0.3.9 answers a 500 page.
            log.exception("%s %s failed", scope["method"], scope["path"])
            return tornado_page(500)


class _HeadNotAllowed:
    """HEAD on an API route: 405, as 0.3.9 (Tornado matches the path before the method)."""

    openapi = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await tornado_page(405)(scope, receive, send)


def _route(path: str, endpoint: Endpoint | _HeadNotAllowed, method: str) -> Route:
    route = Route(path, endpoint, methods=[method])
    assert route.methods is not None
    route.methods.discard("HEAD")  # Starlette adds HEAD to GET routes; 0.3.9's API answers it 405.
    return route


def api_routes(server: StudyServer | None) -> list[BaseRoute]:
    """The ``/api/...`` routes serving ``server`` (None: for the OpenAPI document only)."""
    routes: list[BaseRoute] = [
        _route(spec.path, Endpoint(server, spec.handler, spec.method, spec.operation()), spec.method) for spec in SPECS
    ]
    for path in _FALLBACK_PATHS:
        for method, handler in _FALLBACKS:
            routes.append(_route(path, Endpoint(server, handler, method, None), method))
        # Without it, HEAD would fall through to the static-file route below (404) instead of 0.3.9's 405.
        routes.append(_route(path, _HeadNotAllowed(), "HEAD"))
    return routes
