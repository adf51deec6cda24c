"""The df_* helpers (database.py) and the ``ps`` module itself, against psweep 0.16's contracts."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import uuid

import numpy as np
import pandas as pd
import pytest
from xmanager.xm_local import sweep as ps
from xmanager.xm_local.sweep.database import DatabaseError

# psweep 0.16's public names (dir(psweep) without what it merely imports, e.g. partial, wraps).
PSWEEP_NAMES = {
    "CALC_DIR", "DATABASE_BASENAME", "FILL_VALUE", "GIT_ADD_ALL", "PANDAS_DEFAULT_ORIENT", "PANDAS_TIME_UNIT",
    "PSET_HASH_ALG", "PsweepHashError", "FileTemplate", "Machine", "capture_logs_wrapper", "check_calc_dir",
    "df_ensure_dtypes", "df_extract_dicts", "df_extract_params", "df_extract_pset", "df_extract_row",
    "df_filter_conds", "df_print", "df_read", "df_to_json", "df_update_pset_cols", "df_update_pset_hash",
    "df_write", "file_read", "file_write", "filter_cols", "filter_params_dup_hash", "filter_params_unique",
    "flatten", "flatten_dict", "fullpath", "func_wrapper", "gather_calc_templates", "gather_machines",
    "get_many_uuids", "get_uuid", "git_clean", "git_enter", "git_exit", "in_git_repo", "intspace", "is_seq",
    "itr", "itr2params", "json_read", "json_write", "logspace", "makedirs", "merge_dicts", "pgrid",
    "pickle_read", "pickle_write", "plist", "prep_batch", "pset_hash", "run", "stargrid", "system",
}


def func(pset):
    return {"result_": pset["a"] * 10}


@pytest.fixture
def study(tmp_path):
    """A database from two runs (save=False): params a, b; result result_."""
    df = ps.run(func, ps.pgrid([ps.plist("a", [1, 2]), ps.plist("b", ["x", "y"])]), save=False)
    return ps.run(func, [{"a": 3, "b": "x"}], df=df, save=False)


# ---- the module --------------------------------------------------------------------------------
def test_import_does_not_load_pandas():
    code = (
        "import sys\n"
        "import xmanager.xm_local.sweep as ps\n"
        "assert ps.CALC_DIR == 'calc'\n"
        "print(sorted(m for m in ('pandas', 'numpy', 'jinja2') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_dir_lists_the_psweep_names():
    names = set(dir(ps))
    assert PSWEEP_NAMES <= names
    assert "run_local" in names
    for name in PSWEEP_NAMES:
        assert getattr(ps, name) is not None


def test_constants_and_aliases():
    assert ps.FILL_VALUE is pd.NA
    assert issubclass(ps.PsweepHashError, TypeError)
    assert ps.CALC_DIR == "calc"
    assert ps.DATABASE_BASENAME == "database.pk"
    assert ps.PSET_HASH_ALG == "sha1"
    assert ps.PANDAS_DEFAULT_ORIENT == "records"
    assert ps.PANDAS_TIME_UNIT == "s"
    assert ps.GIT_ADD_ALL == "git add -A -v"
    with pytest.raises(AttributeError, match="no_such_name"):
        ps.no_such_name  # noqa: B018
    with pytest.raises(ps.PsweepHashError):
        ps.pset_hash({"a": threading.Lock()})


def test_star_import_has_every_psweep_name():
    namespace: dict = {}
    exec("from xmanager.xm_local.sweep import *", namespace)
    assert PSWEEP_NAMES <= set(namespace)


# ---- df_write / df_read ------------------------------------------------------------------------
def test_pickle_round_trip(tmp_path, study):
    study.attrs["note"] = "kept"
    fn = tmp_path / "sub" / "dir" / "database.pk"  # Folders are created.
    ps.df_write(str(fn), study)
    back = ps.df_read(str(fn))
    assert back.equals(study)
    assert list(back.columns) == list(study.columns)
    assert set(back.dtypes) == {np.dtype(object)}
    assert isinstance(back.index, pd.RangeIndex)
    assert back.attrs["note"] == "kept"
    assert all(isinstance(value, pd.Timestamp) for value in back["_time_utc"])
    ps.df_write(fn, study)  # os.PathLike works too.
    assert ps.df_read(fn).equals(study)


def test_pickle_keeps_na_and_python_types(tmp_path):
    df = pd.DataFrame({"a": [1, pd.NA], "b": [[1, 2], {"c": 3}], "c": [None, 1.5]}, dtype=object)
    ps.df_write(tmp_path / "db.pk", df)
    back = ps.df_read(tmp_path / "db.pk")
    assert back.loc[1, "a"] is pd.NA
    assert back.loc[0, "b"] == [1, 2] and back.loc[1, "b"] == {"c": 3}
    assert back.loc[0, "c"] is None
    assert type(back.loc[0, "a"]) is int


def test_json_round_trip_records_and_dates(tmp_path, study):
    fn = tmp_path / "db.json"
    ps.df_write(str(fn), study, fmt="json")
    records = json.loads(fn.read_text())
    assert isinstance(records, list) and len(records) == len(study)  # orient=records
    assert list(records[0]) == list(study.columns)
    for record, row in zip(records, study.to_dict("records")):
        assert record["_time_utc"] == row["_time_utc"].strftime("%Y-%m-%dT%H:%M:%S")  # ISO, seconds
        assert record["a"] == row["a"] and record["b"] == row["b"] and record["result_"] == row["result_"]
        assert record["_pset_id"] == row["_pset_id"]
    back = ps.df_read(str(fn), fmt="json")
    assert list(back.columns) == list(study.columns)
    assert back["a"].tolist() == study["a"].tolist()
    assert back["b"].tolist() == study["b"].tolist()
    assert back["_pset_hash"].tolist() == study["_pset_hash"].tolist()
    assert back["_pset_seq"].tolist() == study["_pset_seq"].tolist()
    assert pd.to_datetime(back["_time_utc"]).tolist() == [t.floor("s") for t in study["_time_utc"]]
    assert np.allclose(back["_pset_runtime"].astype(float), study["_pset_runtime"].astype(float), rtol=1e-12)


def test_df_to_json_defaults(study):
    text = ps.df_to_json(study)
    assert text.startswith("[{")
    assert json.loads(text)[0]["_pset_id"] == study["_pset_id"].iloc[0]
    assert ps.df_to_json(study, orient="columns").startswith('{"a":')
    precise = ps.df_to_json(pd.DataFrame({"x": [0.1234567890123456789]}))
    assert json.loads(precise)[0]["x"] == pytest.approx(0.1234567890123456789, rel=1e-14)


def test_df_write_is_atomic(tmp_path, study):
    fn = tmp_path / "database.pk"
    ps.df_write(str(fn), study)
    ps.df_write(str(fn), study.iloc[:1])
    assert sorted(os.listdir(tmp_path)) == ["database.pk"]
    before = fn.read_bytes()
    broken = study.copy()
    broken.loc[0, "result_"] = lambda: None  # Cannot be pickled.
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises
        ps.df_write(str(fn), broken)
    assert fn.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["database.pk"]


def test_df_write_argument_order_and_formats(tmp_path, study):
    with pytest.raises(TypeError, match="fn, df"):
        ps.df_write(study, str(tmp_path / "db.pk"))
    with pytest.raises(ValueError, match="fmt"):
        ps.df_write(str(tmp_path / "db.h5"), study, fmt="hdf5")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="fmt"):
        ps.df_read(str(tmp_path / "db.h5"), fmt="hdf5")


def test_df_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ps.df_read(str(tmp_path / "missing.pk"))
    garbage = tmp_path / "garbage.pk"
    garbage.write_bytes(b"\x80\x05not a pickle at all")
    with pytest.raises(DatabaseError, match="garbage.pk"):
        ps.df_read(str(garbage))
    listed = tmp_path / "list.pk"
    listed.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DatabaseError, match="list.pk.*dict"):
        ps.df_read(str(listed))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(DatabaseError, match="bad.json"):
        ps.df_read(str(bad_json), fmt="json")
    assert issubclass(DatabaseError, ValueError)
    assert bad_json.read_text() == "{not json"


# ---- df_print ----------------------------------------------------------------------------------
@pytest.fixture
def small():
    return pd.DataFrame({"b": [1, 2], "a": [3, 4], "_c": [5, 6], "d_": [7, 8]})


def _header(capsys) -> list[str]:
    out = capsys.readouterr().out
    return out.splitlines()[0].split()


def test_df_print_sorted_and_hides_prefix_columns(small, capsys):
    ps.df_print(small)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["a", "b", "d_"]
    assert lines[1].split() == ["3", "1", "7"]
    assert len(lines) == 3  # Header and rows, no index column.


def test_df_print_options(small, capsys):
    ps.df_print(small, prefix_cols=True)
    assert _header(capsys) == ["_c", "a", "b", "d_"]
    ps.df_print(small, cols=["b"])
    assert _header(capsys) == ["b"]
    ps.df_print(small, cols=["b", "a"], prefix_cols=True)
    assert _header(capsys) == ["_c", "a", "b"]
    ps.df_print(small, cols=["a", "_c"])
    assert _header(capsys) == ["_c", "a"]
    ps.df_print(small, skip_cols=["a"])
    assert _header(capsys) == ["b", "d_"]
    ps.df_print(small, skip_cols=["a"], prefix_cols=True)
    assert _header(capsys) == ["_c", "b", "d_"]
    ps.df_print(small, index=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["0", "3", "1", "7"]
    with pytest.warns(DeprecationWarning, match="prefix_cols"):
        ps.df_print(small, special_cols=True)
    assert _header(capsys) == ["_c", "a", "b", "d_"]


def test_df_print_cols_and_skip_cols_together(small, capsys):
    with pytest.raises(ValueError):
        ps.df_print(small, cols=["a"], skip_cols=["b"])
    assert capsys.readouterr().out == ""


# ---- df_filter_conds ---------------------------------------------------------------------------
@pytest.fixture
def numbers():
    return pd.DataFrame({"a": np.arange(10), "b": np.arange(10) + 4})


def test_df_filter_conds_ops(numbers):
    c1 = numbers.a > 3
    c2 = numbers.b < 9
    c3 = numbers.a % 2 == 0
    assert ps.df_filter_conds(numbers, [c1, c2, c3]).equals(numbers[c1 & c2 & c3])
    assert ps.df_filter_conds(numbers, [c1, c2, c3], op="and")["a"].tolist() == [4]
    assert ps.df_filter_conds(numbers, [c1, c2, c3], op="or").equals(numbers[c1 | c2 | c3])
    assert ps.df_filter_conds(numbers, [c1, c2, c3], op="xor").equals(numbers[c1 ^ c2 ^ c3])
    assert ps.df_filter_conds(numbers, [c1, c2], op="xor")["a"].tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert ps.df_filter_conds(numbers, [c1]).equals(numbers[c1])
    assert ps.df_filter_conds(numbers, []).equals(numbers)


def test_df_filter_conds_accepts_an_iterator(numbers):
    conds = (numbers.a > limit for limit in (2, 5))
    assert ps.df_filter_conds(numbers, conds)["a"].tolist() == [6, 7, 8, 9]
    conds = iter([numbers.a < 2, numbers.a > 8])
    assert ps.df_filter_conds(numbers, conds, op="or")["a"].tolist() == [0, 1, 9]
    assert ps.df_filter_conds(numbers, iter([numbers.a > 2, numbers.a.to_numpy() < 5]))["a"].tolist() == [3, 4]


def test_df_filter_conds_bad_op(numbers):
    with pytest.raises(ValueError, match="op"):
        ps.df_filter_conds(numbers, [numbers.a > 1], op="nand")


# ---- extracting --------------------------------------------------------------------------------
def test_df_extract_dicts_preserves_types():
    df = pd.DataFrame({"a": [1, pd.NA], "b": [np.int64(1), 2.5], "_c": ["x", "y"]}, dtype=object)
    rows = ps.df_extract_dicts(df)
    assert rows[0] == {"a": 1, "b": 1, "_c": "x"}
    assert type(rows[0]["b"]) is np.int64
    assert rows[1]["a"] is pd.NA
    assert list(rows[0]) == ["a", "b", "_c"]
    rows = ps.df_extract_dicts(df, py_types=True)
    assert rows[1]["a"] is None
    assert rows[0]["_c"] == "x"


def test_df_extract_params_reproduces_params_and_hashes(study):
    params = ps.df_extract_params(study)
    assert params == [{"a": a, "b": b} for a, b in zip(study["a"], study["b"])]
    assert [ps.pset_hash(pset) for pset in params] == study["_pset_hash"].tolist()
    assert ps.df_extract_params(study, py_types=True) == params


def test_df_extract_row_and_pset(study):
    pset_id = study["_pset_id"].iloc[2]
    row = ps.df_extract_row(study, pset_id)
    assert row == study.iloc[2].to_dict()
    assert set(row) == set(study.columns)
    assert ps.df_extract_row(study, pset_id, kind="pset") == {"a": 2, "b": "x"}
    assert ps.df_extract_row(study, pset_id, kind="post") == {"result_": 20}
    assert set(ps.df_extract_row(study, pset_id, kind="prefix")) == {c for c in study.columns if c.startswith("_")}
    assert ps.df_extract_pset(study, pset_id) == {"a": 2, "b": "x"}
    assert ps.df_extract_row(study, pset_id, py_types=True)["a"] == 2


def test_df_extract_row_wants_a_unique_pset_id(study):
    doubled = pd.concat([study, study.iloc[:1]], ignore_index=True)
    pset_id = study["_pset_id"].iloc[0]
    with pytest.raises(AssertionError):
        ps.df_extract_row(doubled, pset_id)
    with pytest.raises(AssertionError):
        ps.df_extract_pset(doubled, pset_id)
    with pytest.raises(AssertionError):
        ps.df_extract_row(study, "no-such-id")
    assert ps.df_extract_pset(doubled, study["_pset_id"].iloc[1]) == {"a": 1, "b": "y"}


# ---- dtypes and columns ------------------------------------------------------------------------
def test_df_ensure_dtypes():
    df = pd.DataFrame({"i": [1, 2], "f": [1.5, np.nan], "l": [[1, np.nan], [2]]})
    df_copy = df.copy()
    out = ps.df_ensure_dtypes(df)
    assert set(out.dtypes) == {np.dtype(object)}
    assert out.loc[1, "f"] is pd.NA
    assert out.loc[0, "i"] == 1 and out.loc[0, "f"] == 1.5
    assert out.loc[0, "l"][0] == 1 and np.isnan(out.loc[0, "l"][1])  # Non-scalar cells are left alone.
    assert df.equals(df_copy)  # The input is not modified.
    out = ps.df_ensure_dtypes(df, fill_value=None)
    # As psweep: None goes through pandas' inference, so a float column holds NaN.
    assert isinstance(out.loc[1, "f"], float) and np.isnan(out.loc[1, "f"])
    assert ps.df_ensure_dtypes(pd.DataFrame({"b": [True, np.nan]}), fill_value=None)["b"].tolist() == [True, None]
    out = ps.df_ensure_dtypes(pd.DataFrame({"x": [pd.NA, pd.NaT, 1]}, dtype=object), fill_value=-1)
    assert out["x"].tolist() == [-1, -1, 1]


@pytest.mark.parametrize("dtype", [None, object])
def test_df_ensure_dtypes_string_column_with_a_missing_value(dtype):
    df = pd.DataFrame({"s": ["x", None]}, dtype=dtype)
    out = ps.df_ensure_dtypes(df)
    assert out["s"].dtype == object
    # As psweep: pandas infers a string column, whose missing value is NaN, then goes back to object.
    assert isinstance(out.loc[1, "s"], float) and np.isnan(out.loc[1, "s"])


def test_df_ensure_dtypes_keeps_a_run_database_as_it_is():
    df = ps.run(lambda pset: {"r_": "ok"}, [{"s": "x"}, {"t": 1}], save=False)
    assert df["s"].dtype == object and np.isnan(df.loc[1, "s"])  # A string column: NaN, as in psweep.
    assert df.loc[0, "t"] is pd.NA and df.loc[1, "t"] == 1  # A number column: NA.
    out = ps.df_ensure_dtypes(df)
    assert set(out.dtypes) == {np.dtype(object)}
    assert out.equals(df)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("pset", ["a", "b"]),
        ("pre", ["_c", "_pset_id"]),
        ("prefix", ["_c", "_pset_id"]),
        ("post", ["d_", "result_"]),
        ("postfix", ["d_", "result_"]),
    ],
)
def test_filter_cols(kind, expected):
    cols = ["a", "_c", "d_", "b", "_pset_id", "result_"]
    assert ps.filter_cols(cols, kind=kind) == expected


def test_filter_cols_default_and_bad_kind():
    assert ps.filter_cols(["a", "_b", "c_"]) == ["a"]
    with pytest.raises(ValueError, match="kind"):
        ps.filter_cols(["a"], kind="params")


def test_df_update_pset_hash(study):
    expected = study["_pset_hash"].tolist()
    broken = study.copy()
    broken["_pset_hash"] = "0" * 40
    broken.attrs = {}
    fixed = ps.df_update_pset_hash(broken, copy=True)
    assert fixed["_pset_hash"].tolist() == expected
    assert broken["_pset_hash"].tolist() == ["0" * 40] * len(study)  # copy=True leaves the input alone.
    assert fixed.attrs.get("xm_pset_hash") is not None
    same = ps.df_update_pset_hash(broken)
    assert same is broken
    assert broken["_pset_hash"].tolist() == expected
    # A frame without the column gets one.
    bare = study[["a", "b", "result_"]].copy()
    assert ps.df_update_pset_hash(bare)["_pset_hash"].tolist() == expected


def test_df_update_pset_cols(study):
    expected = study["_pset_hash"].tolist()
    out = ps.df_update_pset_cols(study, ["a", "b", "c"], copy=True)
    assert "c" not in study.columns
    assert all(value is pd.NA for value in out["c"])
    assert out["_pset_hash"].tolist() == expected  # An NA cell hashes like an absent key.
    out = ps.df_update_pset_cols(study, ["a", "b", "c"], fill_value=0, copy=True)
    assert out["c"].tolist() == [0] * len(study)
    assert out["_pset_hash"].tolist() == [ps.pset_hash({"a": a, "b": b, "c": 0}) for a, b in zip(study.a, study.b)]
    assert study["_pset_hash"].tolist() == expected
    out = ps.df_update_pset_cols(study, ["a", "b"])
    assert list(out.columns) == list(study.columns)
    assert out["_pset_hash"].tolist() == expected


# ---- check_calc_dir ----------------------------------------------------------------------------
def test_check_calc_dir(tmp_path, study):
    ids = study["_pset_id"].tolist()
    for pset_id in ids[:3]:
        (tmp_path / pset_id).mkdir()
    stray = str(uuid.uuid4())
    (tmp_path / stray).mkdir()
    (tmp_path / "tmpsave").mkdir()
    (tmp_path / "database.pk").write_bytes(b"")
    (tmp_path / "run_local.sh").write_text("")
    result = ps.check_calc_dir(str(tmp_path), study)
    assert result == {"db_not_disk": set(ids[3:]), "disk_not_db": {stray}}
    for pset_id in ids[3:]:
        (tmp_path / pset_id).mkdir()
    (tmp_path / stray).rmdir()
    assert ps.check_calc_dir(str(tmp_path), study) == {"db_not_disk": set(), "disk_not_db": set()}
