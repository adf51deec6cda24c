"""What the study server serves outside ``/api/``: the web UI and the OpenAPI description.

Any other path is a static file in 0.3.9 (it has none we serve): GET and HEAD answer Tornado's 404 page, any
other method 405. The pages' modules load on first request, so a server used only through its API never
imports them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from xmanager.xm_local.studyserver.responses import tornado_page

__all__ = ["page_routes"]


async def _index(request: Request) -> Response:
    from xmanager.xm_local.studyserver.webui import index_page

    return index_page(request.app.state.study)


async def _openapi(request: Request) -> Response:
    from xmanager.xm_local.studyserver.openapi import openapi_page

    return await openapi_page(request)


async def _no_such_file(request: Request) -> Response:
    del request
    return tornado_page(404)


def page_routes() -> list[BaseRoute]:
    """The pages (GET and HEAD), then every other path: 404 to GET and HEAD (405 to other methods)."""
    return [
        Route("/", _index),
        Route("/index", _index),
        Route("/index.html", _index),
        Route("/openapi.json", _openapi),
        Route("/{path:path}", _no_such_file),
    ]
