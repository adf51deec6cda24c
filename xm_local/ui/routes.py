"""The dashboard's route table: three pages, their JSON API under ``/api/``, the static files.

Every ``GET`` only reads the store (a page of rows per request, filtered, sorted and paged in SQL by
:mod:`xmanager.xm_local.store.pages`). The only ``POST`` routes cancel an experiment or a unit, through
``LocalExperiment.cancel`` and ``LocalWorkUnit.stop``; with a token they need ``Authorization: Bearer
<token>``, and a request a browser sent from another site (its ``Origin`` is not this server) is refused.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import string
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from xmanager.xm import core
from xmanager.xm.status import TERMINAL_VALUES
from xmanager.xm_local.store import Store
from xmanager.xm_local.store.pages import experiment_page, unit_keys, unit_page, unit_sample
from xmanager.xm_local.ui import logs, metrics, params, views
from xmanager.xm_local.web.access import bearer_authorized

__all__ = ["Dashboard", "routes"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_STATIC = os.path.join(_HERE, "static")
_TEMPLATES = os.path.join(_HERE, "templates")
_CANCEL_MESSAGE = "cancelled from the dashboard"


class Dashboard:
    """What the routes share: the store, the access token, the log locator and the metrics reader."""

    def __init__(self, store: Store, token: Optional[str]) -> None:
        self.store = store
        self.token = token
        self.logs = logs.LogLocator()
        self.metrics = metrics.MetricsReader(store.url)

    def charts(self) -> Any:
        """:mod:`.charts` (plotly is imported on first use: starting the server does not wait for it)."""
        from xmanager.xm_local.ui import charts

        return charts

    def close(self) -> None:
        self.logs.close()


def _dashboard(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def _error(status: int, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _handled(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Bad query parameters are 400, unknown experiments and units 404, both as ``{"error": message}``."""

    def run(request: Request) -> Response:
        try:
            return endpoint(request)
        except params.BadRequest as error:
            return _error(400, str(error))
        except core.NotFoundError as error:
            return _error(404, str(error))

    run.__name__ = endpoint.__name__
    run.__doc__ = endpoint.__doc__
    return run


def _pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def _experiment_row(dashboard: Dashboard, experiment_id: int) -> Any:
    row = dashboard.store.get_experiment(experiment_id)
    if row is None:
        raise core.NotFoundError(f"no experiment {experiment_id}")
    return row


# ---- pages -----------------------------------------------------------------------------------------
def _page(name: str, title: str, **values: Any) -> HTMLResponse:
    """The page shell (``templates/page.html``); ``static/ui.js`` fills it from the API (and loads plotly.js
    once it draws a chart)."""
    with open(os.path.join(_TEMPLATES, "page.html"), encoding="utf-8") as handle:
        shell = string.Template(handle.read())
    data = json.dumps({"page": name, **values}).replace("<", "\\u003c")
    return HTMLResponse(shell.substitute(title=title, page=name, data=data))


def experiments_page(request: Request) -> Response:
    del request
    return _page("experiments", "Experiments")


def experiment_page_html(request: Request) -> Response:
    experiment_id = request.path_params["experiment_id"]
    return _page("experiment", f"Experiment {experiment_id}", experiment_id=experiment_id)


def unit_page_html(request: Request) -> Response:
    experiment_id, work_unit_id = request.path_params["experiment_id"], request.path_params["work_unit_id"]
    return _page("unit", f"Experiment {experiment_id}, unit {work_unit_id}", experiment_id=experiment_id,
                 work_unit_id=work_unit_id)


