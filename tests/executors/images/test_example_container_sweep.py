"""examples/container_sweep runs end to end on the private Docker engine and reads its results back."""

import os
import subprocess
import sys
from pathlib import Path

import docker_support
import pytest

pytestmark = pytest.mark.integration

LAUNCHER = Path(__file__).resolve().parents[3] / "examples" / "container_sweep" / "launcher.py"


@pytest.fixture
def engine(request, monkeypatch):
    """The session's private Docker engine (DOCKER_HOST set for this test)."""
    return docker_support.use_engine(request, monkeypatch)


def test_container_sweep_example(engine, tmp_path):
    env = {**os.environ, "XM_DATA_DIR": str(tmp_path / "xm-data")}
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), f"--base_image={engine.python_image}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("image xm-local/trainer:")
    assert sum(line.rstrip().endswith("completed") for line in lines) == 6
    assert "best: learning_rate=0.01 batch_size=128 loss=0.5" in result.stdout
    experiment_id = lines[-1].split()[1].rstrip(":")
    stdout_log = tmp_path / "xm-data" / "experiments" / experiment_id / "1" / "trainer" / "stdout.log"
    assert stdout_log.read_text().startswith(f"python {sys.version_info.major}.{sys.version_info.minor}")
    assert "in /workdir/trainer: lr=" in stdout_log.read_text()
