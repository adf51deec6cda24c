"""The OpenAPI 3.0 description of the study server's ``/api/...`` endpoints, served at ``/openapi.json``.

The document is generated from the server's route table (:func:`openapi_document`): every documented
route of :mod:`.api` carries what it answers, and the paths, methods and path parameters are the routes'
own. The routes are experiment-server 0.3.9's: ``/api/<action>``, ``/api/<action>/<n>`` and
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

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from xmanager.xm_local.studyserver.responses import HTML, JSON, answer

__all__ = ["DESTRUCTIVE", "openapi_document", "openapi_page"]

DESTRUCTIVE = "x-destructive"
MAX_PARTICIPANT = 2**53

SCHEMAS: dict[str, Any] = {
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
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "Only when the server was started with an access token (`--token`, opt-in): "
        "every POST and PUT must send `Authorization: Bearer <token>`.",
    }
}
#: A guarded operation (POST, PUT): the bearer token when the server has one, else nothing.
GUARDED: tuple[dict[str, list[str]], ...] = ({"bearerAuth": []}, {})

ID_DESCRIPTIONS = {
    "pid": "Participant id: ASCII digits only (no sign). Ids with more than 15 digits are treated as unknown.",
    "bid": "Block id: ASCII digits only (no sign). Ids with more than 15 digits are treated as out of range.",
    "ignored": "Accepted (ASCII digits only, no sign) and ignored, as in experiment-server 0.3.9.",
    "ignored2": "Accepted (ASCII digits only, no sign) and ignored, as in experiment-server 0.3.9.",
}
INT_TEXT = {"type": "string", "pattern": "^-?[0-9]+$"}


def text(description: str, schema: dict[str, Any] | None = None, example: str | None = None) -> dict[str, Any]:
    """A text answer (``text/html; charset=UTF-8``)."""
    media: dict[str, Any] = {"schema": dict(schema or {"type": "string"})}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {HTML: media}}


def json_body(description: str, schema_name: str, example: Any = None) -> dict[str, Any]:
    """A JSON answer with one of :data:`SCHEMAS`."""
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {JSON: media}}


UNKNOWN = text(
    "Unknown participant, with the text `Participant with ID <pid> not known. Consider initializing new participant.`",
    {"type": "string", "pattern": "^Participant with ID [0-9]+ not known\\. Consider initializing new participant\\.$"},
)
UNAUTHORIZED = {
    "description": "The server has an access token and the request has no `Authorization: Bearer <token>` with it.",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
    "content": {HTML: {"schema": {"type": "string", "enum": ["unauthorized"]}}},
}
OUT_OF_RANGE = text(
    "Block id out of range, with the text `param should be >= 0 and < <blocks count>`.",
    {"type": "string", "pattern": "^param should be >= 0 and < [0-9]+$"},
)
NO_PARAM = text("No block id given.", {"type": "string", "enum": ["Need atleast one paramter."]})
NOT_ACTIVE = text(
    "Unknown participant (`Participant with ID <pid> not known. ...`), or the participant is not in a "
    "block (`participant <pid> not active. A call to `/move-to-next` must be made before calling "
    "`/config``; `<pid>` is `None` when no id is given).",
    {"type": "string", "pattern": "^(Participant with ID [0-9]+ not known|participant [0-9A-Za-z]+ not active)"},
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document, generated from the API's routes (a fresh dict on every call)."""
    from xmanager.xm_local.studyserver.api import api_routes
    from xmanager.xm_local.web.openapi import document

    return document(
        api_routes(None),
        title="xmanager study server",
        version="1",
        description=(__doc__ or "").strip(),
        components={"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    )


async def openapi_page(request: Request) -> Response:
    """``GET /openapi.json``."""
    del request
    return answer(200, json.dumps(openapi_document(), indent=1), JSON)
