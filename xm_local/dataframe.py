"""An experiment as a pandas DataFrame: one row per work unit.

Columns: the unit's args, then its results, then reserved ``_``-prefixed columns
(psweep style): ``_experiment_id``, ``_work_unit_id``, ``_status``, ``_exit_code``,
``_message``, ``_exec_host``, ``_time_utc`` (start), ``_end_utc`` and
``_pset_runtime`` (seconds). Units that are psets of a sweep also get psweep's
book-keeping columns ``_pset_id``, ``_pset_hash``, ``_run_id``, ``_pset_seq``,
``_run_seq`` (and ``_calc_dir`` when the sweep ran in one). After them, one column per metric
reported over time (``xm.report(step=...)``): each unit's last value by step (NaN where it has
none); a result of the same name wins, and a metric named like an arg or a reserved column is
``metric_<name>``.

Built from the store's one read path for units (``Store.unit_chunks``), block by block: plain
numbers go into NumPy arrays as they are read and repeated strings are shared, so a million
units need about the DataFrame's own size again rather than a Python object per value. Values
that are not plain numbers stay Python objects, and pandas types their column as it always did.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, Union

import attrs
from xmanager.xm_local.store import Store
from xmanager.xm_local.store.rows import Chunk, collector_paused, decode_all

SWEEP_RESERVED = ("_pset_id", "_pset_hash", "_run_id", "_pset_seq", "_run_seq", "_calc_dir")
RESERVED = (
    "_experiment_id", "_work_unit_id", "_status", "_exit_code", "_message",
    "_exec_host", "_time_utc", "_end_utc", "_pset_runtime",
)
#: The ``work_units`` column each reserved column shows, and how it is kept while reading:
#: ``int`` (int64), ``float`` (float64, NaN for NULL), ``Int64`` (pandas' nullable ints), ``text``
#: (strings, repeats shared), ``unique`` (strings that seldom repeat); ``sweep Int64`` like ``Int64``
#: but only filled when the units are psets.
_SOURCES = {
    "_experiment_id": ("experiment_id", "int"), "_work_unit_id": ("work_unit_id", "int"),
    "_status": ("status", "text"), "_exit_code": ("exit_code", "Int64"), "_message": ("message", "text"),
    "_exec_host": ("host", "text"), "_time_utc": ("started_at", "float"), "_end_utc": ("ended_at", "float"),
    "_pset_id": ("pset_id", "unique"), "_pset_hash": ("pset_hash", "unique"), "_run_id": ("run_id", "text"),
    "_pset_seq": ("pset_seq", "sweep Int64"), "_run_seq": ("run_seq", "sweep Int64"), "_calc_dir": ("calc_dir", "text"),
}


def experiment_dataframe(store: Store, experiment_id: int, expected_rows: int = 0) -> Any:
    """The experiment's DataFrame; ``expected_rows`` (the units it had when last counted) sizes the arrays."""
    import pandas as pd

    args, results = _DictColumns(), _DictColumns()
    stored = _StoredColumns(experiment_id, expected_rows)
    with collector_paused():
        for chunk in store.unit_chunks(experiment_id, columns=("args", "results", *stored.sources)):
            args.add(decode_all(chunk["args"]))
            results.add([{} if item is None else item for item in decode_all(chunk["results"])])
            stored.add(chunk)
    reserved: dict[str, Any] = {}
    if stored.has_values("pset_hash"):
        for name in SWEEP_RESERVED:
            if name != "_calc_dir" or stored.has_values("calc_dir"):
                reserved[name] = stored.column(name)
    for name in RESERVED:
        reserved[name] = stored.column(name)
    data: dict[str, Any] = {}
    result_keys: set[str] = set()
    for source in (args, results):
        for key, values in source.columns():
            if source is results:
                result_keys.add(key)
            data[key if key not in data and key not in reserved else f"result_{key}"] = values
    data.update(reserved)
    last = store.last_metrics(experiment_id)
    if last["work_unit_id"]:
        _add_metric_columns(data, last, result_keys, stored.column("_work_unit_id"))
    return pd.DataFrame(data, copy=False)


