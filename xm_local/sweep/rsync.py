"""Copy a study's ``calc/`` folder to a remote machine and back (psweep-push / psweep-pull).

The remote folder is this folder's path relative to ``$HOME`` (``~/work/study`` here is
``work/study`` under the remote login's home), so both machines share one layout. rsync
copies with ``-rptgoD`` (``-a`` without ``-l``: symlinks are skipped) and ``-vP``.
Exclude and filter files in the current folder are used when present: ``excl_push``
(push only), ``excl_pull`` (pull only), ``rsync.exclude`` (both, ``--exclude-from``),
``rsync.rules`` and ``rsync.filter`` (both, ``--filter=merge``).

The commands are built by pure functions and run as argument lists (no shell). An empty
``host`` means this machine (plain paths, ``mkdir`` instead of ``ssh``), which is how the
commands are tested against a real rsync.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import subprocess
from collections.abc import Sequence

RSYNC_BASE = ("rsync", "-rptgoD", "-vP")
_EXCLUDE_FILES = {"push": ("excl_push", "rsync.exclude"), "pull": ("excl_pull", "rsync.exclude")}
_MERGE_FILES = ("rsync.rules", "rsync.filter")


def _current_dir() -> str:
    """The current folder as the shell spells it (``$PWD`` keeps symlinked homes), else ``getcwd``."""
    logical = os.environ.get("PWD")
    try:
        if logical and os.path.isabs(logical) and os.path.samefile(logical, "."):
            return logical
    except OSError:
        pass
    return os.getcwd()


def remote_dir(cwd: str | None = None, home: str | None = None) -> str:
    """``cwd`` (default: the current folder) relative to ``home`` (default ``$HOME``); unchanged if outside it."""
    cwd = os.path.normpath(os.path.abspath(cwd if cwd is not None else _current_dir()))
    home = os.path.expanduser("~") if home is None else home
    for base in dict.fromkeys((os.path.normpath(os.path.abspath(home)), os.path.realpath(home))):
        if cwd == base:
            return "."
        prefix = base.rstrip("/") + "/"
        if cwd.startswith(prefix):
            return cwd[len(prefix) :]
    return cwd


def filter_opts(direction: str, folder: str = ".") -> list[str]:
    """rsync options for the exclude/filter files present in ``folder``, for ``direction`` ``"push"`` or ``"pull"``."""
    if direction not in _EXCLUDE_FILES:
        raise ValueError(f"direction must be 'push' or 'pull', got {direction!r}")
    opts = [
        f"--exclude-from={name}" for name in _EXCLUDE_FILES[direction] if os.path.isfile(os.path.join(folder, name))
    ]
    opts += [f"--filter=merge {name}" for name in _MERGE_FILES if os.path.isfile(os.path.join(folder, name))]
    return opts


def _location(host: str, path: str) -> str:
    return f"{host}:{path}" if host else path


def _calc(calc_dir: str) -> str:
    calc = calc_dir.strip().rstrip("/")
    if not calc:
        raise ValueError("calc_dir must not be empty")
    return calc


def push_commands(
    host: str,
    rsync_opts: Sequence[str] = (),
    *,
    calc_dir: str = "calc",
    folder: str = ".",
    remote: str | None = None,
) -> list[list[str]]:
    """The commands of a push: create the remote folder, then rsync ``calc_dir/`` into it.

    ``folder`` is where the filter files are looked up; ``remote`` overrides the remote
    folder (default: :func:`remote_dir`).
    """
    calc = _calc(calc_dir)
    target = posixpath.join(remote if remote is not None else remote_dir(), calc)
    mkdir = ["ssh", host, "mkdir", "-pv", target] if host else ["mkdir", "-pv", target]
    rsync = [*RSYNC_BASE, *filter_opts("push", folder), *rsync_opts, f"{calc}/", _location(host, f"{target}/")]
    return [mkdir, rsync]


def pull_commands(
    host: str,
    rsync_opts: Sequence[str] = (),
    *,
    calc_dir: str = "calc",
    folder: str = ".",
    remote: str | None = None,
) -> list[list[str]]:
    """The command of a pull: rsync the remote ``calc_dir`` into its parent here."""
    calc = _calc(calc_dir)
    source = posixpath.join(remote if remote is not None else remote_dir(), calc)
    parent = posixpath.dirname(calc) or "."
    return [[*RSYNC_BASE, *filter_opts("pull", folder), *rsync_opts, _location(host, source), f"{parent}/"]]


def _execute(commands: list[list[str]], dry_run: bool) -> list[list[str]]:
    """Runs the commands, announcing the rsync one as psweep-push/pull do; ``dry_run`` prints them all instead."""
    for command in commands:
        if dry_run:
            print(shlex.join(command), flush=True)
            continue
        if command[0] == "rsync":
            print(f"executing: {shlex.join(command)}", flush=True)
        subprocess.run(command, check=True)
    return commands


def push(
    host: str,
    rsync_opts: Sequence[str] = (),
    *,
    calc_dir: str = "calc",
    dry_run: bool = False,
    remote: str | None = None,
) -> list[list[str]]:
    """Copy ``calc_dir`` to the same place under ``host``'s home (or ``remote``); return the commands.

    ``dry_run`` only prints them. A failing command raises ``CalledProcessError``.
    """
    return _execute(push_commands(host, rsync_opts, calc_dir=calc_dir, remote=remote), dry_run)


def pull(
    host: str,
    rsync_opts: Sequence[str] = (),
    *,
    calc_dir: str = "calc",
    dry_run: bool = False,
    remote: str | None = None,
) -> list[list[str]]:
    """Copy ``calc_dir`` back from ``host`` (from ``remote``, default as for push); print and return the commands."""
    return _execute(pull_commands(host, rsync_opts, calc_dir=calc_dir, remote=remote), dry_run)


__all__ = ["filter_opts", "pull", "pull_commands", "push", "push_commands", "remote_dir"]
