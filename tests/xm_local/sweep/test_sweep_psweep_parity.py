"""Parity with psweep 0.16: the same work through psweep and through our layer.

A psweep user script, run once with psweep and once with only its import line changed:
the two databases must have the same layout (columns and their order, dtypes, index,
values of every parameter and result, the type of every book-keeping cell); the calc
dirs must hold the same files. Then, in this process, many params (missing keys, None,
NaN, NA, mixed numbers, numpy scalars, nested values, datetimes, reserved ``_`` keys,
each ``fill_value``) go through both ``run``s and ``prep_batch``es: ``func`` must get,
and the database hold, the same values of the same types, cell by cell. psweep itself
is installed from PyPI into its own folder (tests/support/peer_venv.py), never into our venv.
"""

import datetime
import decimal
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from peer_venv import import_peer, peer_site
from xmanager.xm_local import sweep as ours

psweep = import_peer("psweep", "0.16.0")

USER_SCRIPT = textwrap.dedent(
    """
    import os, random, sys
    IMPORT_LINE

    def func(pset):
        print("running", pset["a"])
        return {"result_": pset["a"] * pset["b"], "label_": f"{pset['a']}-{pset['b']}"}

    a = ps.plist("a", [1, 2, 3])
    b = ps.plist("b", [77, 88])
    names = ps.plist("name", ["x", "y", "z"])
    params = ps.pgrid([zip(a, names), b])
    df = ps.run(func, params, tmpsave=True, capture_logs="db")
    more = ps.pgrid([zip(a, names), ps.plist("b", [5]), ps.plist("c", [None, 1.5])])
    df = ps.run(func, more, backup=True)
    df = ps.run(func, ps.pgrid([zip(a, names), b, ps.plist("c", [None])]), skip_dups=True)
    df = ps.run(func, ps.pgrid([zip(a, names), ps.plist("b", [5, 6]), ps.plist("c", [1.5])]), skip_dups=True)
    sim = ps.run(func, ps.pgrid([zip(a, names), ps.plist("b", [7]), ps.plist("c", [2.0])]), simulate=True)
    star = ps.stargrid({"a": 1, "b": 2}, [ps.plist("a", [1, 5]), ps.plist("b", [7])], vary_labels=["a", "b"])
    ps.run(func, star, calc_dir="star")
    ps.df_print(df, cols=["a", "b"])
    """
)


def _run(folder, import_line):
    os.makedirs(folder)
    script = USER_SCRIPT.replace("IMPORT_LINE", import_line)
    with open(os.path.join(folder, "study.py"), "w") as handle:
        handle.write(script)
    env = {**os.environ, "PYTHONPATH": peer_site("psweep", "0.16.0")}
    result = subprocess.run([sys.executable, "study.py"], cwd=folder, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    theirs, ours = str(root / "psweep"), str(root / "ours")
    out_theirs = _run(theirs, "import psweep as ps")
    os.environ.setdefault("XM_DATA_DIR", str(root / "xm-data"))
    out_ours = _run(ours, "from xmanager.xm_local import sweep as ps")
    return theirs, ours, out_theirs, out_ours


def _db(folder, name="calc"):
    with open(os.path.join(folder, name, "database.pk"), "rb") as handle:
        return pickle.load(handle)


@pytest.mark.parametrize("name", ["calc", "calc.simulate", "star"])
def test_same_database_layout(studies, name):
    theirs, ours, _, _ = studies
    expected, got = _db(theirs, name), _db(ours, name)
    assert list(got.columns) == list(expected.columns)
    assert list(got.dtypes) == list(expected.dtypes)
    assert type(got.index) is type(expected.index) and list(got.index) == list(expected.index)
    assert got["_pset_seq"].tolist() == list(got.index)
    assert got["_run_seq"].tolist() == expected["_run_seq"].tolist()
    for column in expected.columns:
        if column.startswith("_"):  # Missing cells too: NaN in a string column, NA in others, as psweep.
            assert [type(value).__name__ for value in got[column]] == [
                type(value).__name__ for value in expected[column]
            ], column
    params = [col for col in expected.columns if not col.startswith("_")]
    assert _table(got[params])[4] == _table(expected[params])[4]  # Values and their types, cell by cell.


def test_same_reserved_fields_and_logs(studies):
    theirs, ours, _, _ = studies
    expected, got = _db(theirs), _db(ours)
    assert got["_calc_dir"].tolist() == expected["_calc_dir"].tolist()
    assert got["_exec_host"].tolist() == expected["_exec_host"].tolist()
    assert got["_logs"].astype(str).tolist() == expected["_logs"].astype(str).tolist()
    assert (got["_pset_id"].str.len() == 36).all() and got["_pset_id"].is_unique
    assert (got["_pset_hash"].str.len() == 40).all()
    # Equal psets share a hash, as in psweep (the values differ: ours is not joblib's).
    for frame in (got, expected):
        groups = frame.astype(str).groupby(["a", "b", "c"])["_pset_hash"].nunique()
        assert set(groups) == {1}


def test_same_files_in_the_calc_dirs(studies):
    theirs, ours, _, _ = studies

    def layout(folder):
        names = set()
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != ".xm_journal"]
            rel = os.path.relpath(root, folder)
            depth = 0 if rel == "." else rel.count(os.sep) + 1
            names.add((depth, len(files)))
        backups = sorted(name.split("_run_id_")[0][:8] for name in os.listdir(folder) if ".bak_" in name)
        return sorted(names), backups, sorted(os.listdir(os.path.join(folder, "calc")))

    assert layout(ours) == layout(theirs)


