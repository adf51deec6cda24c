"""Tune a small classifier on scikit-learn's bundled digits set with ``experiment.add_search``.

Each trial trains a linear model (SGD, log loss) for up to 18 epochs and reports its validation error
after each one (``xm.report(step=epoch, error=...)``); ASHA stops the trials that are behind at epochs
2, 6 and 18 ... and the best parameters are printed at the end. The same script runs its trials on
Slurm with ``--executor slurm`` (inside a cluster: ``sbatch`` on the path, a shared folder).

    python examples/search_digits.py --trials 12 --parallel 3
    python examples/search_digits.py --executor slurm

Needs scikit-learn (``pip install 'xmanager-launcher[search]'``). Run as a trial (``--trial``), it is the
training program itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

EPOCHS = 18


def train(alpha: float, eta0: float, penalty: str, epochs: int = EPOCHS) -> dict[str, Any]:
    """One trial: epochs of SGD on 80% of the digits, the error on the other 20% reported after each."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from xmanager import xm

    features, labels = load_digits(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    model = SGDClassifier(loss="log_loss", alpha=alpha, penalty=penalty, learning_rate="constant", eta0=eta0,
                          random_state=0)
    classes = np.unique(labels)
    error = 1.0
    for epoch in range(1, epochs + 1):
        model.partial_fit(train_x, train_y, classes=classes)
        error = float(1.0 - model.score(test_x, test_y))
        xm.report(step=epoch, error=error)
    return xm.report(error=error, accuracy=1.0 - error)


SPACE_DOC = "alpha: loguniform(1e-6, 1e-1), eta0: loguniform(1e-4, 1), penalty: l2 | l1"


def search_space() -> dict[str, Any]:
    from xmanager import xm

    return {"alpha": xm.search.loguniform(1e-6, 1e-1), "eta0": xm.search.loguniform(1e-4, 1.0),
            "penalty": xm.search.choice(["l2", "l1"])}


def launch(executor_name: str = "local", trials: int = 12, parallel: int = 3, seed: int = 0,
           title: str = "digits search") -> Any:
    """Runs the search; returns it (``.best``, ``.to_dataframe()``)."""
    from xmanager import xm, xm_local

    executor: Any = xm_local.Slurm() if executor_name == "slurm" else xm_local.Local(experimental_stream_output=False)
    with xm_local.create_experiment(title) as experiment:
        [executable] = experiment.package([xm.binary(
            executor_spec=type(executor).Spec(), path=sys.executable, args=[os.path.abspath(__file__), "--trial"],
        )])
        found = experiment.add_search(
            xm.Job(executable, executor), search_space(), objective="error", mode="min", n_trials=trials,
            max_parallel=parallel, sampler=xm.search.RandomSampler(seed=seed),
            pruner=xm.search.ASHAPruner(min_resource=2, reduction_factor=3, max_resource=EPOCHS),
        )
    return found


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial", action="store_true", help="run one trial (what each work unit does)")
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--eta0", type=float, default=0.01)
    parser.add_argument("--penalty", default="l2")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.trial:
        train(args.alpha, args.eta0, args.penalty)
        return 0
    found = launch(args.executor, args.trials, args.parallel, args.seed)
    frame = found.to_dataframe()
    print(frame[["_trial_number", "alpha", "eta0", "penalty", "error", "_status"]].to_string(index=False))
    best = found.best
    print(f"best trial {best.number}: error {best.value:.4f} with {best.params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
