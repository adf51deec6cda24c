"""Paged reads for browsing a store (the dashboard, ``xmanager ui``): one page of rows and the total, in SQL.

A page of experiments or of one experiment's units is a ``LIMIT``/``OFFSET`` query with its filters and order
in SQL, plus a ``COUNT(*)`` with the same filters, so a page costs the same with 100 or 100,000 rows. Units
sort and filter on their columns or on one key of their ``args`` or ``results`` JSON (SQLite's
``json_extract``, PostgreSQL's ``jsonb`` operators: numbers compare as numbers in both).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any, Generic, Literal, Optional, TypeVar

import attrs
from xmanager.xm_local.store import Store, _experiment_rows
from xmanager.xm_local.store import sql as _sql
from xmanager.xm_local.store.rows import UNIT_COLUMNS, ExperimentRow, UnitRow, chunk_of, decode_all, rows_of

__all__ = [
    "KeyCondition", "Page", "SORTABLE_UNIT_COLUMNS", "experiment_page", "unit_keys", "unit_page", "unit_sample",
]

RowT = TypeVar("RowT")

#: ``work_units`` columns a page of units may be sorted on (besides args and results keys); ``duration`` is
#: ``ended_at - started_at``.
SORTABLE_UNIT_COLUMNS = (
    "work_unit_id", "status", "exit_code", "host", "created_at", "started_at", "ended_at", "duration", "message",
)
_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
#: Ids per query when reading chosen units (the store reads up to 500 by primary key).
_IN_BATCH = 500
#: Most key conditions one page query takes.
MAX_CONDITIONS = 8


@attrs.frozen
class Page(Generic[RowT]):
    """One page of rows, and how many rows match the filters in all."""

    rows: list[RowT]
    total: int


@attrs.frozen
class KeyCondition:
    """``<source>.<key> <op> <value>``: a condition on one key of a unit's ``args`` or ``results``."""

    source: Literal["args", "results"]
    key: str
    op: str
    value: Any

    def __attrs_post_init__(self) -> None:
        if self.source not in ("args", "results"):
            raise ValueError(f"a key condition is on args or results, not {self.source!r}")
        if self.op not in _OPERATORS:
            raise ValueError(f"unknown operator {self.op!r} (one of {' '.join(_OPERATORS)})")


def _is_sqlite(store: Store) -> bool:
    return store.url.split(":", 1)[0].split("+", 1)[0] == "sqlite"


def _json_field(store: Store, column: str, name: str, key: str, params: dict[str, Any]) -> str:
    """The SQL value of ``column``'s key ``key`` (a bound parameter ``name``), comparable and sortable."""
    if _is_sqlite(store):
        params[name] = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"json_extract({column}, :{name})"
    params[name] = key
    return f"(CAST({column} AS jsonb) -> :{name})"


def _json_value(store: Store, value: Any) -> Any:
    """A value compared with a :func:`_json_field` (PostgreSQL compares ``jsonb`` with ``jsonb``)."""
    if _is_sqlite(store):
        return value
    return json.dumps(value)


def experiment_page(
    store: Store,
    *,
    title: Optional[str] = None,
    tag: Optional[str] = None,
    status: Optional[str] = None,
    since: Optional[float] = None,
    until: Optional[float] = None,
    offset: int = 0,
    limit: int = 50,
    include_archived: bool = False,
) -> Page[ExperimentRow]:
    """Experiments newest first, ``limit`` from ``offset``, with their unit counts per status: three queries.

    ``title`` matches a substring (``*`` as wildcard), ``tag`` exactly, ``status`` keeps experiments with at
    least one unit of that status, ``since``/``until`` bound the creation time (epoch seconds); archived
    experiments are left out unless ``include_archived``.
    """
    where, params = _sql.experiment_filter(title=title, tag=tag, status=status, since=since, until=until,
                                           archived=None if include_archived else False)
    selection = (" WHERE " + " AND ".join(where)) if where else ""
    order = " ORDER BY e.created_at DESC, e.experiment_id DESC"
    page = f" LIMIT {max(0, int(limit))} OFFSET {max(0, int(offset))}"
    with store._lock:
        total = int(store._conn.query("SELECT COUNT(*) FROM experiments e" + selection, params)[0][0])
        rows = store._conn.query(_sql.SELECT_EXPERIMENTS + selection + order + page, params)
        counts: list[tuple[Any, ...]] = []
        if rows:
            ids = {f"x{index}": row[0] for index, row in enumerate(rows)}
            counts = store._conn.query(
                f"{_sql.COUNT_UNITS} WHERE experiment_id IN ({', '.join(':' + name for name in ids)}) "
                "GROUP BY experiment_id, status", ids)
    by_experiment: dict[int, dict[str, int]] = {}
    for experiment_id, unit_status, count in counts:
        by_experiment.setdefault(experiment_id, {})[unit_status] = count
    return Page(_experiment_rows(rows, by_experiment), total)


