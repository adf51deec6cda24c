"""An experiment as a pandas DataFrame: one row per work unit.

Columns: the unit's args, then its results, then reserved ``_``-prefixed columns
(psweep style): ``_experiment_id``, ``_work_unit_id``, ``_status``, ``_exit_code``,
``_message``, ``_exec_host``, ``_time_utc`` (start), ``_end_utc`` and
``_pset_runtime`` (seconds). Units that are psets of a sweep also get psweep's
book-keeping columns ``_pset_id``, ``_pset_hash``, ``_run_id``, ``_pset_seq``,
``_run_seq`` (and ``_calc_dir`` when the sweep ran in one). Built column-wise from one
query.
"""

from __future__ import annotations

import json
from typing import Any

from xmanager.xm_local.store import Store

SWEEP_RESERVED = ("_pset_id", "_pset_hash", "_run_id", "_pset_seq", "_run_seq", "_calc_dir")
_SWEEP_INDEX = {"_pset_hash": 11, "_pset_id": 12, "_run_id": 13, "_run_seq": 14, "_pset_seq": 15, "_calc_dir": 16}
RESERVED = (
    "_experiment_id", "_work_unit_id", "_status", "_exit_code", "_message",
    "_exec_host", "_time_utc", "_end_utc", "_pset_runtime",
)


def _columns(dicts: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Dicts to columns; keys missing from a row are None. Key order: first seen."""
    keys: dict[str, None] = {}
    for item in dicts:
        keys.update(dict.fromkeys(item))
    return {key: [item.get(key) for item in dicts] for key in keys}


def experiment_dataframe(store: Store, experiment_id: int) -> Any:
    import pandas as pd

    rows = store.unit_tuples(experiment_id)
    loads = json.loads
    args = _columns([loads(row[2]) for row in rows])
    results = _columns([loads(row[10]) if row[10] is not None else {} for row in rows])
    started = [row[8] for row in rows]
    ended = [row[9] for row in rows]
    reserved: dict[str, Any] = {
        "_experiment_id": [row[0] for row in rows],
        "_work_unit_id": [row[1] for row in rows],
        "_status": [row[3] for row in rows],
        "_exit_code": pd.array([row[5] for row in rows], dtype="Int64"),
        "_message": [row[4] for row in rows],
        "_exec_host": [row[6] for row in rows],
        "_time_utc": pd.to_datetime(pd.Series(started, dtype="float64"), unit="s", utc=True),
        "_end_utc": pd.to_datetime(pd.Series(ended, dtype="float64"), unit="s", utc=True),
        "_pset_runtime": [None if s is None or e is None else e - s for s, e in zip(started, ended)],
    }
    sweep: dict[str, Any] = {}
    if any(row[11] is not None for row in rows):
        for name in SWEEP_RESERVED:
            values = [row[_SWEEP_INDEX[name]] for row in rows]
            if name != "_calc_dir" or any(value is not None for value in values):
                sweep[name] = pd.array(values, dtype="Int64") if name.endswith("_seq") else values
    reserved = {**sweep, **reserved}
    data: dict[str, Any] = {}
    for source in (args, results):
        for key, values in source.items():
            data[key if key not in data and key not in reserved else f"result_{key}"] = values
    data.update(reserved)
    frame = pd.DataFrame(data)
    frame["_pset_runtime"] = frame["_pset_runtime"].astype("float64")
    return frame