def test_same_printed_output(studies):
    _, _, out_theirs, out_ours = studies
    assert out_ours == out_theirs


# ---- the values func gets and the database holds: psweep's DataFrame round trip --------------------
# Both tools run in this process, each in its own folder (same relative calc dir), on the same params.
# What func saw and what the database holds are compared cell by cell: type and value, NaN vs NA vs
# None vs NaT, Timestamp units, array dtypes. Ids, times and hashes differ by design; only their types
# are compared.
NA, NAN = pd.NA, float("nan")
_PER_RUN = {"_pset_id", "_run_id", "_pset_hash", "_time_utc", "_exec_host", "_pset_runtime"}


def _cell(value):
    """A comparable description of one value: its type and its value (NaN, NA, None, NaT told apart)."""
    kind = type(value).__name__
    if isinstance(value, np.ndarray):
        return (kind, str(value.dtype), value.shape, repr(value.tolist()))
    if isinstance(value, pd.Timestamp):
        return (kind, value.isoformat(), value.unit, str(value.tz))
    if isinstance(value, float) and value != value:
        return (kind, "nan")
    if isinstance(value, (list, tuple)):
        return (kind, tuple(_cell(item) for item in value))
    if isinstance(value, dict):
        return (kind, tuple((key, _cell(item)) for key, item in value.items()))
    return (kind, repr(value))


def _seen(pset):
    return [(key, _cell(value) if key not in _PER_RUN else type(value).__name__) for key, value in pset.items()]


class _Func:
    """Records the psets it gets; returns ``results[k]`` (a dict) on its k-th call."""

    def __init__(self, results=None):
        self.results = results
        self.seen = []

    def __call__(self, pset):
        self.seen.append(_seen(pset))
        if self.results is None:
            return {"out_": len(self.seen)}
        return dict(self.results[len(self.seen) - 1])


def _table(df):
    """The database as comparable data: columns, dtypes, and every cell (per-run fields: their type)."""
    rows = [
        [type(value).__name__ if col in _PER_RUN else _cell(value) for col, value in zip(df.columns, row)]
        for row in df.itertuples(index=False, name=None)
    ]
    return list(df.columns), [str(dtype) for dtype in df.dtypes], type(df.index).__name__, list(df.index), rows