def unit_page(
    store: Store,
    experiment_id: int,
    *,
    status: Optional[str] = None,
    text: Optional[str] = None,
    conditions: Sequence[KeyCondition] = (),
    order_by: str | tuple[str, str] = "work_unit_id",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> Page[UnitRow]:
    """One page of an experiment's units and how many match: two queries.

    ``status`` keeps units of that status, ``text`` those whose args, results, host or message contain it (any
    case), each of ``conditions`` compares one args/results key. ``order_by`` is one of
    :data:`SORTABLE_UNIT_COLUMNS` or ``("args" | "results", key)``; ties (and units without the key, last) go
    by id.
    """
    where = ["experiment_id = :experiment_id", "work_unit_id >= 0"]
    params: dict[str, Any] = {"experiment_id": experiment_id}
    if status:
        where.append("status = :status")
        params["status"] = status
    if text:
        params["text"] = _sql.like_pattern(text)
        where.append("(" + " OR ".join(f"LOWER(COALESCE({column}, '')) LIKE :text ESCAPE '\\'"
                                       for column in ("args", "results", "host", "message")) + ")")
    if len(conditions) > MAX_CONDITIONS:
        raise ValueError(f"at most {MAX_CONDITIONS} key conditions")
    for index, condition in enumerate(conditions):
        field = _json_field(store, condition.source, f"k{index}", condition.key, params)
        params[f"v{index}"] = _json_value(store, condition.value)
        operator = "<>" if condition.op == "!=" else condition.op
        where.append(f"{field} {operator} :v{index}")
    if isinstance(order_by, tuple):
        source, key = order_by
        if source not in ("args", "results"):
            raise ValueError(f"units sort on args or results keys, not {source!r}")
        expression = _json_field(store, source, "order_key", key, params)
    elif order_by == "duration":
        expression = "(ended_at - started_at)"
    elif order_by in SORTABLE_UNIT_COLUMNS:
        expression = order_by
    else:
        raise ValueError(f"units do not sort on {order_by!r} (one of {', '.join(SORTABLE_UNIT_COLUMNS)})")
    direction = "DESC" if descending else "ASC"
    order = f" ORDER BY {expression} {direction} NULLS LAST"
    if expression != "work_unit_id":
        order += f", work_unit_id {direction}"
    selection = " WHERE " + " AND ".join(where)
    page = f" LIMIT {max(0, int(limit))} OFFSET {max(0, int(offset))}"
    with store._lock:
        total = int(store._conn.query("SELECT COUNT(*) FROM work_units" + selection, params)[0][0])
        rows = store._conn.query(_sql.select("work_units", UNIT_COLUMNS) + selection + order + page, params)
    return Page(rows_of(UnitRow, chunk_of(UNIT_COLUMNS, rows)), total)


def unit_keys(store: Store, experiment_id: int, sample: int = 500) -> tuple[list[str], list[str]]:
    """The args keys and results keys of an experiment's first ``sample`` units, in first-seen order."""
    statement = ("SELECT args, results FROM work_units WHERE experiment_id = :experiment_id AND work_unit_id >= 0 "
                 f"ORDER BY work_unit_id LIMIT {max(0, int(sample))}")
    rows = store._query(statement, {"experiment_id": experiment_id})
    args: dict[str, None] = {}
    results: dict[str, None] = {}
    for values, target in ((decode_all(row[0] for row in rows), args), (decode_all(row[1] for row in rows), results)):
        for value in values:
            if isinstance(value, dict):
                target.update(dict.fromkeys(value))
    return list(args), list(results)


def unit_sample(store: Store, experiment_id: int, limit: int) -> list[UnitRow]:
    """At most ``limit`` of an experiment's units, in id order: all of them, or a random sample that is the same
    at every call (seeded by the experiment's id; random, so that a grid's period cannot alias it)."""
    statement = "SELECT work_unit_id FROM work_units WHERE experiment_id = :experiment_id AND work_unit_id >= 0"
    ids = [row[0] for row in store._query(statement, {"experiment_id": experiment_id})]
    if len(ids) <= limit:
        return [row for chunk in store.unit_chunks(experiment_id) for row in rows_of(UnitRow, chunk)]
    chosen = sorted(random.Random(experiment_id).sample(ids, limit))
    rows: list[UnitRow] = []
    for start in range(0, len(chosen), _IN_BATCH):  # By primary key, a batch of ids at a time.
        batch = chosen[start:start + _IN_BATCH]
        rows.extend(row for chunk in store.unit_chunks(experiment_id, batch) for row in rows_of(UnitRow, chunk))
    return rows
