"""run() against psweep 0.16's observable contracts, and our documented differences.

Each test works in its own empty folder (``work``), so ``calc/`` and friends are fresh;
the metadata store lives in the per-test ``XM_DATA_DIR`` (tests/conftest.py).
"""

from __future__ import annotations

import copy
import os
import pickle
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from xmanager import xm_local
from xmanager.xm_local import sweep as ps
from xmanager.xm_local.sweep import database as db_mod
from xmanager.xm_local.sweep import runner
from xmanager.xm_local.sweep.database import DatabaseError
from xmanager.xm_local.sweep.gitops import GitError
from xmanager.xm_local.sweep.record import study_tag

COLUMNS = {
    "_calc_dir", "_pset_id", "_run_id", "_pset_seq", "_run_seq", "_pset_hash",
    "_time_utc", "_pset_runtime", "_exec_host", "a", "result_",
}
PSWEEP_ORDER = [
    "a", "_pset_hash", "_pset_id", "_run_seq", "_pset_seq", "_run_id", "_calc_dir",
    "_time_utc", "_exec_host", "result_", "_pset_runtime",
]
DB = Path("calc") / "database.pk"
# Bound at import, i.e. before any redirect run(capture_logs=...) makes.
_EARLY_STDOUT = sys.stdout


# ---- functions at module level, so worker processes can unpickle them -----------------------------
def func_double(pset):
    return {"result_": pset["a"] * 2}


def func_fail_odd(pset):
    if pset["a"] % 2:
        raise ValueError(f"odd a={pset['a']}")
    return {"result_": pset["a"] * 2}


def _report_time(pset):
    print("working")
    return {"seen_type_": type(pset["_time_utc"]).__name__, "seen_time_": pset["_time_utc"]}


def _shout(pset):
    print(f"shout {pset['a']}")
    return {}


def _params(values):
    return ps.plist("a", values)


class Counting:
    """A func that counts its calls (serial runs only) and remembers the psets it saw."""

    def __init__(self, result=lambda pset: {"result_": pset["a"] * 2}):
        self.seen = []
        self.result = result

    def __call__(self, pset):
        self.seen.append(dict(pset))
        return self.result(pset)

    @property
    def calls(self):
        return len(self.seen)


@pytest.fixture
def single_threaded(monkeypatch):
    """run() records large runs in a forked child only when this process has one thread; other test files
    (dask) leave idle threads behind, so pretend there is only this one."""
    monkeypatch.setattr(threading, "active_count", lambda: 1)


@pytest.fixture
def work(tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _studies(calc_dir="calc"):
    return xm_local.list_experiments(tag=study_tag(calc_dir))


# ---- the database: columns, dtypes, counters -----------------------------------------------------
def test_one_run_columns_order_dtypes_and_saved_copy(work):
    df = ps.run(func_double, _params([1, 2, 3]))
    assert set(df.columns) == COLUMNS
    assert list(df.columns) == PSWEEP_ORDER
    assert set(df.dtypes) == {np.dtype(object)}
    assert isinstance(df.index, pd.RangeIndex)
    assert list(df.index) == [0, 1, 2]
    assert ps.df_read("calc/database.pk").equals(df)
    assert df["result_"].tolist() == [2, 4, 6]
    assert df["a"].tolist() == [1, 2, 3]


def test_counters_and_reserved_values(work):
    ps.run(func_double, _params([1, 2]))
    df = ps.run(func_double, _params([1, 2, 3]))
    assert len(df) == 5
    assert df["_pset_seq"].tolist() == list(df.index) == [0, 1, 2, 3, 4]
    assert df["_run_seq"].tolist() == [0, 0, 1, 1, 1]
    assert df["_run_id"].nunique() == 2
    assert df["_run_id"].iloc[0] != df["_run_id"].iloc[-1]
    assert df["_pset_id"].is_unique
    hashes = df["_pset_hash"].tolist()
    assert hashes[0] == hashes[2] and hashes[1] == hashes[3]
    assert len(set(hashes)) == 3
    assert all(isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value) for value in hashes)
    assert all(isinstance(value, pd.Timestamp) for value in df["_time_utc"])
    assert set(df["_calc_dir"]) == {"calc"}
    assert all(isinstance(value, float) and value >= 0 for value in df["_pset_runtime"])
    assert all(isinstance(value, str) and value for value in df["_exec_host"])
    assert ps.df_read(DB).equals(df)


def test_run_seq_increments_per_call(work):
    for _ in range(3):
        df = ps.run(func_double, _params([7]))
    assert df["_run_seq"].tolist() == [0, 1, 2]
    assert df["_pset_seq"].tolist() == [0, 1, 2]
    assert df["_pset_hash"].nunique() == 1
    assert df["_pset_id"].nunique() == 3


