"""push/pull command lines, filter files, and (when rsync is installed) a real local transfer."""

from __future__ import annotations

import shutil

import pytest
from xmanager.xm_local.sweep import rsync


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A study folder at ~/work/study with HOME pointing at tmp_path/home."""
    home = tmp_path / "home"
    folder = home / "work" / "study"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PWD", str(folder))
    return folder


def test_remote_dir_strips_home(tmp_path):
    home = str(tmp_path / "home")
    assert rsync.remote_dir(f"{home}/work/study", home) == "work/study"
    assert rsync.remote_dir(home, home) == "."
    assert rsync.remote_dir("/srv/data/study", home) == "/srv/data/study"
    assert rsync.remote_dir(f"{home}x/study", home) == f"{home}x/study"  # a sibling, not inside home


def test_remote_dir_of_symlinked_home(tmp_path, monkeypatch):
    real = tmp_path / "real_home"
    (real / "study").mkdir(parents=True)
    link = tmp_path / "home"
    link.symlink_to(real)
    monkeypatch.chdir(link / "study")
    monkeypatch.setenv("PWD", str(link / "study"))
    assert rsync.remote_dir(home=str(link)) == "study"
    monkeypatch.delenv("PWD")  # getcwd() gives the resolved path, which is inside realpath(home)
    assert rsync.remote_dir(home=str(link)) == "study"


def test_push_and_pull_commands(study):
    assert rsync.push_commands("cluster", ["--delete"]) == [
        ["ssh", "cluster", "mkdir", "-pv", "work/study/calc"],
        ["rsync", "-rptgoD", "-vP", "--delete", "calc/", "cluster:work/study/calc/"],
    ]
    assert rsync.pull_commands("cluster") == [["rsync", "-rptgoD", "-vP", "cluster:work/study/calc", "./"]]


def test_other_calc_dir_and_remote(study):
    assert rsync.push_commands("h", calc_dir="runs/calc/", remote="/scratch/me") == [
        ["ssh", "h", "mkdir", "-pv", "/scratch/me/runs/calc"],
        ["rsync", "-rptgoD", "-vP", "runs/calc/", "h:/scratch/me/runs/calc/"],
    ]
    assert rsync.pull_commands("h", calc_dir="runs/calc") == [
        ["rsync", "-rptgoD", "-vP", "h:work/study/runs/calc", "runs/"]
    ]
    with pytest.raises(ValueError):
        rsync.push_commands("h", calc_dir="/")


def test_filter_files_are_picked_up_per_direction(study):
    for name in ("excl_push", "excl_pull", "rsync.exclude", "rsync.rules", "rsync.filter"):
        (study / name).write_text("*.tmp\n")
    push = rsync.push_commands("h", ["-n"])[1]
    pull = rsync.pull_commands("h", ["-n"])[0]
    assert push[3:-2] == [
        "--exclude-from=excl_push",
        "--exclude-from=rsync.exclude",
        "--filter=merge rsync.rules",
        "--filter=merge rsync.filter",
        "-n",
    ]
    assert pull[3:-2] == [
        "--exclude-from=excl_pull",
        "--exclude-from=rsync.exclude",
        "--filter=merge rsync.rules",
        "--filter=merge rsync.filter",
        "-n",
    ]
    (study / "excl_push").unlink()
    (study / "rsync.filter").unlink()
    assert rsync.filter_opts("push") == ["--exclude-from=rsync.exclude", "--filter=merge rsync.rules"]
    with pytest.raises(ValueError):
        rsync.filter_opts("sideways")


def test_local_host_uses_plain_paths_and_mkdir(study):
    assert rsync.push_commands("", remote="/backup") == [
        ["mkdir", "-pv", "/backup/calc"],
        ["rsync", "-rptgoD", "-vP", "calc/", "/backup/calc/"],
    ]


def test_dry_run_prints_and_runs_nothing(study, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("dry run must not run anything")

    monkeypatch.setattr(rsync.subprocess, "run", refuse)
    commands = rsync.push("cluster", ["--exclude=*.nc"], dry_run=True)
    assert commands[1][-3:] == ["--exclude=*.nc", "calc/", "cluster:work/study/calc/"]
    assert capsys.readouterr().out.splitlines() == [
        "ssh cluster mkdir -pv work/study/calc",
        "rsync -rptgoD -vP '--exclude=*.nc' calc/ cluster:work/study/calc/",
    ]


def test_push_runs_mkdir_for_a_local_target(study, tmp_path, monkeypatch):
    """Without rsync on PATH the mkdir step still runs for real, then rsync is reported missing."""
    folder = tmp_path / "bin-without-rsync"
    folder.mkdir()
    (folder / "mkdir").symlink_to(shutil.which("mkdir"))
    monkeypatch.setenv("PATH", str(folder))
    target = tmp_path / "remote"
    with pytest.raises(FileNotFoundError):
        rsync.push("", remote=str(target))
    assert (target / "calc").is_dir()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (setup_scripts/test.sh installs it)")
def test_real_rsync_round_trip(study, tmp_path):
    (study / "calc" / "id-1").mkdir(parents=True)
    (study / "calc" / "id-1" / "run.py").write_text("print(1)\n")
    (study / "calc" / "id-1" / "big.tmp").write_text("x")
    (study / "calc" / "link").symlink_to("id-1")
    (study / "excl_push").write_text("*.tmp\n")
    target = tmp_path / "remote"
    rsync.push("", remote=str(target))
    assert (target / "calc" / "id-1" / "run.py").read_text() == "print(1)\n"
    assert not (target / "calc" / "id-1" / "big.tmp").exists()  # excluded by excl_push
    assert not (target / "calc" / "link").exists()  # no -l: symlinks are skipped
    (target / "calc" / "id-1" / "out.txt").write_text("result")
    shutil.rmtree(study / "calc")
    rsync.pull("", remote=str(target))
    assert (study / "calc" / "id-1" / "out.txt").read_text() == "result"
