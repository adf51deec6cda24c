"""A psweep 0.16 user script, run once with psweep and once with only its import line changed.

The two databases must have the same layout: columns and their order, dtypes, index,
values of every parameter and result, the types of the book-keeping fields; the calc
dir must hold the same files. psweep itself is installed by the test set-up.
"""

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

psweep = pytest.importorskip("psweep", reason="psweep 0.16 is installed by setup_scripts/test.sh")

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
    result = subprocess.run([sys.executable, "study.py"], cwd=folder, capture_output=True, text=True)
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


def _missing(value):
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


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
        if column.startswith("_"):  # Missing cells may be NA (ours) or NaN (psweep's concat).
            kinds = {"missing" if _missing(value) else type(value).__name__ for value in got[column]}
            assert kinds == {"missing" if _missing(value) else type(value).__name__ for value in expected[column]}
    params = [col for col in expected.columns if not col.startswith("_")]
    assert got[params].astype(str).values.tolist() == expected[params].astype(str).values.tolist()


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