def test_pset_seq_is_index_after_a_pool_run(work):
    ps.run(func_double, _params([1, 2]))
    df = ps.run(func_double, _params(list(range(10))), poolsize=2)
    assert len(df) == 12
    assert df["_pset_seq"].tolist() == list(df.index) == list(range(12))
    assert df["_run_seq"].tolist() == [0] * 2 + [1] * 10
    assert df["a"].tolist()[2:] == list(range(10))  # Pool results keep the order of params.
    assert df["result_"].tolist()[2:] == [2 * a for a in range(10)]
    assert df["_pset_id"].is_unique
    assert ps.df_read(DB).equals(df)


# ---- params and func -----------------------------------------------------------------------------
def test_params_are_never_mutated_and_func_gets_reserved_fields(work):
    params = [
        {"a": 1, "b": {"c": [1, 2], "d": "x"}},
        {"a": 2, "b": {"c": [3], "d": "y"}},
        {"a": 3, "b": "plain"},
    ]
    before = copy.deepcopy(params)
    seen = []

    def func(pset):
        seen.append(dict(pset))
        if isinstance(pset["b"], dict):
            pset["b"]["c"].append(99)  # Mutating the pset must not reach params.
            pset["b"]["new"] = True
        pset["a"] = -1
        return {"result_": 1}

    df = ps.run(func, params)
    assert params == before
    for pset in params:
        assert not any(key.startswith("_") for key in pset)
    reserved = {"_pset_id", "_pset_hash", "_run_id", "_run_seq", "_pset_seq", "_calc_dir"}
    for pset, row in zip(seen, df.to_dict("records")):
        assert reserved <= set(pset)
        assert pset["_pset_id"] == row["_pset_id"]
        assert pset["_calc_dir"] == "calc"
        assert pset["_pset_seq"] == row["_pset_seq"]
    assert [pset["_pset_seq"] for pset in seen] == [0, 1, 2]


@pytest.mark.parametrize("options", [{}, {"capture_logs": "db"}, {"poolsize": 2}])
def test_func_sees_time_utc_as_the_timestamp_the_database_holds(work, options):
    # As psweep: func gets the very pandas.Timestamp stored in _time_utc.
    df = ps.run(_report_time, _params([1, 2]), **options)
    assert df["seen_type_"].tolist() == ["Timestamp", "Timestamp"]
    assert df["seen_time_"].tolist() == df["_time_utc"].tolist()
    assert all(isinstance(value, pd.Timestamp) for value in df["_time_utc"])
    assert all(isinstance(value, str) for value in df["_exec_host"])


def test_df_passed_in_is_appended_to_and_save_false_creates_nothing(work):
    first = ps.run(func_double, _params([1, 2]), save=False)
    assert list(work.iterdir()) == []
    first_copy = first.copy()
    df = ps.run(func_double, _params([3]), df=first, save=False)
    assert list(work.iterdir()) == []
    assert len(df) == 3
    assert df.iloc[:2].equals(first_copy)
    assert first.equals(first_copy)  # The df passed in is not modified.
    assert df["_run_seq"].tolist() == [0, 0, 1]
    assert df["_pset_seq"].tolist() == [0, 1, 2]
    assert df["a"].tolist() == [1, 2, 3]


def test_df_passed_in_wins_over_the_database_on_disk(work):
    ps.run(func_double, _params([1, 2, 3]))
    other = ps.run(func_double, _params([10]), save=False, calc_dir="elsewhere")
    df = ps.run(func_double, _params([11]), df=other)
    assert df["a"].tolist() == [10, 11]
    assert ps.df_read(DB).equals(df)


def test_params_with_different_keys_are_filled_with_na(work):
    func = Counting(lambda pset: {"result_": 1})
    df = ps.run(func, [{"a": 1}, {"b": 2}, {"a": 3, "b": 4}])
    assert func.seen[0]["b"] is pd.NA
    assert func.seen[1]["a"] is pd.NA
    assert func.seen[2]["a"] == 3 and func.seen[2]["b"] == 4
    assert df.loc[0, "b"] is pd.NA
    assert df.loc[1, "a"] is pd.NA
    assert ps.df_read(DB).equals(df)
    # A missing key hashes like an absent one: {"a": 1} is recognised as done.
    again = Counting(lambda pset: {"result_": 1})
    df2 = ps.run(again, [{"a": 1}, {"a": 1, "b": 5}], skip_dups=True)
    assert again.calls == 1 and again.seen[0]["b"] == 5
    assert len(df2) == 4


def test_missing_params_as_psweep_fills_them(work):
    seen = Counting(lambda pset: {"r_": "ok"})
    df = ps.run(seen, [{"s": "x"}, {"t": 1}])
    assert set(df.dtypes) == {np.dtype(object)}
    # psweep's DataFrame round trip: a string column's missing cell is NaN, a number column's NA.
    assert isinstance(df.loc[1, "s"], float) and np.isnan(df.loc[1, "s"]) and df.loc[0, "t"] is pd.NA
    assert np.isnan(seen.seen[1]["s"]) and seen.seen[0]["t"] is pd.NA
    assert ps.df_read(DB).equals(df)


