"""Starting a dev Slurm cluster for a test, or skipping it with the reason."""

import os

import pytest
from xmanager.testing import slurm_cluster


def start_or_skip(tmp_path_factory, name, **options):
    missing = slurm_cluster.missing_programs(accounting=options.get("accounting", False))
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing); setup_scripts/test.sh installs it")
    if os.geteuid() != 0:
        pytest.skip("the dev cluster runs its daemons as root")
    return slurm_cluster.start(str(tmp_path_factory.mktemp(name)), **options)
