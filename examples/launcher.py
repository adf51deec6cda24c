"""The README's launch script (kept identical to it by tests/examples/test_readme_launcher.py)."""

from absl import app
from xmanager import xm, xm_local


def main(argv):
    with xm_local.create_experiment(experiment_title="cifar10", tags=["baseline"]) as experiment:
        [executable] = experiment.package([
            xm.binary(executor_spec=xm_local.Local.Spec(), path="./train.sh"),  # checked now, next to this script
        ])
        for batch_size in [64, 1024]:
            experiment.add(xm.Job(
                executable=executable,
                executor=xm_local.Local(),
                args={"batch_size": batch_size},          # --batch_size=64, as an argv item
                env_vars={"HEAPPROFILE": "/tmp/a.hprof"},
            ))
    # One row per unit: args, results, _status, _exit_code, ...
    print(experiment.to_dataframe()[["batch_size", "loss", "_status", "_exit_code"]].to_string())


if __name__ == "__main__":
    app.run(main)
