"""A study's rows in the metadata store: one experiment per calc dir, one work unit per pset.

So that ``xmanager list``/``show`` and ``get_experiment(id).to_dataframe()`` see psweep
studies like any launch. The experiment is found by a tag derived from the calc dir's
absolute path. Rows already stored (by ``_pset_id``) are never stored twice, so a
run that died between writing its database and recording it is completed next time.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

from xmanager.xm.psets import json_encoder
from xmanager.xm_local import config
from xmanager.xm_local.store import Store


def study_tag(calc_dir: str) -> str:
    digest = hashlib.sha1(os.path.abspath(calc_dir).encode()).hexdigest()[:16]
    return f"sweep:{digest}"


_OPEN: dict[tuple[int, str], Store] = {}  # Per process: a forked recorder opens its own.
_STUDIES: dict[tuple[str, str], int] = {}


def _store(url: str) -> Store:
    key = (os.getpid(), url)
    store = _OPEN.get(key)
    if store is None:
        store = _OPEN[key] = Store(url)
    return store


def _experiment_id(store: Store, calc_dir: str) -> int:
    known = _STUDIES.get((store.url, os.path.abspath(calc_dir)))
    if known is not None:  # Experiments are never deleted, so the id stays valid.
        return known
    tag = study_tag(calc_dir)
    found = store.list_experiments(tag=tag, limit=1)
    if found:
        experiment_id = found[0].experiment_id
    else:
        try:
            user: Optional[str] = getpass.getuser()
        except (KeyError, OSError):
            user = None
        experiment_id = store.create_experiment(
            f"sweep {calc_dir}", ["sweep", tag], os.path.abspath(calc_dir), user,
            os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None, sys.argv,
        )
    _STUDIES[(store.url, os.path.abspath(calc_dir))] = experiment_id
    return experiment_id


def _seconds(value: Any) -> Optional[float]:
    if value is None or isinstance(value, float):
        return value
    try:
        return float(value.timestamp())  # pandas.Timestamp: naive means UTC.
    except (AttributeError, ValueError, TypeError):
        return None


def _plain(value: Any) -> Any:
    """JSON for values ``json`` lacks: NA is null, numpy scalars are numbers, the rest its repr."""
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        item = value.item() if getattr(value, "ndim", 0) == 0 else value.tolist()
        if type(item) is not type(value):
            return item
    return repr(value)


_encode_fast = json_encoder(sort_keys=False, default=_plain)


def _text_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key if isinstance(key, str) else repr(key): _text_keys(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(item) for item in value]
    return value


def _encode(value: dict[str, Any]) -> str:
    """JSON of args or results; dict keys JSON cannot take (tuples, ...) become their repr."""
    try:
        return _encode_fast(value)
    except (TypeError, ValueError):
        return _encode_fast(_text_keys(value))


_STORED_KEYS = {"_pset_hash": "pset_hash", "_pset_id": "pset_id", "_run_id": "run_id", "_run_seq": "run_seq",
                "_pset_seq": "pset_seq", "_calc_dir": "calc_dir", "_exec_host": "host"}


def _units(first_id: int, rows: Sequence[dict[str, Any]], pset_cols: set[str]) -> dict[str, list[Any]]:
    """Rows of ``run()`` as ``work_units`` columns (``args``/``results`` as JSON text)."""
    columns: dict[str, list[Any]] = {
        name: [] for name in ("work_unit_id", "args", "status", "message", "created_at", "started_at", "ended_at",
                              "results", *_STORED_KEYS.values())
    }
    last_keys: Any = None
    arg_keys: list[str] = []
    result_keys: list[str] = []
    now = time.time()
    for offset, row in enumerate(rows):
        keys = row.keys()
        if keys != last_keys:
            last_keys = keys
            arg_keys = [key for key in keys if key in pset_cols]
            result_keys = [
                key for key in keys if key not in pset_cols and not (isinstance(key, str) and key.startswith("_"))
            ]
        started = _seconds(row.get("_time_utc"))
        runtime = row.get("_pset_runtime")
        ended = started + runtime if started is not None and isinstance(runtime, (int, float)) else started
        message = None
        failed = row.get("_failed") is True
        if failed:
            text = str(row.get("_exc_txt") or "").strip()
            message = text.splitlines()[-1] if text else "failed"
        columns["work_unit_id"].append(first_id + offset)
        columns["args"].append(_encode({key: row[key] for key in arg_keys}))
        columns["status"].append("failed" if failed else "completed")
        columns["message"].append(message)
        columns["created_at"].append(now if started is None else started)
        columns["started_at"].append(started)
        columns["ended_at"].append(ended)
        columns["results"].append(_encode({key: row[key] for key in result_keys}) if result_keys else None)
        for key, name in _STORED_KEYS.items():
            columns[name].append(row.get(key))
    return columns


def record(
    calc_dir: str,
    rows: Sequence[dict[str, Any]],
    pset_cols: set[str],
    stored_before: int,
    all_rows: Any = None,
    database_url: Optional[str] = None,
) -> int:
    """Stores ``rows`` (the new rows of a run) as units of the calc dir's experiment.

    ``pset_cols`` are the parameter names (a unit's args); other columns not starting
    with ``_`` are its results. ``stored_before`` is how many rows the database had
    before ``rows``. When the store
    holds a different number of this study's units (a run died before recording, or
    the database was edited), ``all_rows`` (a callable giving every row) is diffed by
    ``_pset_id`` instead. Returns the experiment id.
    """
    store = _store(database_url or config.database_url())
    experiment_id = _experiment_id(store, calc_dir)
    next_id = store.next_work_unit_id(experiment_id)
    if next_id - 1 != stored_before and all_rows is not None:
        known = store.pset_ids(experiment_id)
        rows = [row for row in all_rows() if row.get("_pset_id") not in known]
    if rows:
        store.insert_finished_units(experiment_id, _units(next_id, rows, pset_cols))
    return experiment_id