def _both(tmp_path, monkeypatch, runs):
    """Runs ``runs`` (each ``(params, results, kwds)``) with psweep and with ours; what each saw and saved."""
    out = {}
    for name, module in (("psweep", psweep), ("ours", ours)):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        seen, frames = [], []
        for params, results, kwds in runs:
            func = _Func(results)
            df = module.run(func, params, **kwds)
            seen.append(func.seen)
            frames.append(_table(df))
            if kwds.get("save", True) and not kwds.get("simulate"):
                with open(os.path.join(kwds.get("calc_dir", "calc"), "database.pk"), "rb") as handle:
                    frames.append(_table(pickle.load(handle)))
        out[name] = (seen, frames)
    return out["psweep"], out["ours"]


def _assert_same(tmp_path, monkeypatch, runs):
    (seen_theirs, frames_theirs), (seen_ours, frames_ours) = _both(tmp_path, monkeypatch, runs)
    for index, (theirs, got) in enumerate(zip(seen_theirs, seen_ours)):
        assert got == theirs, f"run {index}: func got other psets than psweep gives"
    for index, (theirs, got) in enumerate(zip(frames_theirs, frames_ours)):
        assert got[:4] == theirs[:4], f"frame {index}: columns/dtypes/index differ"
        for row, (row_theirs, row_got) in enumerate(zip(theirs[4], got[4])):
            assert row_got == row_theirs, f"frame {index} row {row}: {list(zip(got[0], row_got))}"


class _Box:
    """A value pandas cannot look into."""

    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, _Box) and other.x == self.x

    def __repr__(self):
        return f"_Box({self.x!r})"


PARAM_CASES = {
    "brief": [{"a": 1, "b": None}, {"a": 2.5, "c": NAN}, {"a": 3}],
    "ints": [{"a": 1}, {"a": 2}, {"a": -(2**40)}],
    "floats": [{"a": 1.5}, {"a": -0.25}],
    "int_none": [{"a": 1}, {"a": None}, {"a": 3}],
    "int_nan": [{"a": 1}, {"a": NAN}],
    "int_float_missing": [{"a": 1}, {"a": 2.5}, {}],
    "missing_keys": [{"a": 1}, {"b": 2}, {"c": "x"}],
    "explicit_na": [{"a": NA, "b": "s"}, {"a": 1.5, "b": NA}],
    "bools": [{"a": True}, {"a": False}],
    "bool_none": [{"a": True}, {"a": None}],
    "bool_int_float": [{"a": True}, {"a": 1}, {"a": 2.5}],
    "strings": [{"s": "x"}, {"s": ""}, {"s": "nan"}],
    "string_none": [{"s": "x"}, {"s": None}, {}],
    "string_int": [{"s": "x"}, {"s": 1}],
    "numpy": [
        {"i": np.int64(1), "f": np.float32(1.1), "b": np.bool_(True), "s": np.str_("x"), "u": np.uint8(3)},
        {"i": np.int32(2), "f": np.float64(2.5), "b": np.bool_(False), "s": np.str_("y"), "u": np.uint8(4)},
    ],
    "numpy_with_python": [{"i": np.int64(1)}, {"i": 2}, {"i": 2.5}],
    "numpy_with_missing": [{"i": np.int64(1), "f": np.float32(1.5)}, {"i": None, "f": np.float32("nan")}],
    "nested": [
        {"l": [1, 2], "d": {"x": 1}, "t": (1, 2), "arr": np.array([1.0, 2.0]), "st": {3}},
        {"l": [], "d": {}, "t": (), "arr": np.array([], dtype=np.int64), "st": set()},
        {"l": None, "d": None, "arr": None},
    ],
    "nested_mixed_with_scalars": [{"v": [1]}, {"v": 2}, {"v": "x"}, {"v": None}],
    "zero_dim_arrays": [{"z": np.array(1.5)}, {"z": np.array(np.nan)}, {"z": 2}],
    "big_ints": [{"a": 2**63}, {"a": 1.5}, {"b": 2**70}, {"b": 1.5}],
    "datetimes": [
        {"t": pd.Timestamp("2020-01-01"), "dt": datetime.datetime(2021, 1, 1), "d": datetime.date(2020, 1, 2)},
        {"t": None, "dt": datetime.datetime(2021, 1, 2), "d": None},
    ],
    "tz_timestamps": [{"t": pd.Timestamp("2020-01-01", tz="UTC")}, {"t": None}],
    "timedeltas": [{"td": datetime.timedelta(1)}, {"td": pd.Timedelta(5)}, {"td": None}],
    "nat_and_decimal_nan": [{"t": pd.NaT, "x": decimal.Decimal("NaN")}, {"t": 1, "x": decimal.Decimal("1.5")}],
    "objects": [{"o": _Box(1)}, {"o": _Box(2)}, {}],
    "reserved_columns": [{"a": 1, "_note": None, "_w": 1}, {"a": 2, "_note": "x", "_w": 2.5}],
    "reserved_run_fields": [{"a": 1, "_pset_id": "mine", "_run_seq": 7}, {"a": 2}],
    "key_order": [{"a": 1, "b": 2}, {"b": 3, "a": 4}, {"c": 5, "a": 6}],
}


