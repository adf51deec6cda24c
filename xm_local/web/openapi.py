"""An OpenAPI 3.0 document generated from a Starlette route table.

Each documented route's endpoint carries an :class:`Operation` as its ``openapi`` attribute (what the route
answers: summary, responses, tags, security, ``x-...`` extensions); the path, the method and the path
parameters come from the route itself (its ``path_format``, ``methods`` and ``param_convertors``), so the
document lists exactly the routes the server has. A path parameter's schema is its convertor's
``openapi_schema`` attribute, or the one for Starlette's built-in convertors. Routes whose endpoint has no
``Operation`` are left out (fallbacks, pages).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from starlette import convertors
from starlette.routing import BaseRoute, Route

__all__ = ["Operation", "document"]

_BUILTIN_SCHEMAS: dict[type, dict[str, Any]] = {
    convertors.StringConvertor: {"type": "string"},
    convertors.PathConvertor: {"type": "string"},
    convertors.IntegerConvertor: {"type": "integer", "minimum": 0},
    convertors.FloatConvertor: {"type": "number", "minimum": 0},
    convertors.UUIDConvertor: {"type": "string", "format": "uuid"},
}


@attrs.frozen
class Operation:
    """What one route answers, for its OpenAPI operation.

    ``parameters`` maps a path parameter's name to its description; ``extensions`` are ``x-...`` keys added
    to the operation as they are.
    """

    summary: str
    responses: Mapping[str, Any]
    operation_id: str | None = None
    tags: tuple[str, ...] = ()
    parameters: Mapping[str, str] = attrs.field(factory=dict)
    security: tuple[Mapping[str, list[str]], ...] | None = None
    extensions: Mapping[str, Any] = attrs.field(factory=dict)


def _parameter_schema(convertor: Any) -> dict[str, Any]:
    schema = getattr(convertor, "openapi_schema", None)
    if schema is None:
        schema = _BUILTIN_SCHEMAS.get(type(convertor), {"type": "string"})
    return dict(schema)


def _operation(route: Route, method: str, doc: Operation) -> dict[str, Any]:
    operation: dict[str, Any] = {}
    if doc.operation_id is not None:
        operation["operationId"] = doc.operation_id
    operation["summary"] = doc.summary
    operation["responses"] = copy.deepcopy(dict(doc.responses))
    if doc.tags:
        operation["tags"] = list(doc.tags)
    parameters = []
    for name, convertor in route.param_convertors.items():
        parameter: dict[str, Any] = {"name": name, "in": "path", "required": True}
        if name in doc.parameters:
            parameter["description"] = doc.parameters[name]
        parameter["schema"] = _parameter_schema(convertor)
        parameters.append(parameter)
    if parameters:
        operation["parameters"] = parameters
    if doc.security is not None:
        operation["security"] = [dict(requirement) for requirement in doc.security]
    operation.update(copy.deepcopy(dict(doc.extensions)))
    return operation


def document(
    routes: Iterable[BaseRoute],
    *,
    title: str,
    version: str,
    description: str = "",
    components: Mapping[str, Any] | None = None,
    openapi: str = "3.0.3",
) -> dict[str, Any]:
    """The OpenAPI document of the documented ``routes`` (a fresh dict on every call).

    A route answering several methods gives one operation per method (HEAD, which Starlette adds to GET
    routes, is left out).
    """
    paths: dict[str, Any] = {}
    for route in routes:
        doc = getattr(getattr(route, "endpoint", None), "openapi", None)
        if not isinstance(route, Route) or not isinstance(doc, Operation):
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD" and "GET" in (route.methods or ()):
                continue
            paths.setdefault(route.path_format, {})[method.lower()] = _operation(route, method, doc)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    result: dict[str, Any] = {"openapi": openapi, "info": info, "paths": paths}
    if components:
        result["components"] = copy.deepcopy(dict(components))
    return result