def test_fill_value_none(work):
    func = Counting(lambda pset: {"result_": 1})
    df = ps.run(func, [{"a": 1}, {"b": 2}], fill_value=None)
    # As in psweep, None goes through pandas' inference: ints with a None become floats and NaN.
    assert func.seen[0]["a"] == 1.0 and type(func.seen[0]["a"]) is float and np.isnan(func.seen[0]["b"])
    assert np.isnan(func.seen[1]["a"]) and func.seen[1]["b"] == 2.0
    assert np.isnan(df.loc[0, "b"]) and np.isnan(df.loc[1, "a"])
    again = Counting()
    assert ps.run(again, [{"b": 2}, {"a": 1}], fill_value=None, skip_dups=True).equals(df)
    assert again.calls == 0
    # A later run adding a column fills the old rows with the fill_value as well.
    df = ps.run(func_double, [{"a": 5}], fill_value=None)
    assert np.isnan(df.loc[2, "b"]) and df["a"].tolist()[2] == 5.0
    assert df.loc[0, "result_"] == 1 and df.loc[2, "result_"] == 10
    assert ps.df_read(DB).equals(df)


def test_new_result_column_in_a_later_run_is_na_in_old_rows(work):
    ps.run(func_double, _params([1]))
    df = ps.run(lambda pset: {"other_": "x"}, _params([2]))
    assert np.isnan(df.loc[0, "other_"])  # A string column: NaN, as psweep's round trip gives.
    assert df.loc[1, "result_"] is pd.NA
    assert df.loc[1, "other_"] == "x"
    assert set(df.dtypes) == {np.dtype(object)}


# ---- tmpsave, simulate, backup -------------------------------------------------------------------
def test_tmpsave_writes_one_pickle_per_pset(work):
    df = ps.run(func_double, _params([1, 2, 3]), tmpsave=True)
    run_id = df["_run_id"].iloc[0]
    folder = work / "calc" / "tmpsave" / run_id
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{pid}.pk" for pid in df["_pset_id"])
    for index, row in df.iterrows():
        with open(folder / f"{row['_pset_id']}.pk", "rb") as handle:
            saved = pickle.load(handle)
        assert isinstance(saved, dict)
        assert saved == df.loc[index].to_dict()


def test_simulate_leaves_the_database_alone_and_does_not_call_func(work):
    ps.run(func_double, _params([1, 2]))
    original = DB.read_bytes()
    func = Counting()
    df = ps.run(func, _params([3, 4]), simulate=True)
    assert func.calls == 0
    assert DB.read_bytes() == original
    sim = Path("calc.simulate") / "database.pk"
    assert sim.exists()
    assert ps.df_read(sim).equals(df)
    assert len(df) == 4
    assert df["result_"].tolist()[:2] == [2, 4]
    assert all(value is pd.NA for value in df["result_"].tolist()[2:])
    assert df["_calc_dir"].tolist() == ["calc", "calc", "calc.simulate", "calc.simulate"]
    assert df["_pset_seq"].tolist() == [0, 1, 2, 3]


def test_simulate_with_a_new_result_column_gives_na(work):
    ps.run(lambda pset: {"x_": 1}, _params([1]))
    df = ps.run(func_double, _params([2]), simulate=True)
    assert df.loc[0, "x_"] == 1
    assert df.loc[1, "x_"] is pd.NA
    assert "result_" not in df.columns  # func never ran, so its results are unknown.


def test_simulate_without_a_database_warns_and_writes_only_the_simulate_dir(work):
    with pytest.warns(UserWarning, match="simulate"):
        df = ps.run(func_double, _params([1]), simulate=True)
    assert not Path("calc").exists()
    assert ps.df_read("calc.simulate/database.pk").equals(df)


def test_backup_copies_calc_with_symlinks(work):
    first = ps.run(func_double, _params([1]))
    target = work / "calc" / "data.txt"
    target.write_text("payload")
    os.symlink("data.txt", work / "calc" / "link")
    ps.run(func_double, _params([2]), backup=True)
    backups = [path for path in work.iterdir() if path.name.startswith("calc.bak")]
    assert len(backups) == 1
    name = backups[0].name
    assert re.fullmatch(r"calc.bak_[0-9-]+T[0-9:\.]+Z_run_id.+", name)
    assert name.endswith(f"_run_id_{first['_run_id'].iloc[0]}")
    link = backups[0] / "link"
    assert link.is_symlink()
    assert os.readlink(link) == "data.txt"
    assert ps.df_read(backups[0] / "database.pk").equals(first)


def test_backup_twice_without_new_data_refuses(work):
    ps.run(func_double, _params([1]))
    ps.run(func_double, _params([1]), backup=True, skip_dups=True)
    with pytest.raises(AssertionError, match="exists"):
        ps.run(func_double, _params([1]), backup=True, skip_dups=True)


def test_backup_of_an_empty_study_does_nothing(work):
    ps.run(func_double, _params([1]), backup=True)
    assert [path.name for path in work.iterdir()] == ["calc"]