@pytest.mark.parametrize("fill_value", [NA, None, NAN], ids=["NA", "None", "nan"])
@pytest.mark.parametrize("case", sorted(PARAM_CASES))
def test_func_and_database_get_what_psweep_gives(tmp_path, monkeypatch, case, fill_value):
    _assert_same(tmp_path, monkeypatch, [(PARAM_CASES[case], None, {"fill_value": fill_value})])


def test_default_fill_value_is_psweeps(tmp_path, monkeypatch):
    _assert_same(tmp_path, monkeypatch, [(PARAM_CASES["brief"], None, {})])


@pytest.mark.parametrize(
    "results",
    [
        [{"r_": 1}, {"r_": 2.5}, {"r_": 3}],
        [{"r_": 1}, {"r_": None}, {"r_": 3}],
        [{"r_": "x"}, {}, {"r_": None}],
        [{"r_": [1, 2]}, {"r_": np.array([1.0])}, {"r_": None}],
        [{"r_": np.float32(1.5), "k_": True}, {"r_": np.float64(2.5), "k_": np.bool_(False)}, {"k_": None}],
        [{"r_": pd.Timestamp("2020-01-01")}, {"r_": datetime.datetime(2020, 1, 2)}, {}],
    ],
    ids=["int_float", "int_none", "str_missing", "nested", "numpy", "datetimes"],
)
def test_results_in_the_database_as_psweep_keeps_them(tmp_path, monkeypatch, results):
    _assert_same(tmp_path, monkeypatch, [([{"a": 1}, {"a": 2}, {"a": 3}], results, {})])


def test_save_false_returns_what_psweep_returns(tmp_path, monkeypatch):
    _assert_same(tmp_path, monkeypatch, [(PARAM_CASES["brief"], [{"r_": 1}, {"r_": 1.5}, {}], {"save": False})])


EXTEND_CASES = {
    # An int column that a later run turns float: psweep's database then holds floats in the old rows too.
    "ints_then_floats": [([{"a": 1}, {"a": 2}], None, {}), ([{"a": 2.5}], None, {})],
    "floats_then_ints": [([{"a": 1.5}], None, {}), ([{"a": 2}, {"a": 3}], None, {})],
    # A new string column: the old rows' cells are the string column's NaN.
    "new_string_column": [([{"a": 1}], None, {}), ([{"a": 2, "s": "x"}], None, {})],
    "new_number_column": [([{"a": 1}], None, {}), ([{"a": 2, "n": 5}], None, {})],
    "results_change_type": [
        ([{"a": 1}, {"a": 2}], [{"r_": 1}, {"r_": 2}], {}),
        ([{"a": 3}], [{"r_": 0.5}], {}),
        ([{"a": 4}], [{"r_": None}], {}),
        ([{"a": 5}], [{"r_": "x"}], {}),
    ],
    # The second run's a=1 and a=2 become 1.0 and 2.0, new psets for both tools. (Not compared here: a pset
    # with a None/NA key, which psweep's joblib hash tells from the pset without it and ours does not.)
    "skip_dups": [
        ([{"a": 1}, {"a": 2}], None, {}),
        ([{"a": 1}, {"a": 2}, {"a": 3.5}], None, {"skip_dups": True}),
        ([{"a": 1.0}], None, {"skip_dups": True}),  # Nothing to run: psweep still washes and saves.
    ],
    "fill_none_then_default": [
        ([{"a": 1}, {"b": "x"}], None, {"fill_value": None}),
        ([{"a": 2}], None, {}),
    ],
    "capture_logs_then_not": [
        ([{"a": 1}], None, {"capture_logs": "db"}),
        ([{"a": 2}], None, {}),
    ],
    "timestamps_then_missing": [
        ([{"t": pd.Timestamp("2020-01-01")}], None, {}),
        ([{"a": 1}], None, {}),
    ],
    "nested_then_scalars": [([{"v": [1]}], None, {}), ([{"v": 2}, {"v": None}], None, {})],
    "simulate": [([{"a": 1}], None, {}), ([{"a": 2.5}, {"b": None}], None, {"simulate": True})],
}


