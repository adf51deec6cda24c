"""Quickstart: a 2x3 sweep on the local executor, results printed as a table.

Run with ``xmanager launch examples/quickstart.py`` (or ``python examples/quickstart.py``).
"""

import os
import sys

from absl import app
from xmanager import xm, xm_local


def main(argv):
    del argv
    with xm_local.create_experiment(experiment_title="quickstart", tags=["example"]) as experiment:
        [executable] = experiment.package([
            xm.binary(
                executor_spec=xm_local.Local.Spec(),
                path=sys.executable,
                args=[os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")],
            )
        ])
        params = xm.pgrid(xm.plist("batch_size", [32, 128]), xm.plist("learning_rate", [0.1, 0.01, 0.001]))
        experiment.add_sweep(xm.Job(executable=executable, executor=xm_local.Local()), params)
    frame = experiment.to_dataframe()
    print(frame[["batch_size", "learning_rate", "loss", "_status", "_pset_runtime"]].to_string(index=False))
    print(f"\nexperiment {experiment.experiment_id}: xmanager show {experiment.experiment_id}")


if __name__ == "__main__":
    app.run(main)
