"""The psweep peer of the sweep benchmarks: an interpreter with psweep 0.16.0, and running scripts under it.

Without ``--peer-python`` the benchmarks use ``bench/.peer-venv`` (gitignored), created
on first use with ``python -m venv`` and ``pip install psweep==0.16.0``. When that is
not possible (no network, no venv module), :func:`find_psweep` says why, and the
benchmarks print ``peer: unavailable (reason)`` next to their own figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any, Optional

PSWEEP_VERSION = "0.16.0"
VENV_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".peer-venv")
MARKER = "XM_BENCH_RESULT "


def peer_env(base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment of a peer process: none of our settings, no PYTHONPATH."""
    env = {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("XM_")}
    env.pop("PYTHONPATH", None)
    return env


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    return "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-lines:])


def package_version(python: str, package: str) -> tuple[Optional[str], str]:
    """(``package``'s version under ``python``, "") or (None, why not)."""
    check = f"import importlib.metadata as m; print(m.version({package!r}))"
    try:
        proc = subprocess.run([python, "-c", check], env=peer_env(), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, str(error)
    if proc.returncode != 0:
        return None, f"{python} has no {package}: {_tail(proc, 1)}"
    return proc.stdout.strip(), ""


def _psweep_version(python: str) -> tuple[Optional[str], str]:
    return package_version(python, "psweep")


def make_venv(
    venv_dir: str, requirement: str, version_of: Callable[[str], tuple[Optional[str], str]], name: str
) -> tuple[Optional[str], str]:
    """Creates ``venv_dir`` with ``requirement`` from PyPI; (interpreter, description) or (None, why not)."""
    python = os.path.join(venv_dir, "bin", "python")
    print(f"peer: creating {venv_dir} with {requirement} (once) ...", file=sys.stderr, flush=True)
    shutil.rmtree(venv_dir, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", venv_dir],
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--retries", "1",
         "--timeout", "20", requirement],
    ]
    for command in steps:
        try:
            proc = subprocess.run(command, env=peer_env(), capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as error:
            shutil.rmtree(venv_dir, ignore_errors=True)
            return None, f"{' '.join(command[:4])} ...: {error}"
        if proc.returncode != 0:
            shutil.rmtree(venv_dir, ignore_errors=True)
            return None, f"{' '.join(command[:4])} ... exited {proc.returncode}: {_tail(proc, 1)}"
    version, error = version_of(python)
    if version is None:
        shutil.rmtree(venv_dir, ignore_errors=True)
        return None, error
    return python, f"{name} {version} under {python} (just created)"


def _create_venv() -> tuple[Optional[str], str]:
    return make_venv(VENV_DIR, f"psweep=={PSWEEP_VERSION}", _psweep_version, "psweep")


def find_psweep(peer_python: Optional[str]) -> tuple[Optional[str], str]:
    """(interpreter, description) of the peer, or (None, why it is unavailable).

    ``peer_python`` (the ``--peer-python`` option) wins; otherwise ``bench/.peer-venv``,
    created when missing or broken.
    """
    if peer_python:
        found = shutil.which(peer_python)
        if found is None:
            return None, f"no executable interpreter at {peer_python!r}"
        python = os.path.abspath(found)  # Keep venv symlinks unresolved.
        version, error = _psweep_version(python)
        if version is None:
            return None, error
        note = "" if version == PSWEEP_VERSION else f" (NOT the {PSWEEP_VERSION} the targets refer to)"
        return python, f"psweep {version}{note} under {python}"
    python = os.path.join(VENV_DIR, "bin", "python")
    if os.path.exists(python):
        version, _ = _psweep_version(python)
        if version == PSWEEP_VERSION:
            return python, f"psweep {version} under {python}"
    return _create_venv()


def run_script(python: str, script: str, config: dict[str, Any], cwd: str, timeout: float = 1800) -> tuple[Any, str]:
    """Runs the file ``script`` under ``python`` with ``config`` as JSON in argv[1].

    The script prints one line ``MARKER + json``; returns (that value, "") or (None, error).
    """
    try:
        proc = subprocess.run([python, script, json.dumps(config)], cwd=cwd, env=peer_env(), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        return None, f"exited {proc.returncode}:\n{_tail(proc)}"
    return json.loads(lines[-1][len(MARKER):]), ""


def write_script(work: str, name: str, text: str) -> str:
    path = os.path.join(work, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def ratio(peer: Optional[float], ours: Optional[float]) -> str:
    if peer is None or ours is None or ours <= 0:
        return "n/a"
    return f"{peer / ours:.2f}"


def verdict(value: Optional[float], target: float, at_least: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value >= target if at_least else value <= target
    return "PASS" if ok else "FAIL"