@pytest.mark.parametrize("case", sorted(EXTEND_CASES))
def test_extending_a_study_gives_psweeps_database(tmp_path, monkeypatch, case):
    _assert_same(tmp_path, monkeypatch, EXTEND_CASES[case])


def test_extending_in_one_process_and_in_fresh_ones_agree(tmp_path, monkeypatch):
    """Ours remembers what each column holds between runs of one process; a re-read file gives the same."""
    from xmanager.xm_local.sweep import runner

    frames = {}
    for name in ("warm", "cold"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        frames[name] = []
        for params, results, kwds in EXTEND_CASES["results_change_type"] + EXTEND_CASES["new_string_column"]:
            if name == "cold":
                runner._CACHE.clear()
            frames[name].append(_table(ours.run(_Func(results), params, **kwds)))
    assert frames["warm"] == frames["cold"]


def _templates(root):
    calc = root / "templates" / "calc"
    calc.mkdir(parents=True)
    (calc / "input.txt").write_text("a={{a}} b={{b}} c={{c}}\n")
    machine = root / "templates" / "machines" / "box"
    machine.mkdir(parents=True)
    (machine / "info.yaml").write_text("subcmd: bash\n")
    (machine / "jobscript").write_text("echo {{a}}\n")


def _rendered(folder, df):
    """Per pset (in _pset_seq order): the rendered input file and the pickled pset's cells."""
    out = []
    for pset_id in df.sort_values("_pset_seq")["_pset_id"]:
        text = (folder / pset_id / "input.txt").read_text() if (folder / pset_id).exists() else None
        pset = pickle.loads((folder / pset_id / "pset.pk").read_bytes()) if text is not None else None
        cells = None if pset is None else [(key, _cell(value)) for key, value in pset.items() if key not in _PER_RUN]
        out.append((text, cells))
    return out


@pytest.mark.parametrize("simulate", [False, True], ids=["run", "simulate"])
def test_prep_batch_renders_what_psweep_renders(tmp_path, monkeypatch, simulate):
    first = [{"a": 1, "b": None, "c": 1}, {"a": 2.5, "c": np.int64(2)}, {"a": 3, "b": "x", "c": 3}]
    second = [{"a": 4, "b": None, "c": 4}, {"a": 5, "b": "y", "c": 5.5}]
    out = {}
    for name, module in (("psweep", psweep), ("ours", ours)):
        folder = tmp_path / name
        folder.mkdir()
        _templates(folder)
        monkeypatch.chdir(folder)
        df1 = module.prep_batch(first, write_pset=True)
        df2 = module.prep_batch(second, write_pset=True, simulate=simulate)
        out[name] = (
            _table(df1)[4],
            _table(df2)[4],
            _rendered(folder / "calc", df1),
            _rendered(folder / ("calc.simulate" if simulate else "calc"), df2),
        )
    assert out["ours"] == out["psweep"]