# ---- skip_dups -----------------------------------------------------------------------------------
def test_skip_dups_with_nothing_new_returns_the_old_df(work):
    old = ps.run(func_double, _params([1, 2]))
    original = DB.read_bytes()
    func = Counting()
    df = ps.run(func, _params([2, 1]), skip_dups=True)
    assert func.calls == 0
    assert df.equals(old)
    assert df.equals(ps.df_read(DB))
    assert DB.read_bytes() == original


@pytest.mark.parametrize("source", ["df-passed-in", "psweep-database"])
def test_nothing_new_still_saves_the_returned_df(work, source):
    if source == "df-passed-in":
        full = ps.run(func_double, _params([1, 2, 3]))
        kwargs = {"df": full[full["a"] != 2].reset_index(drop=True)}
        params = _params([1, 3])
    else:
        _psweep_made_database(_params([1, 2]))
        kwargs = {}
        params = _params([1, 2])
    func = Counting()
    df = ps.run(func, params, skip_dups=True, **kwargs)
    assert func.calls == 0
    assert ps.df_read(DB).equals(df)


def test_skip_dups_runs_only_new_psets(work):
    ps.run(func_double, _params([1, 2]))
    func = Counting()
    df = ps.run(func, _params([1, 2, 3, 4]), skip_dups=True)
    assert [pset["a"] for pset in func.seen] == [3, 4]
    assert df["a"].tolist() == [1, 2, 3, 4]
    assert df["_run_seq"].tolist() == [0, 0, 1, 1]
    assert df["_pset_seq"].tolist() == list(df.index)


# ---- capture_logs --------------------------------------------------------------------------------
def _noisy(pset):
    print(f"out {pset['a']} one")
    print(f"err {pset['a']}", file=sys.stderr)
    sys.stdout.write("out two\n")
    return {"result_": pset["a"]}


def _logs_for(a):
    return f"out {a} one\nerr {a}\nout two\n"


def test_capture_logs_db(work, capsys):
    df = ps.run(_noisy, _params([1, 2]), capture_logs="db")
    assert df["_logs"].tolist() == [_logs_for(1), _logs_for(2)]
    assert not any((work / "calc" / pid).exists() for pid in df["_pset_id"])
    captured = capsys.readouterr()
    assert "out 1 one" not in captured.out and "err 1" not in captured.err
    assert ps.df_read(DB).equals(df)


def test_capture_logs_file(work):
    df = ps.run(_noisy, _params([1, 2]), capture_logs="file")
    assert "_logs" not in df.columns
    assert not hasattr(df, "_logs")
    for a, pid in zip(df["a"], df["_pset_id"]):
        assert (work / "calc" / pid / "logs.txt").read_text() == _logs_for(a)


def test_capture_logs_db_and_file(work):
    df = ps.run(_noisy, _params([1, 2]), capture_logs="db+file")
    for a, pid, logs in zip(df["a"], df["_pset_id"], df["_logs"]):
        assert logs == _logs_for(a)
        assert (work / "calc" / pid / "logs.txt").read_text() == _logs_for(a)


def test_capture_logs_misses_streams_bound_before_the_redirect(work):
    def func(pset):
        print("captured")
        print("bound early", file=_EARLY_STDOUT)
        return {}

    df = ps.run(func, _params([1]), capture_logs="db")
    assert df.loc[0, "_logs"] == "captured\n"


def _noisy_then_fail(pset):
    print(f"working on {pset['a']}")
    raise RuntimeError("broken")


def test_capture_logs_file_keeps_what_a_failing_func_printed(work):
    with pytest.raises(RuntimeError, match="broken"):
        ps.run(_noisy_then_fail, _params([5]), capture_logs="file")
    [folder] = [path for path in (work / "calc").iterdir() if path.name != ".xm_journal"]
    assert (folder / "logs.txt").read_text() == "working on 5\n"


def test_capture_logs_bad_mode(work):
    with pytest.raises(ValueError, match="capture_logs"):
        ps.run(func_double, _params([1]), capture_logs="everything")
    assert not Path("calc").exists()


# ---- verbose -------------------------------------------------------------------------------------
def test_verbose_true_prints_each_pset_as_a_table_row_before_func_runs(work, capsys):
    # psweep's format: one-row table of the parameter columns, indexed by _time_utc, printed before func.
    df = ps.run(_shout, _params([11, 22]), verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[::3]] == [["a"], ["a"]]
    assert [line.split()[-1] for line in lines[1::3]] == ["11", "22"]
    assert [line.split()[:2] for line in lines[1::3]] == [str(t).split() for t in df["_time_utc"]]
    assert lines[2::3] == ["shout 11", "shout 22"]


