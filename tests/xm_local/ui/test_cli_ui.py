"""``xmanager ui`` as a real process: the URL it prints (the real port for port 0), SIGTERM, the one-line refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

pytestmark = pytest.mark.integration


def _xmanager(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xmanager.xm_local.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_serves_on_a_picked_port_and_stops_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    proc = _xmanager("ui", "--port", "0", "--database-url", url)
    try:
        line = proc.stdout.readline()  # Printed once the server accepts connections.
        assert line.startswith("dashboard on http://127.0.0.1:"), line + proc.stderr.read()
        address = line.split()[-1]
        assert not address.endswith(":0/")
        with urllib.request.urlopen(address + "api/experiments", timeout=10) as answer:
            assert json.load(answer)["total"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("argv, message", [
    (["--host", "0.0.0.0"], "xmanager: error: ui: refusing to serve the dashboard on '0.0.0.0' without an access token"),
    (["--token", ""], "xmanager: error: ui: the access token must not be empty"),
    (["--port", "70000"], "xmanager: error: ui: --port must be from 0 to 65535, got 70000"),
    (["--host", "no-such-host.invalid", "--token", "t"], "xmanager: error: ui: cannot serve on no-such-host.invalid:"),
])
def test_refusals_are_one_line_with_exit_status_2(tmp_path, argv, message):
    env = dict(os.environ, XM_DATABASE_URL=f"sqlite:///{tmp_path / 'store.sqlite3'}")
    env.pop("XM_UI_TOKEN", None)
    proc = _xmanager("ui", "--port", "0", *argv, env=env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.startswith(message) and err.count("\n") == 1, err
