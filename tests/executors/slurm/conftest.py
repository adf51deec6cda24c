"""Real single-node Slurm clusters for the Slurm tests (Debian's slurm-wlm, installed by the test set-up).

The daemons start once per session (or module); each test then points ``SLURM_CONF`` at the
cluster it asked for, so tests of different clusters can run in any order.
"""

import pytest
from slurm_support import start_or_skip


@pytest.fixture(scope="session")
def _slurm_daemons(tmp_path_factory):
    cluster = start_or_skip(tmp_path_factory, "slurm", cpus=16)
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm_cluster(_slurm_daemons, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", _slurm_daemons.conf)
    return _slurm_daemons