def test_verbose_list_prints_only_those_columns(work, capsys):
    df = ps.run(func_double, _params([11, 22]), verbose=["_pset_id"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[::2]] == [["_pset_id"], ["_pset_id"]]
    assert [line.split()[-1] for line in lines[1::2]] == df["_pset_id"].tolist()


def test_verbose_of_a_wrong_type_is_an_error(work):
    with pytest.raises(ValueError, match="verbose"):
        ps.run(func_double, _params([1]), save=False, verbose="a")


# ---- failures ------------------------------------------------------------------------------------
def test_on_error_record_keeps_going_and_skip_dups_reruns_failed(work):
    df = ps.run(func_fail_odd, _params([0, 1, 2, 3]), on_error="record")
    assert len(df) == 4
    assert df["_failed"].tolist() == [False, True, False, True]
    for value in df["_exc_txt"][df["_failed"].astype(bool)]:
        assert "Traceback" in value
        assert "ValueError: odd a=" in value
        assert "func_fail_odd" in value
    for value in df["_exc_txt"][~df["_failed"].astype(bool)]:
        assert isinstance(value, float) and np.isnan(value)  # A string column's missing value, as in psweep.
    assert df["result_"].tolist()[0] == 0 and df["result_"].tolist()[2] == 4
    assert df["result_"].tolist()[1] is pd.NA
    assert ps.df_read(DB).equals(df)

    func = Counting()
    df2 = ps.run(func, _params([0, 1, 2, 3]), skip_dups=True, on_error="record")
    assert sorted(pset["a"] for pset in func.seen) == [1, 3]
    assert len(df2) == 6
    assert df2["_failed"].tolist()[4:] == [False, False]
    assert df2["result_"].tolist()[4:] == [2, 6]
    # Now all succeeded once: nothing left to run.
    func3 = Counting()
    df3 = ps.run(func3, _params([0, 1, 2, 3]), skip_dups=True)
    assert func3.calls == 0
    assert df3.equals(df2)


def test_on_error_raise_saves_completed_psets_and_says_so(work):
    def func(pset):
        if pset["a"] == 2:
            raise KeyError("boom")
        return {"result_": pset["a"]}

    with pytest.raises(KeyError, match="boom") as info:
        ps.run(func, _params([0, 1, 2, 3]))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "2 pset(s)" in notes
    assert os.path.join("calc", "database.pk") in notes
    assert "skip_dups=True" in notes
    df = ps.df_read(DB)
    assert df["a"].tolist() == [0, 1]
    assert df["_pset_seq"].tolist() == [0, 1]
    assert "_failed" not in df.columns
    frame = xm_local.get_experiment(_studies()[0].experiment_id).to_dataframe()
    assert sorted(frame["_pset_id"]) == sorted(df["_pset_id"])
    func2 = Counting(lambda pset: {"result_": pset["a"]})
    df = ps.run(func2, _params([0, 1, 2, 3]), skip_dups=True)
    assert [pset["a"] for pset in func2.seen] == [2, 3]
    assert df["a"].tolist() == [0, 1, 2, 3]
    assert df["_pset_seq"].tolist() == [0, 1, 2, 3]
    assert df["_run_seq"].tolist() == [0, 0, 1, 1]


def test_on_error_raise_on_the_first_pset_writes_no_database(work):
    def func(pset):
        raise RuntimeError("first")

    with pytest.raises(RuntimeError, match="first"):
        ps.run(func, _params([0, 1]))
    assert not DB.exists()


def test_on_error_record_keeps_the_logs_of_a_failed_pset(work):
    def func(pset):
        print("before the error")
        raise ValueError("late")

    df = ps.run(func, _params([1]), on_error="record", capture_logs="db")
    assert df.loc[0, "_failed"] is True
    assert df.loc[0, "_logs"] == "before the error\n"
    assert "ValueError: late" in df.loc[0, "_exc_txt"]


def test_pool_with_on_error_record_and_capture_logs(work):
    df = ps.run(func_fail_odd, _params([0, 1, 2]), poolsize=2, on_error="record")
    assert df["_failed"].tolist() == [False, True, False]
    assert "ValueError: odd a=1" in df.loc[1, "_exc_txt"]
    df = ps.run(_noisy, _params([5, 6]), poolsize=2, capture_logs="db")
    assert df["_logs"].tolist()[-2:] == [_logs_for(5), _logs_for(6)]
    assert df["_pset_seq"].tolist() == list(df.index)


@pytest.mark.parametrize("case", ["unpicklable-func-with-pool", "first-pset-raises"])
def test_a_run_failing_before_any_pset_leaves_no_calc_dir(work, case):
    def raises(pset):
        raise RuntimeError("first")

    func, kwargs = (lambda pset: {}, {"poolsize": 2}) if case.startswith("unpicklable") else (raises, {})
    with pytest.raises((TypeError, RuntimeError)):
        ps.run(func, _params([1, 2]), **kwargs)
    assert list(work.iterdir()) == []


def test_on_error_bad_value(work):
    with pytest.raises(ValueError, match="on_error"):
        ps.run(func_double, _params([1]), on_error="ignore")


def test_non_dict_result_raises_type_error_naming_the_pset(work):
    with pytest.raises(TypeError, match=r"not a dict") as info:
        ps.run(lambda pset: [pset["a"]], _params([41]))
    assert "'a': 41" in str(info.value)
    assert "_pset_id" in str(info.value)


def test_non_dict_result_recorded_as_failed(work):
    df = ps.run(lambda pset: pset["a"] if pset["a"] == 2 else {"result_": 1}, _params([1, 2]), on_error="record")
    assert df["_failed"].tolist() == [False, True]
    assert "TypeError" in df.loc[1, "_exc_txt"]
    assert "'a': 2" in df.loc[1, "_exc_txt"]


def test_none_result_is_not_a_dict(work):
    with pytest.raises(TypeError, match="NoneType"):
        ps.run(lambda pset: None, _params([1]))


# ---- pools and clients ---------------------------------------------------------------------------
def test_unpicklable_func_with_a_pool_fails_before_any_work(work):
    calls = []

    def local(pset):
        calls.append(pset)
        return {}

    for func in (lambda pset: {}, local):
        with pytest.raises(TypeError, match=r"poolsize=2.*cannot be sent to worker processes"):
            ps.run(func, _params([1, 2]), poolsize=2)
    assert calls == []
    assert not DB.exists()


def test_poolsize_and_dask_client_together(work):
    class Client:
        def map(self, func, items):
            raise AssertionError("not reached")

    with pytest.raises(AssertionError):
        ps.run(func_double, _params([1]), poolsize=2, dask_client=Client())
    assert not Path("calc").exists()


def test_dask_like_client(work):
    class Client:
        def __init__(self):
            self.mapped = 0

        def map(self, func, items):
            self.mapped += 1
            return [func(item) for item in items]

        def gather(self, futures):
            return list(futures)

    client = Client()
    df = ps.run(func_double, _params([1, 2]), dask_client=client)
    assert client.mapped == 1
    assert df["result_"].tolist() == [2, 4]
    assert ps.df_read(DB).equals(df)


def test_poolsize_one_uses_a_pool(work):
    df = ps.run(func_double, _params([1, 2, 3]), poolsize=1)
    assert df["result_"].tolist() == [2, 4, 6]


# ---- foreign and broken databases ----------------------------------------------------------------
def _write_bytes(data: bytes) -> bytes:
    DB.parent.mkdir(parents=True, exist_ok=True)
    DB.write_bytes(data)
    return data


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(random.Random(0).randbytes(512), id="random-bytes"),
        pytest.param(b"", id="empty-file"),
        pytest.param(pickle.dumps([1, 2, 3]), id="pickled-list"),
    ],
)
def test_unreadable_database_gives_a_clear_error(work, payload):
    data = _write_bytes(payload)
    with pytest.raises(DatabaseError, match=re.escape(str(DB))):
        ps.df_read(str(DB))
    func = Counting()
    with pytest.raises(DatabaseError, match=re.escape(str(DB))) as info:
        ps.run(func, _params([1]))
    assert isinstance(info.value, ValueError)
    assert func.calls == 0
    assert DB.read_bytes() == data