def _add_metric_columns(data: dict[str, Any], last: Chunk, result_keys: set[str], unit_ids: Any) -> None:
    """One float column per metric name (in name order), each unit's last value, NaN where it has none.

    A result of the same name wins (no column); a metric named like an arg or a reserved column is
    ``metric_<name>``."""
    import numpy as np
    import pandas as pd

    unit_ids = np.asarray(unit_ids, dtype=np.int64)
    ids = np.array(last["work_unit_id"], dtype=np.int64)
    values = np.array(last["value"], dtype=np.float64)  # None (a NaN point) becomes NaN.
    codes, names = pd.factorize(np.array(last["name"], dtype=object), sort=True)
    rows = np.searchsorted(unit_ids, ids)
    found = rows < len(unit_ids)
    found[found] = unit_ids[rows[found]] == ids[found]  # Units added since the frame's rows were read: none.
    order = np.argsort(codes, kind="stable")  # The points of each name together, in one pass.
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for code, name in enumerate(names):
        if name in result_keys:
            continue
        picked = order[bounds[code]:bounds[code + 1]]
        picked = picked[found[picked]]
        column = np.full(len(unit_ids), np.nan)
        column[rows[picked]] = values[picked]
        label = name if name not in data else f"metric_{name}"
        if label not in data:
            data[label] = column


class _Filling:
    """A NumPy column filled block by block: sized for the expected rows, doubled if more come."""

    def __init__(self, dtype: Any, expected: int) -> None:
        import numpy as np

        self._data = np.empty(max(expected, 1), dtype=dtype)
        self.size = 0

    def extend(self, values: Any) -> None:
        import numpy as np

        end = self.size + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype=self._data.dtype)
            grown[:self.size] = self._data[:self.size]
            self._data = grown
        self._data[self.size:end] = values
        self.size = end

    def array(self) -> Any:
        return self._data[:self.size]


class _StoredColumns:
    """The stored columns behind the reserved ones, filled block by block into their final arrays."""

    def __init__(self, experiment_id: int, expected_rows: int) -> None:
        import numpy as np

        self._experiment_id = experiment_id
        self._kinds = dict(source for name, source in _SOURCES.items() if name != "_experiment_id")
        #: The ``work_units`` columns to read (the experiment id is known).
        self.sources = tuple(self._kinds)
        dtypes = {"int": np.int64, "float": np.float64, "Int64": np.int64}
        self._arrays = {source: _Filling(dtypes[kind], expected_rows) for source, kind in self._kinds.items()
                        if kind in dtypes}
        self._gaps = {source: _Filling(bool, expected_rows) for source, kind in self._kinds.items() if kind == "Int64"}
        self._blocks: dict[str, list[_Block]] = {
            source: [] for source, kind in self._kinds.items() if kind not in dtypes
        }
        self.rows = 0

    def add(self, chunk: Chunk) -> None:
        import numpy as np
        import pandas as pd

        for source, array in self._arrays.items():
            values = chunk[source]
            if source in self._gaps:  # Nullable ints: the values, 0 where NULL, and where.
                numbers = _Numbers.of(values, np.int64)
                self._gaps[source].extend(numbers.gaps)
                values = numbers.values
            array.extend(values)  # For floats, NULL becomes NaN.
        for source, blocks in self._blocks.items():
            values = chunk[source]
            if values.count(None) == len(values):  # E.g. the sweep columns of units that are not psets.
                blocks.append(_Nones(len(values)))
            elif self._kinds[source] == "sweep Int64":
                blocks.append(_Numbers.of(values, np.int64))
            else:  # Text: typed now, a block at a time (all at once, pandas would take a lot more memory).
                blocks.append(pd.array(list(values), dtype=_text_dtype()))
        self.rows += len(chunk["work_unit_id"])

    def has_values(self, source: str) -> bool:
        return not all(isinstance(block, _Nones) for block in self._blocks[source])

    def column(self, name: str) -> Any:
        """The reserved column ``name``, typed as pandas always typed it (lists where there are no units)."""
        import numpy as np
        import pandas as pd

        if name == "_pset_runtime":
            return self._arrays["ended_at"].array() - self._arrays["started_at"].array()
        if name == "_experiment_id":
            return np.full(self.rows, self._experiment_id, dtype=np.int64) if self.rows else []
        source, kind = _SOURCES[name]
        if name in ("_time_utc", "_end_utc"):
            return _utc_times(self._arrays[source].array())
        if kind == "Int64":
            return pd.arrays.IntegerArray(self._arrays[source].array(), self._gaps[source].array())
        if kind == "int":
            return self._arrays[source].array() if self.rows else []
        blocks = self._blocks.pop(source)
        if kind == "sweep Int64":
            if not blocks:
                return pd.array([], dtype="Int64")
            numbers = [block if isinstance(block, _Numbers) else _Numbers.of((None,) * len(block), np.int64)
                       for block in blocks]
            return pd.arrays.IntegerArray(np.concatenate([block.values for block in numbers]),
                                          np.concatenate([block.gaps for block in numbers]))
        if all(isinstance(block, _Nones) for block in blocks):
            return _typed([None] * self.rows)  # No text at all: pandas makes objects of the Nones.
        parts = [pd.array([None] * b.count, dtype=_text_dtype()) if isinstance(b, _Nones) else b for b in blocks]
        return pd.concat([pd.Series(part, copy=False) for part in parts], ignore_index=True)


