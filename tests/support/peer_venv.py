"""A peer tool installed from PyPI outside our venv, for side-by-side tests.

``peer_executable("experiment-server", "0.3.9", "experiment-server")`` creates
``~/.cache/xmanager-compat/venvs/experiment-server-0.3.9`` once (``python -m venv`` + ``pip install``)
and returns the path of the tool's console script. ``import_peer("psweep", "0.16.0")`` installs the
package alone (``pip install --target``, no dependencies: ours provide them) into
``~/.cache/xmanager-compat/sites/psweep-0.16.0`` and imports it from there. Neither touches our venv,
so the peer's console scripts never replace ours of the same names. Both raise :class:`PeerVenvError`
saying why the peer could not be installed (the tests then skip with that reason).
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


def _install(steps: list[list[str]], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XM_", "PYTHON"))}
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PeerVenvError(f"cannot install {what}: {error}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PeerVenvError(f"cannot install {what}: {' '.join(tail)}")


def peer_site(package: str, version: str) -> str:
    """A folder holding only ``package==version`` (for ``sys.path`` or ``PYTHONPATH``)."""
    site = CACHE / "sites" / f"{package}-{version}"
    marker = site / ".complete"
    if marker.exists():
        return str(site)
    shutil.rmtree(site, ignore_errors=True)
    site.parent.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _install([[*pip, "--no-deps", "--target", str(site), f"{package}=={version}"]], f"{package}=={version}")
    marker.write_text(f"{package}=={version}\n")
    return str(site)


def import_peer(package: str, version: str):
    """The peer's module, imported from its own site folder (skips the test when it cannot be installed)."""
    import importlib

    import pytest

    try:
        site = peer_site(package, version)
    except PeerVenvError as error:
        pytest.skip(str(error))
    if site not in sys.path:
        sys.path.append(site)
    module = importlib.import_module(package)
    assert module.__file__ and module.__file__.startswith(site), f"{package} imported from {module.__file__}, not {site}"
    return module


def peer_executable(package: str, version: str, script: str) -> str:
    venv = CACHE / "venvs" / f"{package}-{version}"
    executable = venv / "bin" / script
    marker = venv / ".complete"
    if marker.exists() and executable.exists():
        return str(executable)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    _install(
        [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{package}=={version}"],
        ],
        f"{package}=={version}",
    )
    if not executable.exists():
        raise PeerVenvError(f"{package}=={version} installed no {script} script")
    marker.write_text(f"{package}=={version}\n")
    return str(executable)