def test_dataframe_without_pset_id_is_not_a_study_database(work):
    frame = pd.DataFrame({"x": [1, 2]}, dtype=object)
    data = _write_bytes(pickle.dumps(frame))
    assert ps.df_read(str(DB)).equals(frame)  # A DataFrame; run() decides it's no study.
    func = Counting()
    with pytest.raises(DatabaseError, match=re.escape(str(DB)) + ".*_pset_id"):
        ps.run(func, _params([1]))
    assert func.calls == 0
    assert DB.read_bytes() == data


def test_df_argument_without_pset_id_is_refused(work):
    with pytest.raises(DatabaseError, match="_pset_id"):
        ps.run(func_double, _params([1]), df=pd.DataFrame({"x": [1]}, dtype=object))


def _psweep_made_database(rows):
    """A database as psweep writes it: same columns, its own (joblib) hashes, no attrs."""
    df = ps.run(func_double, rows, save=False, calc_dir="calc")
    df = df.copy()
    df["_pset_hash"] = [f"{index:040x}" for index in range(len(df))]
    df.attrs = {}
    DB.parent.mkdir(parents=True, exist_ok=True)
    with open(DB, "wb") as handle:
        pickle.dump(df, handle)
    return df


def test_psweep_database_is_rehashed_once(work, monkeypatch):
    foreign = _psweep_made_database(_params([1, 2]))
    calls = []
    real = db_mod.df_update_pset_hash

    def counting(df, *args, **kwargs):
        calls.append(len(df))
        return real(df, *args, **kwargs)

    monkeypatch.setattr("xmanager.xm_local.sweep.database.df_update_pset_hash", counting)
    func = Counting()
    df = ps.run(func, _params([1, 2, 3]), skip_dups=True)
    assert [pset["a"] for pset in func.seen] == [3]
    assert calls == [2]
    assert df["_pset_id"].tolist()[:2] == foreign["_pset_id"].tolist()
    assert df["_pset_hash"].tolist()[:2] != foreign["_pset_hash"].tolist()
    assert df["_pset_hash"].iloc[0] != df["_pset_hash"].iloc[1]
    stored = ps.df_read(DB)
    assert stored.attrs.get("xm_pset_hash") is not None
    assert stored.equals(df)

    frame = xm_local.get_experiment(_studies()[0].experiment_id).to_dataframe()
    assert sorted(frame["_pset_id"]) == sorted(df["_pset_id"])  # psweep's rows are recorded too.

    calls.clear()
    func = Counting()
    df2 = ps.run(func, _params([1, 2, 3, 4]), skip_dups=True)
    assert [pset["a"] for pset in func.seen] == [4]
    assert calls == []
    assert df2["_pset_hash"].tolist()[:3] == df["_pset_hash"].tolist()


