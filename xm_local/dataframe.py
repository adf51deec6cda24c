"""An experiment as a pandas DataFrame: one row per work unit.

Columns: the unit's args, then its results, then reserved ``_``-prefixed columns
(psweep style): ``_experiment_id``, ``_work_unit_id``, ``_status``, ``_exit_code``,
``_message``, ``_exec_host``, ``_time_utc`` (start), ``_end_utc`` and
``_pset_runtime`` (seconds). Units that are psets of a sweep also get psweep's
book-keeping columns ``_pset_id``, ``_pset_hash``, ``_run_id``, ``_pset_seq``,
``_run_seq`` (and ``_calc_dir`` when the sweep ran in one).

Built from the store's one read path for units (``Store.unit_chunks``), block by block: plain
numbers go into NumPy arrays as they are read and repeated strings are shared, so a million
units need about the DataFrame's own size again rather than a Python object per value. Values
that are not plain numbers stay Python objects, and pandas types their column as it always did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

import attrs
from xmanager.xm_local.store import Store
from xmanager.xm_local.store.rows import decode_all

SWEEP_RESERVED = ("_pset_id", "_pset_hash", "_run_id", "_pset_seq", "_run_seq", "_calc_dir")
RESERVED = (
    "_experiment_id", "_work_unit_id", "_status", "_exit_code", "_message",
    "_exec_host", "_time_utc", "_end_utc", "_pset_runtime",
)
#: The ``work_units`` column each reserved column shows, and how it is kept while reading:
#: ``int`` (int64), ``float`` (float64, NaN for NULL), ``Int64`` (pandas' nullable ints), ``text``
#: (strings, repeats shared) or ``unique`` (strings that seldom repeat).
_SOURCES = {
    "_experiment_id": ("experiment_id", "int"), "_work_unit_id": ("work_unit_id", "int"),
    "_status": ("status", "text"), "_exit_code": ("exit_code", "Int64"), "_message": ("message", "text"),
    "_exec_host": ("host", "text"), "_time_utc": ("started_at", "float"), "_end_utc": ("ended_at", "float"),
    "_pset_id": ("pset_id", "unique"), "_pset_hash": ("pset_hash", "unique"), "_run_id": ("run_id", "text"),
    "_pset_seq": ("pset_seq", "Int64"), "_run_seq": ("run_seq", "Int64"), "_calc_dir": ("calc_dir", "text"),
}


def experiment_dataframe(store: Store, experiment_id: int) -> Any:
    import pandas as pd

    args, results = _DictColumns(), _DictColumns()
    stored = _StoredColumns()
    for chunk in store.unit_chunks(experiment_id):
        args.add(decode_all(chunk["args"]))
        results.add([{} if item is None else item for item in decode_all(chunk["results"])])
        stored.add(chunk)
    reserved: dict[str, Any] = {}
    if stored.has_values("pset_hash"):
        for name in SWEEP_RESERVED:
            if name != "_calc_dir" or stored.has_values("calc_dir"):
                reserved[name] = stored.column(*_SOURCES[name])
    for name in RESERVED:
        if name == "_pset_runtime":
            reserved[name] = stored.column("ended_at", "float") - stored.column("started_at", "float")
        elif name in ("_time_utc", "_end_utc"):
            seconds = pd.Series(stored.column(*_SOURCES[name]), dtype="float64")
            reserved[name] = pd.to_datetime(seconds, unit="s", utc=True)
        else:
            reserved[name] = stored.column(*_SOURCES[name])
    data: dict[str, Any] = {}
    for source in (args, results):
        for key, values in source.columns():
            data[key if key not in data and key not in reserved else f"result_{key}"] = values
    data.update(reserved)
    return pd.DataFrame(data, copy=False)


class _StoredColumns:
    """The stored columns behind the reserved ones, kept compact block by block."""

    def __init__(self) -> None:
        self._blocks: dict[str, list[Any]] = {source: [] for source, _ in _SOURCES.values()}
        self._shared: dict[Optional[str], Optional[str]] = {}
        self._kinds = dict(_SOURCES.values())
        self.rows = 0

    def add(self, chunk: Any) -> None:
        import numpy as np

        for source, blocks in self._blocks.items():
            values = chunk[source]
            kind = self._kinds[source]
            if kind == "int":
                blocks.append(np.array(values, dtype=np.int64))
            elif kind == "float":
                blocks.append(np.array(values, dtype=np.float64))  # NULL becomes NaN.
            elif kind == "Int64":
                blocks.append(_Numbers.of(values, np.int64))
            elif kind == "text":
                shared = self._shared
                blocks.append([shared.setdefault(value, value) for value in values])
            else:
                blocks.append(values)
        self.rows += len(chunk["work_unit_id"])

    def has_values(self, source: str) -> bool:
        return any(value is not None for block in self._blocks[source] for value in block)

    def column(self, source: str, kind: str) -> Any:
        import numpy as np
        import pandas as pd

        blocks = self._blocks[source]
        if kind in ("int", "float"):
            # No units: an empty list, which pandas types as it always did.
            return np.concatenate(blocks) if self.rows else ([] if kind == "int" else np.empty(0))
        if kind == "Int64":
            if not self.rows:
                return pd.array([], dtype="Int64")
            return pd.arrays.IntegerArray(
                np.concatenate([block.values for block in blocks]), np.concatenate([block.gaps for block in blocks])
            )
        return [value for block in blocks for value in block]


@attrs.frozen
class _Numbers:
    """One block of plain numbers (int64 or float64), and the rows where it had None (or None)."""

    values: Any
    gaps: Any = None

    @classmethod
    def of(cls, values: Sequence[Any], dtype: Any) -> _Numbers:
        """``values`` (numbers of ``dtype``'s kind, or None), with every row's gap flag."""
        import numpy as np

        gaps = np.fromiter((value is None for value in values), dtype=bool, count=len(values))
        return cls(np.array([0 if value is None else value for value in values], dtype=dtype), gaps)


@attrs.frozen
class _Nones:
    count: int


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
                start += block.count  # type: ignore[union-attr]
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


class _DictColumns:
    """Columns of a stream of dicts: keys in first-seen order, None where a dict lacks the key."""

    def __init__(self) -> None:
        self._blocks: dict[str, list[_Block]] = {}
        self.rows = 0

    def add(self, dicts: list[dict[str, Any]]) -> None:
        first = dicts[0].keys() if dicts else {}.keys()
        if all(item.keys() == first for item in dicts):  # The usual case: every unit has the same keys.
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
            yield key, _unpack(self._blocks.pop(key), self.rows)