def _utc_times(seconds: Any) -> Any:
    """``pd.to_datetime(seconds, unit="s", utc=True)``, a slice at a time: on a million values at once its
    temporaries would take as much memory again as the whole DataFrame. (pandas picks the resolution
    from the values; should slices differ, the whole array is converted at once after all.)"""
    import numpy as np
    import pandas as pd

    def convert(part: Any) -> Any:
        return pd.to_datetime(pd.Series(part, dtype="float64"), unit="s", utc=True)

    first = convert(seconds[:_TIME_SLICE])
    if len(seconds) <= _TIME_SLICE:
        return first
    times: np.ndarray[Any, np.dtype[np.datetime64]] = np.empty(len(seconds), dtype=first.dtype.base)
    for start in range(0, len(seconds), _TIME_SLICE):
        part = first if start == 0 else convert(seconds[start:start + _TIME_SLICE])
        if part.dtype != first.dtype:
            return convert(seconds)
        times[start:start + _TIME_SLICE] = part.dt.tz_localize(None).to_numpy()
    return pd.Series(times).dt.tz_localize("UTC")


_TIME_SLICE = 65_536


@attrs.frozen
class _Numbers:
    """One block of plain numbers (int64 or float64), and the rows where it had None (or None)."""

    values: Any
    gaps: Any = None

    @classmethod
    def of(cls, values: Sequence[Any], dtype: Any) -> _Numbers:
        """``values`` (numbers of ``dtype``'s kind, or None), with every row's gap flag."""
        import numpy as np

        missing = values.count(None)
        if not missing:
            return cls(np.array(values, dtype=dtype), np.zeros(len(values), dtype=bool))
        if missing == len(values):
            return cls(np.zeros(len(values), dtype=dtype), np.ones(len(values), dtype=bool))
        gaps = np.fromiter((value is None for value in values), dtype=bool, count=len(values))
        return cls(np.array([0 if value is None else value for value in values], dtype=dtype), gaps)


@attrs.frozen
class _Nones:
    """A run of missing values."""

    count: int

    def __len__(self) -> int:
        return self.count


_Block = Union[_Numbers, _Nones, list[Any]]


def _pack(values: Sequence[Any]) -> _Block:
    """One block of an args or results column, kept compact where it can be given back exactly."""
    import numpy as np

    kinds = set(map(type, values))
    with_none = type(None) in kinds
    kinds.discard(type(None))
    if not kinds:
        return _Nones(len(values))
    if kinds == {int} or kinds == {float}:
        dtype = np.int64 if kinds == {int} else np.float64
        try:
            return _Numbers.of(values, dtype) if with_none else _Numbers(np.array(values, dtype=dtype))
        except OverflowError:  # Beyond int64: pandas decides.
            pass
    return list(values)