def test_psweep_database_skip_dups_with_nothing_new(work):
    _psweep_made_database(_params([1, 2]))
    func = Counting()
    df = ps.run(func, _params([2, 1]), skip_dups=True)
    assert func.calls == 0
    assert len(df) == 2


# ---- git -----------------------------------------------------------------------------------------
@pytest.fixture
def git_env(monkeypatch):
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def _git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _repo(work):
    _git("init", "-q")
    (work / "input.py").write_text("a = 1\n")
    _git("add", "-A")
    _git("commit", "-q", "-m", "initial")


def test_git_commits_the_run(work, git_env):
    _repo(work)
    df = ps.run(func_double, _params([1, 2]), git=True)
    message = _git("log", "-1", "--format=%s").strip()
    assert message == f"psweep: {work.name}: run_id={df['_run_id'].iloc[-1]}"
    assert _git("status", "--porcelain") == ""
    assert "calc/database.pk" in _git("ls-files")


def test_git_refuses_a_dirty_tree(work, git_env):
    _repo(work)
    (work / "input.py").write_text("a = 2\n")
    func = Counting()
    with pytest.raises(GitError, match="dirty"):
        ps.run(func, _params([1]), git=True)
    assert func.calls == 0
    assert not DB.exists()
    assert _git("log", "--format=%s").strip() == "initial"


def test_git_with_a_large_run_leaves_a_clean_tree(work, git_env, monkeypatch, single_threaded):
    from xmanager.xm_local.sweep import record as record_mod

    real_record = record_mod.record

    def slow_record(*args, **kwargs):  # A store that takes a moment (fixes the race's outcome).
        time.sleep(0.3)
        return real_record(*args, **kwargs)

    monkeypatch.setattr(record_mod, "record", slow_record)
    _repo(work)
    ps.run(func_double, _params(range(runner._Recorder.MIN_ROWS)), git=True)
    runner.wait_recorded()
    assert ".xm_journal" not in _git("ls-files")
    assert _git("status", "--porcelain") == ""
    ps.run(func_double, _params([-1]), git=True)  # Refuses a dirty tree.


def test_git_outside_a_repo(work, git_env, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(work.parent))
    with pytest.raises(GitError, match="no git repo"):
        ps.run(func_double, _params([1]), git=True)


# ---- run_local -----------------------------------------------------------------------------------
def test_run_local_is_run(work):
    df = ps.run_local(func_double, _params([1, 2]), calc_dir="other", tmpsave=True)
    assert list(df.columns) == PSWEEP_ORDER
    assert ps.df_read("other/database.pk").equals(df)
    assert (work / "other" / "tmpsave" / df["_run_id"].iloc[0]).is_dir()
    df = ps.run_local(func_double, _params([1, 2, 3]), calc_dir="other", skip_dups=True)
    assert df["a"].tolist() == [1, 2, 3]


# ---- the metadata store --------------------------------------------------------------------------
STORE_COLUMNS = {"a", "result_", "_pset_id", "_pset_hash", "_run_id", "_pset_seq", "_run_seq", "_status"}


def test_saved_run_is_an_experiment_in_the_store(work):
    df = ps.run(func_double, _params([1, 2, 3]))
    found = _studies()
    assert len(found) == 1
    frame = xm_local.get_experiment(found[0].experiment_id).to_dataframe()
    assert STORE_COLUMNS <= set(frame.columns)
    assert len(frame) == 3
    assert set(frame["_status"]) == {"completed"}
    assert sorted(frame["_pset_id"]) == sorted(df["_pset_id"])
    by_id = frame.set_index("_pset_id")
    for row in df.to_dict("records"):
        unit = by_id.loc[row["_pset_id"]]
        assert unit["a"] == row["a"]
        assert unit["result_"] == row["result_"]
        assert unit["_pset_hash"] == row["_pset_hash"]
        assert unit["_run_id"] == row["_run_id"]
        assert unit["_pset_seq"] == row["_pset_seq"]
        assert unit["_run_seq"] == row["_run_seq"]

    df = ps.run(func_double, _params([4, 5]))
    found = _studies()
    assert len(found) == 1
    frame = xm_local.get_experiment(found[0].experiment_id).to_dataframe()
    assert len(frame) == 5
    assert sorted(frame["_pset_id"]) == sorted(df["_pset_id"])
    assert sorted(frame["_run_seq"].tolist()) == [0, 0, 0, 1, 1]


