"""The HTTP stack the control plane's web servers share: Starlette apps served by uvicorn.

* :mod:`.access`: who may reach a server (loopback or not) and the bearer-token check.
* :mod:`.runner`: :class:`WebServer`, one uvicorn server in this process: binds first (so port 0 is the real
  port before anything is served), reports the URLs it listens on, stops cleanly on SIGTERM/SIGINT or when
  asked from a request.
* :mod:`.middleware`: routing on the path as sent, and one access-log line per request.
* :mod:`.openapi`: an OpenAPI 3.0 document generated from a Starlette route table.

Nothing here knows what it serves; the study server (:mod:`xmanager.xm_local.studyserver`) is one user.
Starlette and uvicorn are imported here, so import this package only where a server runs.
"""

try:
    import starlette  # noqa: F401 - checked here, so a missing one is named with its remedy
    import uvicorn  # noqa: F401
except ImportError as error:  # pragma: no cover - only without the extra
    raise ImportError(
        f"{error.name} is not installed: the web servers need Starlette and uvicorn, which their extras install "
        "(the study server: pip install 'xmanager-launcher[study]')",
        name=error.name,
    ) from error
