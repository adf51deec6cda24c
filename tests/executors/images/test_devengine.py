"""The dev engine's command line: start in one process, use and stop from others, by PID."""

import os
import subprocess
import sys

import pytest
from xmanager.executors.images import devengine

pytestmark = pytest.mark.integration


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "xmanager.executors.images.devengine", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_and_stop_from_separate_processes():
    if devengine.missing_programs(registry=True) or os.geteuid() != 0:
        pytest.skip("needs Debian's docker.io and docker-registry, and root")
    import tempfile

    run_dir = tempfile.mkdtemp(prefix="xmdev-")
    started = _cli("start", run_dir)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f"export DOCKER_HOST=unix://{run_dir}/docker.sock\n")
    engine = devengine.load(run_dir)
    try:
        assert engine.client().ping() and engine.registry and engine.registry.startswith("127.0.0.1:")
        assert devengine._alive(engine.dockerd_pid) and devengine._alive(engine.registry_pid)
    finally:
        stopped = _cli("stop", run_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert not devengine._alive(engine.dockerd_pid) and not devengine._alive(engine.registry_pid)
    with pytest.raises(devengine.DevEngineError, match="no dev engine recorded"):
        devengine.load(run_dir)
    subprocess.run(["rm", "-rf", run_dir], check=False)


def test_a_too_long_run_folder_is_refused_by_name(tmp_path):
    if devengine.missing_programs() or os.geteuid() != 0:
        pytest.skip("needs Debian's docker.io and root")
    long_dir = tmp_path / ("x" * 100)
    with pytest.raises(devengine.DevEngineError, match="too long for a unix socket path"):
        devengine.start(str(long_dir), registry=False)