def test_failed_psets_are_failed_units(work):
    df = ps.run(func_fail_odd, _params([0, 1]), on_error="record")
    frame = xm_local.get_experiment(_studies()[0].experiment_id).to_dataframe().set_index("_pset_id")
    assert frame.loc[df.loc[0, "_pset_id"], "_status"] == "completed"
    assert frame.loc[df.loc[1, "_pset_id"], "_status"] == "failed"


class Opaque:
    """A result value JSON does not know (picklable: defined at module level)."""


def test_results_json_lacks_are_still_recorded(work):
    df = ps.run(
        lambda pset: {"arr_": np.arange(3), "obj_": Opaque(), "nan_": float("nan"), "d_": {1: 2}},
        [{"a": 1, "p": np.float32(0.5)}, {"a": (1, 2), "p": None}],
    )
    frame = xm_local.get_experiment(_studies()[0].experiment_id).to_dataframe()
    assert sorted(frame["_pset_id"]) == sorted(df["_pset_id"])
    assert frame["arr_"].tolist()[0] == [0, 1, 2]


def test_result_with_tuple_keys_is_recorded(work, capsys):
    df = ps.run(lambda pset: {"counts_": {(1, 2): pset["a"]}}, _params([1, 2]))
    assert "could not record" not in capsys.readouterr().err
    found = _studies()
    assert len(found) == 1
    frame = xm_local.get_experiment(found[0].experiment_id).to_dataframe()
    assert sorted(frame["_pset_id"]) == sorted(df["_pset_id"])
    assert frame["counts_"].tolist() == [{"(1, 2)": 1}, {"(1, 2)": 2}]


def test_each_calc_dir_is_its_own_experiment(work):
    ps.run(func_double, _params([1]), calc_dir="one")
    ps.run(func_double, _params([1, 2]), calc_dir="two")
    one, two = _studies("one"), _studies("two")
    assert len(one) == len(two) == 1
    assert one[0].experiment_id != two[0].experiment_id
    assert len(xm_local.get_experiment(two[0].experiment_id).to_dataframe()) == 2


def test_simulate_and_save_false_record_nothing(work):
    ps.run(func_double, _params([1]), save=False)
    assert _studies() == []
    ps.run(func_double, _params([1]))
    ps.run(func_double, _params([2, 3]), simulate=True)
    assert _studies("calc.simulate") == []
    found = _studies()
    assert len(found) == 1
    assert len(xm_local.get_experiment(found[0].experiment_id).to_dataframe()) == 1


def test_large_run_is_recorded_by_a_forked_child(work, monkeypatch, single_threaded):
    forks = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    n = runner._Recorder.MIN_ROWS
    df = ps.run(func_double, _params(range(n)))
    assert len(forks) == 1, "a run of MIN_ROWS psets is recorded by a forked child"
    from xmanager.xm_local.sweep.runner import wait_recorded

    wait_recorded()
    found = _studies()
    assert len(found) == 1
    frame = xm_local.get_experiment(found[0].experiment_id).to_dataframe()
    assert len(frame) == n
    assert set(frame["_pset_id"]) == set(df["_pset_id"])
    assert set(frame["_status"]) == {"completed"}
    journal = work / "calc" / ".xm_journal"
    assert not journal.exists() or not any(journal.iterdir())

    # Without wait_recorded(): get_experiment waits for the pending write itself, even a slow one.
    from xmanager.xm_local.sweep import record as record_mod

    real_record = record_mod.record

    def slow_record(*args, **kwargs):
        time.sleep(0.3)
        return real_record(*args, **kwargs)

    monkeypatch.setattr(record_mod, "record", slow_record)
    df = ps.run(func_double, _params(range(n, 2 * n)))
    assert len(forks) == 2
    frame = xm_local.get_experiment(found[0].experiment_id).to_dataframe()
    assert len(frame) == 2 * n
    assert set(frame["_pset_id"]) == set(df["_pset_id"])
    assert set(frame["_status"]) == {"completed"}
    assert len(_studies()) == 1


# ---- argument checks -----------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{"a": 1}, "ab", 5, [1, 2]])
def test_params_must_be_a_list_of_dicts(work, params):
    with pytest.raises(TypeError, match="params"):
        ps.run(func_double, params)
    assert not Path("calc").exists()


def test_bad_poolsize(work):
    with pytest.raises(ValueError, match="poolsize"):
        ps.run(func_double, _params([1]), poolsize=0)


def test_database_basename(work):
    df = ps.run(func_double, _params([1]), database_basename="db2.pk")
    assert ps.df_read("calc/db2.pk").equals(df)
    assert not DB.exists()
    df = ps.run(func_double, _params([2]), database_basename="db2.pk")
    assert df["_run_seq"].tolist() == [0, 1]


def test_a_filtered_df_passed_in_is_renumbered(work):
    full = ps.run(func_double, _params([1, 2, 3]), save=False)
    df = ps.run(func_double, _params([4]), df=full[full["a"] != 2], save=False)
    assert df["a"].tolist() == [1, 3, 4]
    assert list(df.index) == [0, 1, 2]
    assert df["_pset_seq"].tolist() == [0, 2, 3]  # Sequence numbers are ids: they are kept, not reused.
