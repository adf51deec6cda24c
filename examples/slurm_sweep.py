"""A sweep on Slurm: one job array, and the script exits while the units run.

    xmanager devcluster slurm start /tmp/devslurm   # a test cluster (not for production), or use yours
    export SLURM_CONF=/tmp/devslurm/slurm.conf
    xmanager launch examples/slurm_sweep.py -- --partition=debug
    xmanager show <id>            # statuses, from one squeue call
    python -c "from xmanager import xm_local; print(xm_local.get_experiment(<id>).to_dataframe())"

The job folders live under $XM_DATA_DIR, which must be on a filesystem the nodes share.
"""

import os
import sys

from absl import app, flags
from xmanager import xm, xm_local

PARTITION = flags.DEFINE_string("partition", None, "Slurm partition (default: the cluster's)")


def main(argv):
    del argv
    train = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
    params = xm.pgrid(xm.plist("batch_size", [32, 128]), xm.plist("learning_rate", [0.1, 0.01, 0.001]))
    with xm_local.create_experiment("slurm sweep", tags=["example", "slurm"]) as experiment:
        [executable] = experiment.package([
            xm.binary(executor_spec=xm_local.Slurm.Spec(), path=sys.executable, args=[train]),
        ])
        executor = xm_local.Slurm(partition=PARTITION.value, time="10:00", psets_per_task=2)
        experiment.add_sweep(xm.Job(executable, executor), params)
        print(f"experiment {experiment.experiment_id}: xmanager show {experiment.experiment_id}")


if __name__ == "__main__":
    app.run(main)
