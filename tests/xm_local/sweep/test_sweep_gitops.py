"""Git helpers against a real git in a temporary folder."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
from xmanager.xm_local.sweep import gitops


@pytest.fixture
def study_dir(git_env, tmp_path, monkeypatch):
    """A folder to run git in, with git isolated (``git_env``)."""
    study = tmp_path / "study"
    study.mkdir()
    monkeypatch.chdir(study)
    return study


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _init_repo(folder) -> None:
    _git("init", "-q")
    (folder / "input.py").write_text("print(1)\n")
    _git("add", "-A")
    _git("commit", "-q", "-m", "initial")


def test_outside_a_repo(study_dir):
    assert not gitops.in_git_repo()
    assert not gitops.git_clean()
    with pytest.raises(gitops.GitError, match="no git repo here"):
        gitops.git_enter(True)
    gitops.git_enter(False)  # nothing to check


def test_clean_and_dirty_repo(study_dir):
    _init_repo(study_dir)
    assert gitops.in_git_repo()
    assert gitops.git_clean()
    gitops.git_enter(True)
    (study_dir / "untracked.txt").write_text("x")
    assert not gitops.git_clean()
    with pytest.raises(gitops.GitError, match="dirty repo, commit first"):
        gitops.git_enter(True)
    gitops.git_enter(False)


def test_git_exit_commits_changes_with_run_id(study_dir, capsys):
    _init_repo(study_dir)
    (study_dir / "calc").mkdir()
    (study_dir / "calc" / "database.pk").write_bytes(b"data")
    df = pd.DataFrame({"a": [1, 2], "_run_id": ["run-0", "run-1"]}, dtype=object)
    gitops.git_exit(True, df)
    assert gitops.git_clean()
    assert _git("log", "-1", "--format=%s").strip() == "psweep: study: run_id=run-1"
    assert "calc/database.pk" in _git("show", "--name-only", "--format=", "HEAD")
    assert "add 'calc/database.pk'" in capsys.readouterr().out  # git add -A -v output is shown


def test_git_exit_without_changes_or_disabled_commits_nothing(study_dir):
    _init_repo(study_dir)
    df = pd.DataFrame({"_run_id": ["r"]}, dtype=object)
    gitops.git_exit(True, df)
    assert _git("rev-list", "--count", "HEAD").strip() == "1"
    (study_dir / "new.txt").write_text("x")
    gitops.git_exit(False, df)
    assert _git("rev-list", "--count", "HEAD").strip() == "1"
    assert not gitops.git_clean()


def test_always_commit_inits_and_commits(study_dir):
    (study_dir / "input.py").write_text("print(1)\n")
    gitops.git_enter(True, always_commit=True)
    assert gitops.in_git_repo()
    assert gitops.git_clean()
    assert _git("log", "-1", "--format=%s").strip() == "psweep: study: commit before run"
    (study_dir / "input.py").write_text("print(2)\n")
    gitops.git_enter(True, always_commit=True)
    assert gitops.git_clean()
    assert _git("rev-list", "--count", "HEAD").strip() == "2"
