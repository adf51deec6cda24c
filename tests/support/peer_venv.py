"""A peer tool installed from PyPI into its own cached venv, for side-by-side tests.

``peer_executable("experiment-server", "0.3.9", "experiment-server")`` creates
``~/.cache/xmanager-compat/venvs/experiment-server-0.3.9`` once (``python -m venv`` + ``pip install``)
and returns the path of the tool's console script, or raises :class:`PeerVenvError` saying why it
could not be installed (the tests then skip with that reason).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("XM_COMPAT_CACHE", Path.home() / ".cache" / "xmanager-compat"))


class PeerVenvError(Exception):
    """The peer could not be installed here."""


def peer_executable(package: str, version: str, script: str) -> str:
    venv = CACHE / "venvs" / f"{package}-{version}"
    executable = venv / "bin" / script
    marker = venv / ".complete"
    if marker.exists() and executable.exists():
        return str(executable)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XM_", "PYTHON"))}
    for step in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{package}=={version}"],
    ):
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PeerVenvError(f"cannot install {package}=={version}: {error}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PeerVenvError(f"cannot install {package}=={version}: {' '.join(tail)}")
    if not executable.exists():
        raise PeerVenvError(f"{package}=={version} installed no {script} script")
    marker.write_text(f"{package}=={version}\n")
    return str(executable)
