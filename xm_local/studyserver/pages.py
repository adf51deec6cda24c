"""What the study server serves outside ``/api/``: the web UI and the OpenAPI description.

Each page is a function of the running server returning a ``Response``; modules load on
first request, so a server used only through its API never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional


def page_for(path: str) -> Optional[Callable[[Any], Any]]:
    if path in ("/", "/index", "/index.html"):
        from xmanager.xm_local.studyserver.webui import index_page

        return index_page
    if path == "/openapi.json":
        from xmanager.xm_local.studyserver.openapi import openapi_page

        return openapi_page
    return None
