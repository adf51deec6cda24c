"""A real single-node Slurm cluster for the Slurm tests (Debian's slurm-wlm, installed by the test set-up)."""

import os

import pytest
from xmanager.executors.slurm import devcluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    missing = devcluster.missing_programs()
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing); setup_scripts/test.sh installs slurm-wlm")
    if os.geteuid() != 0:
        pytest.skip("the dev cluster runs its daemons as root")
    cluster = devcluster.start(str(tmp_path_factory.mktemp("slurm")), cpus=16)
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.conf
    yield cluster
    cluster.stop()
    if saved is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = saved
