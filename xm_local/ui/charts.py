"""The dashboard's charts, built with plotly's Python API and sent as plotly JSON figures.

The pages draw them with ``Plotly.newPlot`` / ``Plotly.react``; no chart is drawn by code of ours. Large
experiments are sampled (at most :data:`MAX_POINTS` units, drawn at random), and the figure's title says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Optional

import plotly.graph_objects as go  # type: ignore[import-untyped]  # plotly ships no type information.
import plotly.io as pio  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]
from xmanager.xm_local.store.rows import UnitRow

__all__ = ["MAX_POINTS", "experiment_figures", "figure_json", "metric_figure", "warm_up"]

#: Most units the scatter shows (SVG markers: no WebGL, which a machine without a GPU draws slowly).
MAX_POINTS = 5000
#: Most units the parallel-coordinates view draws (plotly draws it with WebGL): an evenly spread part of the sample.
MAX_LINES = 1000
#: Most metrics a unit's chart shows (the first by name).
MAX_METRICS = 12
_STATUS_COLORS = {"completed": "#2ca02c", "failed": "#d62728", "cancelled": "#7f7f7f", "running": "#1f77b4",
                  "pending": "#ff7f0e", "pruned": "#9467bd"}
_LAYOUT = {"margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "template": "plotly_white"}


def figure_json(figure: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON (``data`` and ``layout``), through plotly's own encoder."""
    return dict(json.loads(pio.to_json(figure, validate=False)))


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _numeric_keys(values: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[str]:
    return [key for key in keys if any(_number(value.get(key)) is not None for value in values)]


def _categorical_keys(values: Sequence[dict[str, Any]], keys: Sequence[str], limit: int = 50) -> list[str]:
    """Keys whose values are not numbers and take few distinct values (a parallel-coordinates axis each)."""
    found = []
    for key in keys:
        seen = {json.dumps(value.get(key), sort_keys=True, default=str) for value in values if key in value}
        if seen and len(seen) <= limit and all(_number(value.get(key)) is None for value in values):
            found.append(key)
    return found


def experiment_figures(
    units: Sequence[UnitRow], total: int, arg_keys: Sequence[str], result_keys: Sequence[str],
    metric: Optional[str], x: Optional[str],
) -> dict[str, Any]:
    """A scatter of one arg against ``metric`` and a parallel-coordinates view of the args and ``metric``.

    ``units`` is the sample drawn from ``total`` units. ``metric`` (a results key) and ``x`` (an args key)
    default to the first numeric ones. Returns ``{"metric", "x", "metrics", "xs", "scatter", "parcoords"}``;
    a figure is None when there is nothing to draw.
    """
    args = [row.args or {} for row in units]
    results = [row.results or {} for row in units]
    metrics = _numeric_keys(results, result_keys)
    numeric_args = _numeric_keys(args, arg_keys)
    categories = _categorical_keys(args, [key for key in arg_keys if key not in numeric_args])
    xs = numeric_args + categories
    metric = metric if metric in metrics else (metrics[0] if metrics else None)
    x = x if x in xs else (xs[0] if xs else None)
    sampled = f" ({len(units):,} of {total:,} units, drawn at random)" if units and len(units) < total else ""
    answer: dict[str, Any] = {"metric": metric, "x": x, "metrics": metrics, "xs": xs, "scatter": None,
                              "parcoords": None}
    if metric is None or x is None:
        return answer
    ys = [_number(value.get(metric)) for value in results]
    points = [(row, value.get(x), y) for row, value, y in zip(units, args, ys)
              if y is not None and x in value]
    if points:
        scatter = go.Figure()
        for status in sorted({row.status for row, _, _ in points}):
            chosen = [(row, x_value, y) for row, x_value, y in points if row.status == status]
            scatter.add_trace(go.Scatter(
                x=[x_value if _number(x_value) is not None else json.dumps(x_value, default=str)
                   for _, x_value, _ in chosen],
                y=[y for _, _, y in chosen],
                customdata=[row.work_unit_id for row, _, _ in chosen],
                mode="markers", name=status, marker={"color": _STATUS_COLORS.get(status), "size": 6, "opacity": 0.7},
                hovertemplate=f"unit %{{customdata}}<br>{x}=%{{x}}<br>{metric}=%{{y}}<extra>{status}</extra>",
            ))
        scatter.update_layout(title=f"{metric} against {x}{sampled}", xaxis_title=x, yaxis_title=metric, **_LAYOUT)
        answer["scatter"] = figure_json(scatter)
    answer["parcoords"] = _parcoords(args, ys, numeric_args, categories, metric, sampled, total)
    return answer


def _parcoords(
    args: Sequence[dict[str, Any]], ys: Sequence[Optional[float]], numeric_args: Sequence[str],
    categories: Sequence[str], metric: str, sampled: str, total: int,
) -> Optional[dict[str, Any]]:
    keep = [index for index, y in enumerate(ys) if y is not None]
    if not keep:
        return None
    if len(keep) > MAX_LINES:
        keep = [keep[round(i * (len(keep) - 1) / (MAX_LINES - 1))] for i in range(MAX_LINES)]
        sampled = f" ({len(keep):,} of {total:,} units, drawn at random)"
    dimensions: list[dict[str, Any]] = []
    for key in numeric_args:
        values = [_number(args[index].get(key)) for index in keep]
        if all(value is None for value in values):
            continue
        dimensions.append({"label": key, "values": [math.nan if value is None else value for value in values]})
    for key in categories:
        texts = [json.dumps(args[index].get(key), default=str) if key in args[index] else "" for index in keep]
        levels = sorted(set(texts))
        codes = {text: code for code, text in enumerate(levels)}
        dimensions.append({"label": key, "values": [codes[text] for text in texts], "tickvals": list(range(len(levels))),
                           "ticktext": [text.strip('"') for text in levels]})
    values = [ys[index] for index in keep]
    dimensions.append({"label": metric, "values": values})
    figure = go.Figure(go.Parcoords(
        line={"color": values, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": {"text": metric}}},
        dimensions=dimensions,
    ))
    figure.update_layout(title=f"args and {metric}{sampled}", **_LAYOUT)
    return figure_json(figure)


def metric_figure(frame: Any) -> Optional[dict[str, Any]]:
    """One line plot per metric over steps, from a long-format DataFrame (``step``, ``name``, ``value``)."""
    if frame is None or len(frame) == 0:
        return None
    names = sorted(str(name) for name in frame["name"].unique())[:MAX_METRICS]
    figure = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names,
                           vertical_spacing=min(0.08, 0.3 / max(1, len(names))))
    for row, name in enumerate(names, start=1):
        part = frame[frame["name"] == name].sort_values("step")
        figure.add_trace(go.Scatter(x=part["step"].tolist(), y=part["value"].tolist(), mode="lines+markers",
                                    name=name, marker={"size": 4}), row=row, col=1)
    figure.update_xaxes(title_text="step", row=len(names), col=1)
    figure.update_layout(height=max(300, 220 * len(names)), showlegend=False, **_LAYOUT)
    return figure_json(figure)


def warm_up() -> None:
    """Builds a figure once, so that the first page asking for a chart does not pay for plotly's first use."""
    figure_json(go.Figure(go.Scatter(x=[0], y=[0])))
    figure_json(go.Figure(go.Parcoords(dimensions=[{"label": "a", "values": [0]}])))
    figure_json(make_subplots(rows=1, cols=1))
