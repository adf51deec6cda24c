"""The dashboard's query strings, read into typed requests; a bad value is a :class:`BadRequest` (HTTP 400).

Experiments: ``title``, ``tag``, ``status``, ``since`` and ``until`` (``YYYY-MM-DD`` local dates, or epoch
seconds; ``until`` includes its day), ``page`` (from 1), ``per_page``. Units: ``status``, ``q`` (text in args,
results, host or message), ``where`` (``;``-separated conditions such as ``lr>=0.01;opt=adam`` on args keys,
or ``results.loss<0.5``), ``sort`` (a column, ``args.KEY`` or ``results.KEY``), ``order`` (``asc``/``desc``),
``page``, ``per_page``.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Any, Optional

import attrs
from xmanager.xm.status import Status
from xmanager.xm_local.store.pages import MAX_CONDITIONS, SORTABLE_UNIT_COLUMNS, KeyCondition

__all__ = ["BadRequest", "ExperimentQuery", "UnitQuery", "experiment_query", "unit_query"]

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50
STATUSES = tuple(status.value for status in Status)
_CONDITION = re.compile(r"^\s*([^<>=!]+?)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$")


class BadRequest(ValueError):  # noqa: N818 - named after the HTTP answer it becomes
    """A query parameter the dashboard cannot use; the message names it."""


@attrs.frozen
class ExperimentQuery:
    title: Optional[str]
    tag: Optional[str]
    status: Optional[str]
    since: Optional[float]
    until: Optional[float]
    page: int
    per_page: int
    #: Archived experiments are listed too (``?archived=1``); hidden by default, as in ``xmanager list``.
    include_archived: bool = False

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@attrs.frozen
class UnitQuery:
    status: Optional[str]
    text: Optional[str]
    conditions: tuple[KeyCondition, ...]
    order_by: str | tuple[str, str]
    descending: bool
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def _text(params: Mapping[str, str], name: str) -> Optional[str]:
    value = params.get(name, "").strip()
    return value or None


def _number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}, got {value}")
    return value


def _status(params: Mapping[str, str]) -> Optional[str]:
    status = _text(params, "status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return status


def _time(params: Mapping[str, str], name: str, end_of_day: bool) -> Optional[float]:
    text = _text(params, name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD) or epoch seconds, got {text!r}") from None
    if end_of_day:
        day += datetime.timedelta(days=1)
    return datetime.datetime.combine(day, datetime.time()).timestamp()  # Local midnight.


def experiment_query(params: Mapping[str, str]) -> ExperimentQuery:
    return ExperimentQuery(
        title=_text(params, "title"),
        tag=_text(params, "tag"),
        status=_status(params),
        since=_time(params, "since", end_of_day=False),
        until=_time(params, "until", end_of_day=True),
        page=_number(params, "page", 1, 1, 10**9),
        per_page=_number(params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
        include_archived=params.get("archived", "") in ("1", "true", "yes"),
    )


def _key(text: str) -> tuple[str, str]:
    """``results.loss`` -> ("results", "loss"); ``lr`` or ``args.lr`` -> ("args", "lr")."""
    for source in ("args", "results"):
        if text.startswith(source + "."):
            key = text[len(source) + 1:]
            if key:
                return source, key
    return "args", text


def _value(text: str) -> Any:
    """A condition's value: JSON when it parses as a number, boolean or null, else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def _conditions(text: Optional[str]) -> tuple[KeyCondition, ...]:
    if text is None:
        return ()
    conditions = []
    for part in text.split(";"):
        if not part.strip():
            continue
        match = _CONDITION.match(part)
        if match is None:
            raise BadRequest(f"where: {part.strip()!r} is not KEY OP VALUE (OP one of = != < <= > >=)")
        name, op, value = match.groups()
        source, key = _key(name)
        conditions.append(KeyCondition(source, key, op, _value(value)))  # type: ignore[arg-type]
    if len(conditions) > MAX_CONDITIONS:
        raise BadRequest(f"where: at most {MAX_CONDITIONS} conditions")
    return tuple(conditions)


def _order(text: Optional[str]) -> str | tuple[str, str]:
    if text is None:
        return "work_unit_id"
    if text in SORTABLE_UNIT_COLUMNS:
        return text
    if text.startswith(("args.", "results.")) and "." in text and text.split(".", 1)[1]:
        return _key(text)
    raise BadRequest(f"sort must be one of {', '.join(SORTABLE_UNIT_COLUMNS)}, args.KEY or results.KEY, got {text!r}")


def unit_query(params: Mapping[str, str]) -> UnitQuery:
    order = _text(params, "order") or "asc"
    if order not in ("asc", "desc"):
        raise BadRequest(f"order must be asc or desc, got {order!r}")
    return UnitQuery(
        status=_status(params),
        text=_text(params, "q"),
        conditions=_conditions(_text(params, "where")),
        order_by=_order(_text(params, "sort")),
        descending=order == "desc",
        page=_number(params, "page", 1, 1, 10**9),
        per_page=_number(params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
    )
