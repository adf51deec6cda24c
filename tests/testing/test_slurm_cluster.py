"""``xmanager devcluster slurm``: a dev cluster started by one process is checked, used and stopped from others."""

import os
import subprocess
import sys
import tempfile

import pytest
from xmanager.testing import slurm_cluster

pytestmark = pytest.mark.integration

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")


def _cli(*args):
    return subprocess.run([XMANAGER, "devcluster", "slurm", *args], capture_output=True, text=True, timeout=180)


def test_start_status_and_stop_from_separate_processes():
    missing = slurm_cluster.missing_programs()
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing); setup_scripts/test.sh installs it")
    if os.geteuid() != 0:
        pytest.skip("the dev cluster runs its daemons as root")
    run_dir = tempfile.mkdtemp(prefix="xmslurm-")
    started = _cli("start", run_dir, "--cpus", "2")
    assert started.returncode == 0, started.stderr
    assert started.stdout == f"export SLURM_CONF={run_dir}/slurm.conf\n"
    try:
        status = _cli("status", run_dir)
        assert status.returncode == 0 and status.stdout.startswith("running: 2 daemon(s), pids ")
        env = {**os.environ, "SLURM_CONF": f"{run_dir}/slurm.conf"}
        nodes = subprocess.run(["sinfo", "-h", "-o", "%c"], env=env, capture_output=True, text=True, check=True)
        assert nodes.stdout.strip() == "2"
    finally:
        stopped = _cli("stop", run_dir)
    assert stopped.returncode == 0, stopped.stderr
    after = _cli("status", run_dir)
    assert after.returncode == 1 and f"no dev cluster recorded in {run_dir}" in after.stderr
    subprocess.run(["rm", "-rf", run_dir], check=False)


def test_stop_without_a_cluster_says_so(tmp_path):
    result = _cli("stop", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == f"xmanager devcluster: error: no dev cluster recorded in {tmp_path}\n"
