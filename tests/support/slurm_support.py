"""Starting a dev Slurm cluster for a test, or skipping it with the reason."""

import os

import pytest
from xmanager.executors.slurm import devcluster


def start_or_skip(tmp_path_factory, name, **options):
    missing = devcluster.missing_programs(accounting=options.get("accounting", False))
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing); setup_scripts/test.sh installs it")
    if os.geteuid() != 0:
        pytest.skip("the dev cluster runs its daemons as root")
    return devcluster.start(str(tmp_path_factory.mktemp(name)), **options)
