"""The store's tables as row classes: one column list per table, read and written by name.

Each table's columns are the fields of its row class, in the table's order; fields marked
``_DERIVED`` are computed by a query, not stored. Columns holding JSON are marked ``_JSON``:
they are text in the database and in :data:`Chunk` columns, and decoded values in rows.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional, TypeVar

import attrs

_JSON = {"json": True}
_DERIVED = {"column": False}

#: A block of rows column by column: column name -> values (JSON columns as text).
Chunk = Mapping[str, Sequence[Any]]


@attrs.frozen
class ExperimentRow:
    """An ``experiments`` row, with its units counted per status."""

    experiment_id: int
    title: str
    tags: tuple[str, ...] = attrs.field(metadata=_JSON)
    notes: str
    creator: Optional[str]
    created_at: float
    launch_script: Optional[str]
    launch_argv: tuple[str, ...] = attrs.field(metadata=_JSON)
    #: When the experiment was cancelled (by any process): its launchers start none of its units.
    cancelled_at: Optional[float] = None
    #: When the experiment was archived (hidden from ``xmanager list``); None while it is not.
    archived_at: Optional[float] = None
    work_unit_count: int = attrs.field(default=0, metadata=_DERIVED)
    status_counts: Mapping[str, int] = attrs.field(factory=dict, metadata=_DERIVED)


@attrs.frozen
class UnitRow:
    """A ``work_units`` row: a unit's args, status, times and results; sweep columns for psets."""

    experiment_id: int
    work_unit_id: int
    args: dict[str, Any] = attrs.field(metadata=_JSON)
    status: str
    message: Optional[str]
    exit_code: Optional[int]
    host: Optional[str]
    created_at: float
    started_at: Optional[float]
    ended_at: Optional[float]
    results: Optional[dict[str, Any]] = attrs.field(metadata=_JSON)
    pset_hash: Optional[str] = None
    pset_id: Optional[str] = None
    run_id: Optional[str] = None
    run_seq: Optional[int] = None
    pset_seq: Optional[int] = None
    calc_dir: Optional[str] = None
    #: The process that launched the unit, as ``host pid start-ticks`` (None: run in-process, or
    #: recorded before schema v5): another process finds out from it whether the unit is still owned.
    launcher: Optional[str] = None


@attrs.frozen
class JobRow:
    """A ``jobs`` row; ``handle`` is the executor's handle as stored (``{"executor", "data"}``)."""

    experiment_id: int
    work_unit_id: int
    job_name: str
    executor: str
    executable: dict[str, Any] = attrs.field(metadata=_JSON)
    args: list[str] = attrs.field(metadata=_JSON)
    env: dict[str, str] = attrs.field(metadata=_JSON)
    handle: Optional[dict[str, Any]] = attrs.field(metadata=_JSON)
    status: str
    message: Optional[str]
    exit_code: Optional[int]
    host: Optional[str]
    stdout_path: Optional[str]
    stderr_path: Optional[str]
    started_at: Optional[float]
    ended_at: Optional[float]


@attrs.frozen
class StatusEventRow:
    """A ``status_events`` row: one job transition, kept as history."""

    experiment_id: int
    work_unit_id: int
    job_name: str
    status: str
    at: float
    message: Optional[str]


def _columns(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in attrs.fields(cls) if field.metadata.get("column", True))


def _json_columns(cls: type) -> frozenset[str]:
    return frozenset(field.name for field in attrs.fields(cls) if field.metadata.get("json"))


EXPERIMENT_COLUMNS = _columns(ExperimentRow)
UNIT_COLUMNS = _columns(UnitRow)
JOB_COLUMNS = _columns(JobRow)
EVENT_COLUMNS = _columns(StatusEventRow)
TAG_COLUMNS = ("experiment_id", "tag")
#: The sweep columns of ``work_units``: None for a unit that is not a pset of a sweep.
SWEEP_COLUMNS = UNIT_COLUMNS[UNIT_COLUMNS.index("pset_hash"):UNIT_COLUMNS.index("calc_dir") + 1]
JSON_COLUMNS = _json_columns(ExperimentRow) | _json_columns(UnitRow) | _json_columns(JobRow)


#: ``json.dumps(value, default=str)`` without building an encoder per call (a launch encodes five values a unit).
_ENCODER = json.JSONEncoder(default=str)


def encode(value: Any) -> str:
    """The JSON text of a JSON column (values JSON lacks are written as their ``str``)."""
    return _ENCODER.encode(value)


def decode_all(texts: Iterable[Optional[str]]) -> list[Any]:
    """Decodes a column of JSON texts (``None`` stays ``None``) in one parser call."""
    return json.loads("[" + ",".join("null" if text is None else text for text in texts) + "]")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """For bulk reads: without the cyclic garbage collector, which would walk every object made so
    far again and again (a third of the time of reading 100,000 units)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


RowT = TypeVar("RowT")


def rows_of(cls: type[RowT], chunk: Chunk) -> list[RowT]:
    """The chunk's rows as ``cls`` instances; the chunk holds at least ``cls``'s columns."""
    names = _columns(cls)
    json_names = _json_columns(cls)
    columns = [decode_all(chunk[name]) if name in json_names else chunk[name] for name in names]
    return [cls(*values) for values in zip(*columns)]


def chunk_of(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Sequence[Any]]:
    """Rows of a query selecting ``names`` (in that order) as a :data:`Chunk`."""
    if not rows:
        return {name: () for name in names}
    return dict(zip(names, zip(*rows)))
