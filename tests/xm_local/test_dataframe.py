"""to_dataframe's block-wise build gives the DataFrame the row-wise build of earlier releases gave."""

import json
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xmanager.xm_local import dataframe, store
from xmanager.xm_local.store import Store
from xmanager.xm_local.store.rows import UNIT_COLUMNS

SWEEP_INDEX = {"_pset_hash": 11, "_pset_id": 12, "_run_id": 13, "_run_seq": 14, "_pset_seq": 15, "_calc_dir": 16}


def reference_dataframe(rows):
    """The row-wise build of earlier releases, over ``work_units`` rows in table order."""

    def columns(dicts):
        keys = {}
        for item in dicts:
            keys.update(dict.fromkeys(item))
        return {key: [item.get(key) for item in dicts] for key in keys}

    args = columns([json.loads(row[2]) for row in rows])
    results = columns([json.loads(row[10]) if row[10] is not None else {} for row in rows])
    started, ended = [row[8] for row in rows], [row[9] for row in rows]
    reserved = {
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
    sweep = {}
    if any(row[11] is not None for row in rows):
        for name in dataframe.SWEEP_RESERVED:
            values = [row[SWEEP_INDEX[name]] for row in rows]
            if name != "_calc_dir" or any(value is not None for value in values):
                sweep[name] = pd.array(values, dtype="Int64") if name.endswith("_seq") else values
    reserved = {**sweep, **reserved}
    data = {}
    for source in (args, results):
        for key, values in source.items():
            data[key if key not in data and key not in reserved else f"result_{key}"] = values
    data.update(reserved)
    frame = pd.DataFrame(data)
    frame["_pset_runtime"] = frame["_pset_runtime"].astype("float64")
    return frame


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False), st.floats(), st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
)
mappings = st.dictionaries(st.sampled_from(["a", "b", "c", "_status", "loss"]), scalars, max_size=4)
seconds = st.one_of(st.none(), st.floats(0, 2e9, allow_nan=False))
text = st.one_of(st.none(), st.sampled_from(["", "completed", "h", "x y"]))
units = st.lists(
    st.tuples(
        mappings, st.sampled_from(["completed", "failed", "running"]), text, st.one_of(st.none(), st.integers(-9, 9)),
        text, seconds, seconds, st.one_of(st.none(), mappings),
        st.one_of(st.none(), st.tuples(st.text(max_size=2), st.sampled_from(["r1", "r2"]), st.integers(0, 9), text)),
    ),
    max_size=12,
)
# The same shape in every unit: what sweeps store, the path that packs numbers into arrays.
numeric = st.integers(0, 12).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(st.integers(-(2**40), 2**40), st.none()), min_size=n, max_size=n),
    st.lists(st.one_of(st.floats(allow_nan=False), st.none(), st.integers(0, 9)), min_size=n, max_size=n),
))


def store_units(url, rows):
    """Stores ``rows`` as one experiment's units; returns (store, experiment id, the rows as stored)."""
    db = Store(url)
    experiment_id = db.create_experiment("frame", [], "", None, None, [])
    columns = {name: [] for name in ("work_unit_id", "args", "status", "message", "exit_code", "host",
                                     "created_at", "started_at", "ended_at", "results", "pset_hash", "pset_id",
                                     "run_id", "run_seq", "pset_seq", "calc_dir")}
    for index, (args, status, message, exit_code, host, started, ended, results, pset) in enumerate(rows, 1):
        values = dict(work_unit_id=index, args=json.dumps(args), status=status, message=message, exit_code=exit_code,
                      host=host, created_at=0.0, started_at=started, ended_at=ended,
                      results=None if results is None else json.dumps(results))
        if pset is not None:
            values.update(pset_hash=f"h{pset[0]}", pset_id=f"p{index}", run_id=pset[1], run_seq=pset[2],
                          pset_seq=index, calc_dir=pset[3])
        for name, column in columns.items():
            column.append(values.get(name))
    if rows:
        db.insert_finished_units(experiment_id, columns)
    raw = [tuple(getattr(row, name) for name in UNIT_COLUMNS) for row in db.units(experiment_id)]
    raw = [(*row[:2], json.dumps(row[2]), *row[3:10], None if row[10] is None else json.dumps(row[10]), *row[11:])
           for row in raw]  # The rows as the earlier build read them: JSON columns as text.
    return db, experiment_id, raw


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of three units and time slices of two, so that every join between blocks is crossed."""
    monkeypatch.setattr(store, "CHUNK_ROWS", 3)
    monkeypatch.setattr(dataframe, "_TIME_SLICE", 2)


def check(url, rows, expected_rows):
    db, experiment_id, raw = store_units(url, rows)
    try:
        built = dataframe.experiment_dataframe(db, experiment_id, expected_rows=expected_rows)
        pd.testing.assert_frame_equal(built, reference_dataframe(raw), check_exact=True)
    finally:
        db.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(units, st.integers(0, 20))
def test_any_units_give_the_dataframe_they_always_gave(tmp_path, small_blocks, rows, expected_rows):
    check(f"sqlite:///{tmp_path / 'frame.sqlite3'}", rows, expected_rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numeric)
def test_numeric_columns_with_gaps(tmp_path, small_blocks, columns):
    ints, mixed = columns
    rows = [({"i": i, "m": m}, "completed", None, None, None, 1.0, 2.0, None if i is None else {"r": i}, None)
            for i, m in zip(ints, mixed)]
    check(f"sqlite:///{tmp_path / 'frame.sqlite3'}", rows, len(rows) // 2)


def test_a_sweep_of_many_units_is_typed_as_numbers(tmp_path):
    rows = [({"a": i, "b": i * 0.5}, "completed", "", 0, "h", 1.0, 1.5 + i, {"loss": 1 / (i + 1)},
             ("x", "r1", 0, None)) for i in range(50_000)]
    db, experiment_id, raw = store_units(f"sqlite:///{tmp_path / 'big.sqlite3'}", rows)
    built = dataframe.experiment_dataframe(db, experiment_id, expected_rows=10)
    db.close()
    assert built["a"].dtype == "int64" and built["b"].dtype == "float64" and built["loss"].dtype == "float64"
    assert str(built["_status"].dtype) == "str" and built["_pset_seq"].dtype == "Int64"
    assert built["_pset_runtime"].tolist()[:2] == [0.5, 1.5] and math.isclose(built["loss"].iloc[-1], 1 / 50_000)
    pd.testing.assert_frame_equal(built, reference_dataframe(raw), check_exact=True)


def test_the_same_keys_in_another_order_stay_in_their_columns(tmp_path, small_blocks):
    rows = [({"a": i, "b": f"x{i}"} if i % 2 else {"b": f"x{i}", "a": i}, "completed", None, None, None, 1.0, 2.0,
             None, None) for i in range(7)]
    check(f"sqlite:///{tmp_path / 'frame.sqlite3'}", rows, 7)
