"""The dashboard (``xmanager ui``): experiments, their units and each unit's logs and metrics in a browser.

A Starlette app served by uvicorn through :mod:`xmanager.xm_local.web` (the study server's stack), on the same
store the command line uses, SQLite or PostgreSQL. It only reads, except for one action: cancelling an
experiment or a unit (``LocalExperiment.cancel``, ``LocalWorkUnit.stop``).

* :mod:`.server`: :func:`serve`, the access rule (loopback by default; any other address needs a token, which
  cancelling then requires) and :func:`build_app`.
* :mod:`.routes`: the pages and the JSON API under ``/api/``; :mod:`.params` reads their query strings.
* :mod:`.views`: store rows as JSON; :mod:`.charts`: plotly figures; :mod:`.logs`: following log files;
  :mod:`.metrics`: a unit's metrics.
* ``templates/`` and ``static/``: the pages; plotly's JavaScript is served from the installed ``plotly``
  package (no CDN: the dashboard works offline).

Needs the ``ui`` extra (Starlette, uvicorn, plotly): ``pip install 'xmanager-launcher[ui]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xmanager.xm_local.ui.server import UiError, build_app, serve

__all__ = ["UiError", "build_app", "serve"]


def __getattr__(name: str) -> Any:
    """The server's names load on first use, so importing this package needs no web stack."""
    if name in __all__:
        from xmanager.xm_local.ui import server

        return getattr(server, name)
    raise AttributeError(name)
