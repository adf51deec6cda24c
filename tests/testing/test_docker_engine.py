"""The dev engine's command line (``xmanager devcluster docker``): start in one process, use and stop from
others, by PID."""

import os
import subprocess
import sys

import pytest
from xmanager.testing import docker_engine

pytestmark = pytest.mark.integration


XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")


def _cli(*args):
    return subprocess.run(
        [XMANAGER, "devcluster", "docker", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_and_stop_from_separate_processes():
    if docker_engine.missing_programs(registry=True) or os.geteuid() != 0:
        pytest.skip("needs Debian's docker.io and docker-registry, and root")
    import tempfile

    run_dir = tempfile.mkdtemp(prefix="xmdev-")
    started = _cli("start", run_dir)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f"export DOCKER_HOST=unix://{run_dir}/docker.sock\n")
    engine = docker_engine.load(run_dir)
    try:
        assert engine.client().ping() and engine.registry and engine.registry.startswith("127.0.0.1:")
        assert docker_engine._alive(engine.dockerd_pid) and docker_engine._alive(engine.registry_pid)
        status = _cli("status", run_dir)
        assert status.returncode == 0 and status.stdout.startswith(f"running: dockerd pid {engine.dockerd_pid};")
    finally:
        stopped = _cli("stop", run_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert not docker_engine._alive(engine.dockerd_pid) and not docker_engine._alive(engine.registry_pid)
    with pytest.raises(docker_engine.DevEngineError, match="no dev engine recorded"):
        docker_engine.load(run_dir)
    again = _cli("status", run_dir)
    assert again.returncode == 1 and "no dev engine recorded" in again.stderr
    subprocess.run(["rm", "-rf", run_dir], check=False)


def test_a_too_long_run_folder_is_refused_by_name(tmp_path):
    if docker_engine.missing_programs() or os.geteuid() != 0:
        pytest.skip("needs Debian's docker.io and root")
    long_dir = tmp_path / ("x" * 100)
    with pytest.raises(docker_engine.DevEngineError, match="too long for a unix socket path"):
        docker_engine.start(str(long_dir), registry=False)
