"""``xmanager sweep`` subcommands through their own argparse registration."""

from __future__ import annotations

import argparse
import json
import shutil

import pandas as pd
import pytest
from xmanager.xm_local import sweep as ps
from xmanager.xm_local.sweep.cli import register


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
    assert _main(["sweep", "db2table", database]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["a", "result_"]
    assert [line.split() for line in lines[1:]] == [["1", "10.5"], ["2", "20.5"]]


def test_db2table_all_and_selected_columns(database, capsys):
    assert _main(["sweep", "db2table", "-a", database]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["a", "result_", "_pset_id", "_run_seq"]
    assert _main(["sweep", "db2table", database, "_pset_id", "a"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["_pset_id", "a"],
        ["id-1", "1"],
        ["id-2", "2"],
    ]
    assert _main(["sweep", "db2table", database, "nope"]) == 2
    assert "no columns ['nope']" in capsys.readouterr().err


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
