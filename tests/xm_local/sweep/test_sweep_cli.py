"""``xmanager sweep`` subcommands through their own argparse registration."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import pandas as pd
import pytest
from xmanager.xm_local import sweep as ps
from xmanager.xm_local.sweep.cli import (
    psweep_checkdir,
    psweep_db2json,
    psweep_db2table,
    psweep_pull,
    psweep_push,
    register,
)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="xmanager")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


@pytest.fixture
def study(tmp_path, monkeypatch):
    home = tmp_path / "home"
    folder = home / "proj"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PWD", str(folder))
    monkeypatch.chdir(folder)
    return folder


def test_push_dry_run_passes_rsync_options(study, capsys):
    assert _main(["sweep", "push", "--dry-run", "cluster", "--delete", "-n"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ssh cluster mkdir -pv proj/calc",
        "rsync -rptgoD -vP --delete -n calc/ cluster:proj/calc/",
    ]


def test_pull_dry_run_with_calc_dir_and_remote(study, capsys):
    (study / "rsync.exclude").write_text("*.nc\n")
    assert _main(["sweep", "pull", "--dry-run", "--calc-dir", "runs/calc", "--remote", "/scratch/p", "cluster"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "rsync -rptgoD -vP --exclude-from=rsync.exclude cluster:/scratch/p/runs/calc runs/",
    ]


def _without_rsync(tmp_path, monkeypatch):
    """A PATH with mkdir but no rsync, as on a machine where rsync is not installed."""
    folder = tmp_path / "bin-without-rsync"
    folder.mkdir()
    (folder / "mkdir").symlink_to(shutil.which("mkdir"))
    monkeypatch.setenv("PATH", str(folder))


def test_missing_rsync_is_one_line_error(study, tmp_path, capsys, monkeypatch):
    _without_rsync(tmp_path, monkeypatch)
    (study / "calc").mkdir()
    assert _main(["sweep", "push", "--remote", str(tmp_path / "remote"), ""]) == 2
    assert "xmanager sweep: error: rsync: command not found" in capsys.readouterr().err


@pytest.fixture
def database(tmp_path):
    df = pd.DataFrame(
        {"a": [1, 2], "result_": [10.5, 20.5], "_pset_id": ["id-1", "id-2"], "_run_seq": [0, 0]}, dtype=object
    )
    path = str(tmp_path / "calc" / "database.pk")
    ps.df_write(path, df)
    return path


def test_db2table_hides_bookkeeping_columns(database, capsys):
    # tabulate's "simple" table, as psweep-db2table prints it: header, dashes, right-aligned numbers.
    assert _main(["sweep", "db2table", database]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "  a    result_",
        "---  ---------",
        "  1       10.5",
        "  2       20.5",
    ]


def test_db2table_all_and_selected_columns(database, capsys):
    assert _main(["sweep", "db2table", "-a", database]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["a", "result_", "_pset_id", "_run_seq"]
    assert _main(["sweep", "db2table", database, "_pset_id", "a"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["_pset_id", "a"],
        ["----------", "---"],
        ["id-1", "1"],
        ["id-2", "2"],
    ]
    assert _main(["sweep", "db2table", database, "nope"]) == 2
    assert "no columns ['nope']" in capsys.readouterr().err


def test_db2table_all_wins_over_columns_as_in_psweep(database, capsys):
    assert _main(["sweep", "db2table", "-a", database, "a"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["a", "result_", "_pset_id", "_run_seq"]


def test_db2table_format_and_index(database, capsys):
    assert _main(["sweep", "db2table", "-f", "pipe", "-i", database, "a"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "|    |   a |",
        "|---:|----:|",
        "|  0 |   1 |",
        "|  1 |   2 |",
    ]


def test_db2table_without_tabulate_prints_a_pandas_table(database, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tabulate", None)
    assert _main(["sweep", "db2table", database]) == 0
    captured = capsys.readouterr()
    assert [line.split() for line in captured.out.splitlines()] == [["a", "result_"], ["1", "10.5"], ["2", "20.5"]]
    assert "tabulate is not installed" in captured.err


def test_db2json_prints_records(database, capsys):
    assert _main(["sweep", "db2json", database]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records == [
        {"a": 1, "result_": 10.5, "_pset_id": "id-1", "_run_seq": 0},
        {"a": 2, "result_": 20.5, "_pset_id": "id-2", "_run_seq": 0},
    ]


def test_missing_database(tmp_path, capsys):
    assert _main(["sweep", "db2json", str(tmp_path / "none.pk")]) == 2
    assert "no database" in capsys.readouterr().err


def test_checkdir_compares_pset_folders_with_the_database(database, capsys):
    calc = os.path.dirname(database)
    os.mkdir(os.path.join(calc, "00000000-0000-4000-8000-000000000000"))
    assert _main(["sweep", "checkdir", calc]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "db_not_disk": ["id-1", "id-2"],
        "disk_not_db": ["00000000-0000-4000-8000-000000000000"],
    }
    assert _main(["sweep", "checkdir", os.path.join(calc, "nope")]) == 2
    assert "no calc dir" in capsys.readouterr().err


# ---- psweep's console scripts: the same commands under psweep's names -----------------------------
def test_psweep_scripts_take_psweep_arguments(database, capsys):
    assert psweep_db2json(["-o", "columns", database]) == 0
    assert json.loads(capsys.readouterr().out)["a"] == {"0": 1, "1": 2}
    assert psweep_db2table(["-i", "-a", "-f", "simple", database]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["a", "result_", "_pset_id", "_run_seq"]
    assert psweep_checkdir([os.path.dirname(database)]) == 0
    assert json.loads(capsys.readouterr().out)["db_not_disk"] == ["id-1", "id-2"]


def test_psweep_push_and_pull_scripts(study, capsys):
    assert psweep_push(["--dry-run", "cluster", "-n"]) == 0
    assert psweep_pull(["--dry-run", "cluster"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ssh cluster mkdir -pv proj/calc",
        "rsync -rptgoD -vP -n calc/ cluster:proj/calc/",
        "rsync -rptgoD -vP cluster:proj/calc ./",
    ]
    with pytest.raises(SystemExit):
        psweep_pull(["-h"])
    assert "usage: psweep-pull" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["push", "pull", "db2json", "db2table", "checkdir"])
def test_psweep_console_scripts_are_installed_and_ours(name):
    # psweep's scripts (same names) import psweep; the installed ones must run our layer.
    path = shutil.which(f"psweep-{name}", path=os.path.dirname(sys.executable))
    assert path is not None, f"psweep-{name} is not installed next to {sys.executable}"
    with open(path, encoding="utf-8") as handle:
        assert f"xmanager.xm_local.sweep.cli import psweep_{name}" in handle.read()