def plotly_js(request: Request) -> Response:
    """plotly.js from the installed ``plotly`` package (no CDN)."""
    del request
    return FileResponse(_plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def _plotly_js() -> str:
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise RuntimeError("plotly is not installed (pip install 'xmanager-launcher[ui]')")
    return os.path.join(os.path.dirname(spec.origin), "package_data", "plotly.min.js")


# ---- the API -----------------------------------------------------------------------------------------
def api_config(request: Request) -> Response:
    dashboard = _dashboard(request)
    return JSONResponse({"token_required": dashboard.token is not None, "metrics_available": metrics.available(),
                         "statuses": list(params.STATUSES)})


@_handled
def api_experiments(request: Request) -> Response:
    query = params.experiment_query(request.query_params)
    page = experiment_page(_dashboard(request).store, title=query.title, tag=query.tag, status=query.status,
                           since=query.since, until=query.until, offset=query.offset, limit=query.per_page,
                           include_archived=query.include_archived)
    return JSONResponse({
        "experiments": [views.experiment_json(row) for row in page.rows], "total": page.total,
        "page": query.page, "per_page": query.per_page, "pages": _pages(page.total, query.per_page),
    })


@_handled
def api_experiment(request: Request) -> Response:
    dashboard = _dashboard(request)
    row = _experiment_row(dashboard, request.path_params["experiment_id"])
    arg_keys, result_keys = unit_keys(dashboard.store, row.experiment_id)
    return JSONResponse({"experiment": views.experiment_json(row), "args": arg_keys, "results": result_keys})


def _merged(first: list[str], rows: list[dict[str, Any]]) -> list[str]:
    keys = dict.fromkeys(first)
    for value in rows:
        keys.update(dict.fromkeys(value))
    return list(keys)


@_handled
def api_units(request: Request) -> Response:
    dashboard = _dashboard(request)
    experiment_id = request.path_params["experiment_id"]
    query = params.unit_query(request.query_params)
    try:
        page = unit_page(dashboard.store, experiment_id, status=query.status, text=query.text,
                         conditions=query.conditions, order_by=query.order_by, descending=query.descending,
                         offset=query.offset, limit=query.per_page)
    except ValueError as error:
        raise params.BadRequest(str(error)) from None
    if page.total == 0:
        _experiment_row(dashboard, experiment_id)  # 404 for an unknown experiment.
    units = [views.unit_json(row) for row in page.rows]
    arg_keys, result_keys = unit_keys(dashboard.store, experiment_id, sample=50)
    return JSONResponse({
        "units": units, "total": page.total, "page": query.page, "per_page": query.per_page,
        "pages": _pages(page.total, query.per_page),
        "args": _merged(arg_keys, [unit["args"] for unit in units]),
        "results": _merged(result_keys, [unit["results"] for unit in units]),
    })


@_handled
def api_charts(request: Request) -> Response:
    dashboard = _dashboard(request)
    row = _experiment_row(dashboard, request.path_params["experiment_id"])
    charts = dashboard.charts()
    total = row.work_unit_count
    units = unit_sample(dashboard.store, row.experiment_id, charts.MAX_POINTS)
    arg_keys, result_keys = unit_keys(dashboard.store, row.experiment_id)
    figures = charts.experiment_figures(units, total, arg_keys, result_keys, request.query_params.get("metric"),
                                        request.query_params.get("x"))
    return JSONResponse(figures)


def _unit_row(dashboard: Dashboard, experiment_id: int, work_unit_id: int) -> Any:
    rows = dashboard.store.units(experiment_id, work_unit_id)
    if not rows:
        _experiment_row(dashboard, experiment_id)
        raise core.NotFoundError(f"experiment {experiment_id} has no work unit {work_unit_id}")
    return rows[0]


@_handled
def api_unit(request: Request) -> Response:
    dashboard = _dashboard(request)
    experiment_id, work_unit_id = request.path_params["experiment_id"], request.path_params["work_unit_id"]
    row = _unit_row(dashboard, experiment_id, work_unit_id)
    jobs = dashboard.store.jobs(experiment_id, work_unit_id)
    experiment = _experiment_row(dashboard, experiment_id)
    return JSONResponse({"unit": views.unit_json(row), "jobs": [views.job_json(job) for job in jobs],
                         "experiment": {"experiment_id": experiment_id, "title": experiment.title}})


@_handled
def api_logs(request: Request) -> Response:
    dashboard = _dashboard(request)
    experiment_id, work_unit_id = request.path_params["experiment_id"], request.path_params["work_unit_id"]
    stream = request.query_params.get("stream", "stdout")
    if stream not in ("stdout", "stderr"):
        raise params.BadRequest(f"stream must be stdout or stderr, got {stream!r}")
    offset_text = request.query_params.get("offset", "").strip()
    try:
        offset = int(offset_text) if offset_text else None
    except ValueError:
        raise params.BadRequest(f"offset must be a whole number, got {offset_text!r}") from None
    if offset is not None and offset < 0:
        raise params.BadRequest(f"offset must not be negative, got {offset}")
    jobs = dashboard.store.jobs(experiment_id, work_unit_id)
    if not jobs:  # Not launched yet, or run in-process (a sweep): no files.
        unit = _unit_row(dashboard, experiment_id, work_unit_id)
        return JSONResponse({**logs.read_from(None, offset), "active": unit.status in ("pending", "running")})
    name = request.query_params.get("job") or jobs[0].job_name
    job = next((job for job in jobs if job.job_name == name), None)
    if job is None:
        raise core.NotFoundError(f"work unit {work_unit_id} has no job {name!r}")
    files = dashboard.logs.files(job)
    answer = logs.read_from(getattr(files, stream), offset)
    answer["active"] = job.status not in TERMINAL_VALUES
    return JSONResponse(answer)


@_handled
def api_metrics(request: Request) -> Response:
    dashboard = _dashboard(request)
    experiment_id, work_unit_id = request.path_params["experiment_id"], request.path_params["work_unit_id"]
    _unit_row(dashboard, experiment_id, work_unit_id)
    if not metrics.available():
        return JSONResponse({"available": False, "figure": None, "points": 0,
                             "reason": "this xmanager records no metrics over steps (work_unit.metrics())"})
    frame = dashboard.metrics.unit_metrics(experiment_id, work_unit_id)
    figure = dashboard.charts().metric_figure(frame)
    return JSONResponse({"available": True, "figure": figure, "points": 0 if frame is None else len(frame)})


# ---- cancelling --------------------------------------------------------------------------------------
def _refusal(request: Request, token: Optional[str]) -> Optional[Response]:
    """Why a cancel request is refused (401: no or wrong token; 403: sent from another site), or None."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        return _error(403, f"cancel requests from another site ({origin}) are refused")
    if not bearer_authorized(request.scope, token):
        return _error(401, "cancelling needs the dashboard's access token (Authorization: Bearer TOKEN)",
                      {"WWW-Authenticate": 'Bearer realm="xmanager ui"'})
    return None


@_handled
def api_cancel_experiment(request: Request) -> Response:
    dashboard = _dashboard(request)
    refused = _refusal(request, dashboard.token)
    if refused is not None:
        return refused
    from xmanager.xm_local.experiment import get_experiment

    experiment = get_experiment(request.path_params["experiment_id"], database_url=dashboard.store.url)
    count = experiment.cancel(_CANCEL_MESSAGE)
    return JSONResponse({"cancelled": count})


@_handled
def api_cancel_unit(request: Request) -> Response:
    dashboard = _dashboard(request)
    refused = _refusal(request, dashboard.token)
    if refused is not None:
        return refused
    from xmanager.xm_local.experiment import get_experiment

    experiment_id, work_unit_id = request.path_params["experiment_id"], request.path_params["work_unit_id"]
    _unit_row(dashboard, experiment_id, work_unit_id)
    unit = get_experiment(experiment_id, database_url=dashboard.store.url).work_units[work_unit_id]
    active = unit.get_status().is_active
    if active:
        unit.stop(message=_CANCEL_MESSAGE)
    return JSONResponse({"cancelled": int(active)})


def routes() -> list[BaseRoute]:
    """The route table; endpoints find the :class:`Dashboard` as ``request.app.state.dashboard``."""
    unit = "/experiments/{experiment_id:int}/units/{work_unit_id:int}"
    return [
        Route("/", experiments_page),
        Route("/experiments/{experiment_id:int}", experiment_page_html),
        Route(unit, unit_page_html),
        Route("/api/config", api_config),
        Route("/api/experiments", api_experiments),
        Route("/api/experiments/{experiment_id:int}", api_experiment),
        Route("/api/experiments/{experiment_id:int}/units", api_units),
        Route("/api/experiments/{experiment_id:int}/charts", api_charts),
        Route("/api/experiments/{experiment_id:int}/cancel", api_cancel_experiment, methods=["POST"]),
        Route("/api" + unit, api_unit),
        Route("/api" + unit + "/logs", api_logs),
        Route("/api" + unit + "/metrics", api_metrics),
        Route("/api" + unit + "/cancel", api_cancel_unit, methods=["POST"]),
        Route("/static/plotly.min.js", plotly_js),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
