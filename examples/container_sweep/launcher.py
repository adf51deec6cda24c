"""A sweep of a PythonContainer on the local Docker engine, results read back from the store.

    python examples/container_sweep/launcher.py                  # base image python:3.X-slim
    python examples/container_sweep/launcher.py --base_image=localhost/xm-python:3.11-...   # no registry

The ``trainer/`` folder is built into an image once (cached by content: launching again
without changes does not rebuild), then each work unit is a container on the engine at
$DOCKER_HOST with its logs and results in its job folder. See docs/containers.md.
"""

import os

from absl import app, flags
from xmanager import xm, xm_local
from xmanager.executors.images.context import default_base_image

BASE_IMAGE = flags.DEFINE_string("base_image", None, "image with Python 3 (default: python:3.X-slim)")


def main(argv):
    del argv
    trainer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer")
    with xm_local.create_experiment("container sweep", tags=["example", "containers"]) as experiment:
        [executable] = experiment.package(
            [
                xm.python_container(
                    executor_spec=xm_local.Local.Spec(),
                    path=trainer,
                    base_image=BASE_IMAGE.value or default_base_image(),
                    entrypoint=xm.ModuleName("train"),
                )
            ]
        )
        print(f"image {executable.image}")
        params = xm.pgrid(xm.plist("batch_size", [32, 128]), xm.plist("learning_rate", [0.1, 0.01, 0.001]))
        experiment.add_sweep(xm.Job(executable, xm_local.Local()), params)
    frame = experiment.to_dataframe().sort_values("loss")
    print(frame[["batch_size", "learning_rate", "loss", "_status"]].to_string(index=False))
    best = frame.iloc[0]
    print(f"best: learning_rate={best.learning_rate} batch_size={best.batch_size} loss={best.loss}")
    print(f"experiment {experiment.experiment_id}: xmanager show {experiment.experiment_id}")


if __name__ == "__main__":
    app.run(main)
