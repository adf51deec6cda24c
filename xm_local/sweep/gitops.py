"""Git book-keeping around a sweep (psweep's ``git=True``): start from a committed tree, commit the results.

``git_enter`` refuses to run a study from uncommitted code, so every database row can be
traced to a commit; ``git_exit`` commits what the run produced with its ``run_id`` in the
message. Git runs in the current directory, with argument lists (no shell).
"""

from __future__ import annotations

import os
import subprocess
from typing import Any


class GitError(RuntimeError):
    """The working directory is not in the state ``git=True`` requires."""


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a git command that must succeed; print its output (like ``system``)."""
    try:
        proc = subprocess.run(["git", *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except subprocess.CalledProcessError as error:
        if error.output:
            print(error.output, end="" if error.output.endswith("\n") else "\n")
        raise
    if proc.stdout:
        print(proc.stdout, end="" if proc.stdout.endswith("\n") else "\n")
    return proc


def _git_query(*args: str) -> subprocess.CompletedProcess[str] | None:
    """Run a read-only git command quietly; ``None`` when git is not installed."""
    try:
        return subprocess.run(["git", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except FileNotFoundError:
        return None


def in_git_repo() -> bool:
    """Whether the current directory is inside a git work tree."""
    proc = _git_query("rev-parse", "--is-inside-work-tree")
    return proc is not None and proc.returncode == 0 and proc.stdout.strip() == "true"


def git_clean() -> bool:
    """Whether ``git status`` shows nothing: no staged, modified or untracked files.

    Untracked files count as changes because ``git_exit`` would commit them (``git add -A``).
    Outside a repository this is ``False``.
    """
    proc = _git_query("status", "--porcelain")
    return proc is not None and proc.returncode == 0 and proc.stdout.strip() == ""


def _dirname() -> str:
    return os.path.basename(os.getcwd())


def _commit_all(message: str) -> None:
    _git("add", "-A", "-v")
    _git("commit", "-m", message)


def git_enter(use_git: bool, always_commit: bool = False) -> None:
    """Check (or with ``always_commit``, make) a clean git tree before a run; nothing when ``use_git`` is false.

    Without ``always_commit``: raises ``GitError`` ("no git repo here" / "dirty repo, commit
    first"). With it: ``git init`` if needed and commit every change instead.
    """
    if not use_git:
        return
    if always_commit:
        if not in_git_repo():
            _git("init")
        if not git_clean():
            _commit_all(f"psweep: {_dirname()}: commit before run")
        return
    if not in_git_repo():
        raise GitError(f"no git repo here ({os.getcwd()}), create one and commit first")
    if not git_clean():
        raise GitError(f"dirty repo, commit first ({os.getcwd()}: see git status)")


def _last_run_id(df: Any) -> Any:
    if df is None or len(df) == 0 or "_run_id" not in df.columns:
        return None
    return df["_run_id"].iloc[-1]


def git_exit(use_git: bool, df: Any) -> None:
    """Commit everything a run changed, naming its ``run_id`` (the last row's); nothing if unchanged."""
    if not use_git or git_clean():
        return
    _commit_all(f"psweep: {_dirname()}: run_id={_last_run_id(df)}")


__all__ = ["GitError", "git_clean", "git_enter", "git_exit", "in_git_repo"]
