"""The OpenAPI 3.0 description of the study server's ``/api/...`` endpoints, served at ``/openapi.json``.

The document is built in code (:func:`openapi_document`) from the same facts the server implements in
:mod:`.http`: experiment-server 0.3.9's routes ``/api/<action>``, ``/api/<action>/<n>`` and
``/api/<action>/<n>/<m>`` where ``<n>`` and ``<m>`` are ASCII digits (no sign). Every operation the
server answers is listed; ``shutdown``'s ids are accepted and ignored (as 0.3.9 does), which the tag
``ignored-param`` marks. Bodies are described exactly as sent: most are plain text with the content
type ``text/html; charset=UTF-8`` (Tornado's default in 0.3.9), ``summary-data``, ``move-to-next``,
``shutdown``, ``participants`` and ``reset-participant`` answer ``application/json; charset=UTF-8``.

Not listed, as in 0.3.9: a GET or POST with an action/id count not listed here answers 404 with the body
``N/A`` (GET) or ``n/a`` (POST), or ``unknown second parameter <m>`` for ``move-to-next`` and
``move-all-to-block``; a PUT to any action other than ``new-participant`` and
``add-participant`` does nothing and answers 200 with an empty body (404 ``n/a`` with two ids). Other
methods on these routes answer 405 (Tornado's HTML error page). A path that is not one of these routes
(``/api/config/abc``, ``/api/config/1/2/3``, ``/api/config/``) answers GET and HEAD with 404 and any
other method with 405.

``POST /api/shutdown`` (and its forms with ids) stops the server: the operations carry
``x-destructive: true`` so that fuzzers can leave them out.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from xmanager.xm_local.studyserver.http import HTML, JSON, Response

__all__ = ["DESTRUCTIVE", "openapi_document", "openapi_page"]

DESTRUCTIVE = "x-destructive"
_MAX_PARTICIPANT = 2**53

# -- schemas and reusable pieces ---------------------------------------------------------------------

_INT_TEXT = {"type": "string", "pattern": "^-?[0-9]+$"}
_SCHEMAS: dict[str, Any] = {
    "SummaryData": {
        "type": "object",
        "properties": {
            "participant_index": {"type": "integer", "minimum": 1},
            "configs_length": {"type": "integer", "minimum": 0},
        },
        "required": ["participant_index", "configs_length"],
        "additionalProperties": False,
    },
    "BlockName": {
        "type": "object",
        "description": 'The name of the block moved to, or "END" after the last block.',
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    },
    "ShutdownMessage": {
        "type": "object",
        "properties": {"message": {"type": "string", "enum": ["shutting down"]}},
        "required": ["message"],
        "additionalProperties": False,
    },
    "ParticipantRow": {
        "type": "object",
        "properties": {
            "participant_index": {"type": "integer", "minimum": 1},
            "block_id": {
                "type": "integer",
                "minimum": -1,
                "description": "-1 before the first block, n after the last",
            },
            "block_name": {"type": "string", "description": '"START", a block name or "END"'},
            "active": {"type": "boolean"},
            "blocks_count": {"type": "integer", "minimum": 0},
        },
        "required": ["participant_index", "block_id", "block_name", "active", "blocks_count"],
        "additionalProperties": False,
    },
}

_ID_DESCRIPTIONS = {
    "pid": "Participant id: ASCII digits only (no sign). Ids with more than 15 digits are treated as unknown.",
    "bid": "Block id: ASCII digits only (no sign). Ids with more than 15 digits are treated as out of range.",
    "ignored": "Accepted (ASCII digits only, no sign) and ignored, as in experiment-server 0.3.9.",
}


def _parameter(name: str) -> dict[str, Any]:
    kind = "ignored" if name.startswith("ignored") else name
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": _ID_DESCRIPTIONS[kind],
        "schema": {"type": "integer", "minimum": 0},
    }


def _text(description: str, schema: dict[str, Any] | None = None, example: str | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": dict(schema or {"type": "string"})}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {HTML: media}}


def _json(description: str, schema_name: str, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {JSON: media}}


_UNKNOWN = _text(
    "Unknown participant, with the text `Participant with ID <pid> not known. Consider initializing new participant.`",
    {"type": "string", "pattern": "^Participant with ID [0-9]+ not known\\. Consider initializing new participant\\.$"},
)
_UNAUTHORIZED = {
    "description": "The server has an access token and the request has no `Authorization: Bearer <token>` with it.",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
    "content": {HTML: {"schema": {"type": "string", "enum": ["unauthorized"]}}},
}
_OUT_OF_RANGE = _text(
    "Block id out of range, with the text `param should be >= 0 and < <blocks count>`.",
    {"type": "string", "pattern": "^param should be >= 0 and < [0-9]+$"},
)
_NO_PARAM = _text("No block id given.", {"type": "string", "enum": ["Need atleast one paramter."]})


# -- the operations ------------------------------------------------------------------------------------
# Each entry: (method, action, path parameter names, summary, responses, tags).

_Op = tuple[str, str, tuple[str, ...], str, dict[str, Any], tuple[str, ...]]


def _participant_gets() -> list[_Op]:
    getters: list[tuple[str, str, dict[str, Any]]] = [
        ("blocks-count", "The number of blocks of the participant.", _text("The count.", _INT_TEXT, "7")),
        (
            "block-id",
            "The participant's block id: -1 before the first block, 0..n-1 while a block runs, n after the last.",
            _text("The block id.", _INT_TEXT, "-1"),
        ),
        (
            "active",
            "Whether the participant is in a block.",
            _text("`true` or `false`.", {"type": "string", "enum": ["true", "false"]}, "false"),
        ),
        (
            "config",
            "The config of the participant's current block.",
            _text("`json.dumps(config, indent=4)` of the current block's config.", example='{\n    "speed": 2.5\n}'),
        ),
        (
            "summary-data",
            "The participant id and its number of blocks.",
            _json("Summary.", "SummaryData", {"participant_index": 1, "configs_length": 7}),
        ),
        (
            "all-configs",
            "The configs of all the participant's blocks.",
            _text("`json.dumps([config, ...], indent=4)`.", example='[\n    {\n        "speed": 2.5\n    }\n]'),
        ),
        (
            "status-string",
            "A one-line status of the participant.",
            _text(
                "The status line (`Name: N/A` before the first block and after the last).",
                example="Participant index: 1    &nbsp;&nbsp;&nbsp;Block: 0 / 7    &nbsp;&nbsp;&nbsp; Name: intro",
            ),
        ),
    ]
    ops: list[_Op] = []
    for action, summary, ok in getters:
        responses: dict[str, Any] = {"200": ok, "406": _UNKNOWN}
        if action == "config":
            responses["406"] = _text(
                "Unknown participant (`Participant with ID <pid> not known. ...`), or the participant is not in a "
                "block (`participant <pid> not active. A call to `/move-to-next` must be made before calling "
                "`/config``; `<pid>` is `None` when no id is given).",
                {
                    "type": "string",
                    "pattern": "^(Participant with ID [0-9]+ not known|participant [0-9A-Za-z]+ not active)",
                },
            )
        for params in ((), ("pid",)):
            ops.append(("get", action, params, summary, responses, ()))
    return ops


def _operations() -> list[_Op]:
    ops = _participant_gets()
    ops.append(
        (
            "get",
            "participants",
            (),
            "Every participant (by id), for the web UI.",
            {
                "200": {
                    "description": "Rows.",
                    "content": {
                        JSON: {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/ParticipantRow"}}}
                    },
                }
            },
            ("webui",),
        )
    )
    move_next = {"200": _json("The block moved to.", "BlockName", {"name": "intro"}), "406": _UNKNOWN}
    for params in ((), ("pid",)):
        ops.append(("post", "move-to-next", params, "Move the participant to its next block.", move_next, ()))
    moved = _text("The block id moved to.", _INT_TEXT, "3")
    ops.append(("post", "move-to-block", (), "Needs a block id (always 404).", {"404": _NO_PARAM}, ()))
    ops.append(
        (
            "post",
            "move-to-block",
            ("bid",),
            "Move the default participant to a block.",
            {"200": moved, "404": _OUT_OF_RANGE, "406": _UNKNOWN},
            (),
        )
    )
    ops.append(
        (
            "post",
            "move-to-block",
            ("pid", "bid"),
            "Move a participant to a block.",
            {"200": moved, "404": _OUT_OF_RANGE, "406": _UNKNOWN},
            (),
        )
    )
    ops.append(("post", "move-all-to-block", (), "Needs a block id (always 404).", {"404": _NO_PARAM}, ()))
    ops.append(
        (
            "post",
            "move-all-to-block",
            ("bid",),
            "Move every known participant to a block (range checked against the default participant's "
            "block count, clamped per participant).",
            {"200": moved, "404": _OUT_OF_RANGE},
            (),
        )
    )
    reset = {
        "200": _json("The participant's row after the reset.", "ParticipantRow"),
        "406": _text("Unknown participant (as above), or its blocks cannot be built from the current config."),
    }
    for params in ((), ("pid",)):
        ops.append(
            (
                "post",
                "reset-participant",
                params,
                "Rebuild the participant's blocks from the current config and go back before the first block.",
                reset,
                ("webui",),
            )
        )
    for ignored in ((), ("ignored",), ("ignored", "ignored2")):
        ops.append(
            (
                "post",
                "shutdown",
                ignored,
                "Stop the server (after answering).",
                {"200": _json("The server stops.", "ShutdownMessage", {"message": "shutting down"})},
                (),
            )
        )
    ops.append(
        (
            "put",
            "new-participant",
            (),
            "Create the participant max(existing ids) + 1.",
            {
                "200": _text("The new participant id.", _INT_TEXT, "2"),
                "406": _text("Its blocks cannot be built from the config (the config error)."),
            },
            (),
        )
    )
    ops.append(
        (
            "put",
            "new-participant",
            ("ignored",),
            "Takes no id (always 406).",
            {"406": _text("Rejected.", {"type": "string", "enum": ["`new-participant` doesn't take params"]})},
            (),
        )
    )
    ops.append(
        (
            "put",
            "add-participant",
            (),
            "Needs a participant id (always 406).",
            {"406": _text("Rejected.", {"type": "string", "enum": ["`add-participant` needs a participant id"]})},
            (),
        )
    )
    ops.append(
        (
            "put",
            "add-participant",
            ("pid",),
            "Create a participant with the given id.",
            {
                "200": _text("Created.", {"type": "string", "enum": ["true"]}),
                "406": _text(
                    f"`false` if it exists; `participant id must be < {_MAX_PARTICIPANT}`; or the config error, "
                    "naming the file without its folders (e.g. for id 0: participant ids start at 1)."
                ),
            },
            (),
        )
    )
    return ops


def _path(action: str, params: tuple[str, ...]) -> str:
    return "/api/" + "/".join([action, *(f"{{{p}}}" for p in params)])


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document (a fresh dict on every call)."""
    paths: dict[str, Any] = {}
    for method, action, params, summary, responses, tags in _operations():
        operation: dict[str, Any] = {
            "operationId": f"{method}_{action.replace('-', '_')}_{len(params)}",
            "summary": summary,
            "responses": copy.deepcopy(responses),
        }
        all_tags = list(tags)
        if params and params[-1].startswith("ignored") and action not in ("new-participant",):
            all_tags.append("ignored-param")
        if all_tags:
            operation["tags"] = all_tags
        if params:
            operation["parameters"] = [_parameter(p) for p in params]
        if method in ("post", "put"):
            operation["security"] = [{"bearerAuth": []}, {}]
            operation["responses"]["401"] = copy.deepcopy(_UNAUTHORIZED)
        if action == "shutdown":
            operation[DESTRUCTIVE] = True
        paths.setdefault(_path(action, params), {})[method] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "xmanager study server",
            "version": "1",
            "description": (__doc__ or "").strip(),
        },
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Only when the server was started with an access token (`--token`, opt-in): "
                    "every POST and PUT must send `Authorization: Bearer <token>`.",
                }
            },
        },
    }


def openapi_page(server: Any) -> Response:
    """``GET /openapi.json``."""
    del server
    return Response(200, json.dumps(openapi_document(), indent=1), JSON)