def _unpack(blocks: list[_Block], rows: int) -> Any:
    """A whole column: an array where pandas would make numbers of the values, else the values."""
    import numpy as np

    numbers = [block for block in blocks if isinstance(block, _Numbers)]
    if numbers and all(isinstance(block, (_Numbers, _Nones)) for block in blocks):
        if len(numbers) == len(blocks) and all(b.values.dtype == np.int64 and b.gaps is None for b in numbers):
            return np.concatenate([block.values for block in numbers])
        column = np.full(rows, np.nan)  # With floats or gaps, pandas makes floats of ints too.
        start = 0
        for block in blocks:
            if isinstance(block, _Numbers):
                end = start + len(block.values)
                column[start:end] = block.values
                if block.gaps is not None:
                    column[start:end][block.gaps] = np.nan
                start = end
            else:
                start += len(block)
        return column
    values: list[Any] = []
    for block in blocks:
        if isinstance(block, _Nones):
            values.extend([None] * block.count)
        elif isinstance(block, _Numbers):
            restored = block.values.tolist()
            if block.gaps is not None:
                restored = [None if gap else value for value, gap in zip(restored, block.gaps.tolist())]
            values.extend(restored)
        else:
            values.extend(block)
    return values


@functools.cache
def _text_dtype() -> Any:
    """The dtype pandas gives a column of strings (and missing values)."""
    import pandas as pd

    return pd.Series(["text"]).dtype


def _typed(values: Any) -> Any:
    """A list of values as the column pandas makes of it, now, so that the list can go (arrays stay)."""
    import pandas as pd

    return pd.Series(values) if isinstance(values, list) and values else values


class _DictColumns:
    """Columns of a stream of dicts: keys in first-seen order, None where a dict lacks the key."""

    def __init__(self) -> None:
        self._blocks: dict[str, list[_Block]] = {}
        self.rows = 0

    def add(self, dicts: list[dict[str, Any]]) -> None:
        first = tuple(dicts[0]) if dicts else ()
        if all(map(first.__eq__, map(tuple, dicts))):  # The usual case: the same keys in the same order.
            by_key: dict[str, Sequence[Any]] = dict(zip(first, zip(*(item.values() for item in dicts))))
        else:
            keys: dict[str, None] = {}
            for item in dicts:
                keys.update(dict.fromkeys(item))
            by_key = {key: [item.get(key) for item in dicts] for key in keys}
        for key, values in by_key.items():
            blocks = self._blocks.get(key)
            if blocks is None:
                blocks = self._blocks[key] = [_Nones(self.rows)] if self.rows else []
            blocks.append(_pack(values))
        for key, blocks in self._blocks.items():
            if key not in by_key:
                blocks.append(_Nones(len(dicts)))
        self.rows += len(dicts)

    def columns(self) -> Iterator[tuple[str, Any]]:
        """Each column once, its blocks released as it is built."""
        for key in list(self._blocks):
            yield key, _typed(_unpack(self._blocks.pop(key), self.rows))


#: The columns of :func:`metrics_dataframe`, in order.
METRICS_COLUMNS = ("work_unit_id", "step", "time", "name", "value")


def metrics_dataframe(store: Store, experiment_id: int, work_unit_id: Any = None) -> Any:
    """The experiment's metrics points (or one unit's) in long format, sorted by unit, name and step:
    ``work_unit_id`` and ``step`` (int64), ``time`` (wall-clock seconds since the epoch, float64),
    ``name`` (text) and ``value`` (float64; NaN where the job reported NaN)."""
    import numpy as np
    import pandas as pd

    units: list[Any] = []
    steps: list[Any] = []
    times: list[Any] = []
    names: list[Any] = []
    values: list[Any] = []
    with collector_paused():
        for chunk in store.metric_chunks(experiment_id, work_unit_id):
            if not chunk["work_unit_id"]:
                continue
            units.append(np.array(chunk["work_unit_id"], dtype=np.int64))
            steps.append(np.array(chunk["step"], dtype=np.int64))
            times.append(np.array(chunk["at"], dtype=np.float64))
            names.append(pd.array(list(chunk["name"]), dtype=_text_dtype()))
            values.append(np.array(chunk["value"], dtype=np.float64))  # None becomes NaN.
    if not units:
        return pd.DataFrame({
            "work_unit_id": np.empty(0, np.int64), "step": np.empty(0, np.int64), "time": np.empty(0, np.float64),
            "name": pd.array([], dtype=_text_dtype()), "value": np.empty(0, np.float64),
        })
    return pd.DataFrame({
        "work_unit_id": np.concatenate(units), "step": np.concatenate(steps), "time": np.concatenate(times),
        "name": pd.concat([pd.Series(part, copy=False) for part in names], ignore_index=True),
        "value": np.concatenate(values),
    }, copy=False)
