"""Search scheduling overhead per trial, with a trivial objective, vs plain launches and vs Optuna's own loop.

    python bench/search_overhead.py [--n 1000] [--parallel 2] [--repeat 3]

"search": ``experiment.add_search`` of N trials (RandomSampler, no pruner) of an in-process function
(``xm_local.InProcess``), max_parallel=P, from create_experiment to leaving the ``with`` block.
"launch": the same N units of the same function through ``experiment.add`` (InProcess, max_parallel=P):
the launch itself. Overhead = (search - launch) / N; target <= 2 ms per trial (medians of --repeat).
"optuna": Optuna's own ``study.optimize(objective, n_trials=N, n_jobs=P)`` with its RandomSampler on an
in-memory study (the peer, same run); Ray Tune is not measured (not installed here: it is a large
install and needs its own cluster runtime).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import scratch_dir, table  # noqa: E402


def objective(x: float, y: float) -> dict[str, float]:
    return {"loss": (x - 0.3) ** 2 + (y - 0.7) ** 2}



def run_search(n: int, parallel: int) -> float:
    from xmanager import xm, xm_local

    space = {"x": xm.search.uniform(0, 1), "y": xm.search.uniform(0, 1)}
    start = time.perf_counter()
    with xm_local.create_experiment("bench search", max_parallel=parallel) as experiment:
        [executable] = experiment.package([xm.python_callable(xm_local.InProcess.Spec(), objective)])
        experiment.add_search(xm.Job(executable, xm_local.InProcess()), space, n_trials=n, max_parallel=parallel,
                              sampler=xm.search.RandomSampler(seed=0))
    return time.perf_counter() - start


def run_launch(n: int, parallel: int) -> float:
    from xmanager import xm, xm_local

    start = time.perf_counter()
    with xm_local.create_experiment("bench launch", max_parallel=parallel) as experiment:
        [executable] = experiment.package([xm.python_callable(xm_local.InProcess.Spec(), objective)])
        job = xm.Job(executable, xm_local.InProcess())
        for i in range(n):
            experiment.add(job, {"x": i / n, "y": 0.5})
    return time.perf_counter() - start


def run_optuna(n: int, parallel: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def optuna_objective(trial: Any) -> float:
        return objective(trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1))["loss"]

    start = time.perf_counter()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(optuna_objective, n_trials=n, n_jobs=parallel)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with scratch_dir("xm-bench-search", args.keep, use_as_store=True):
        run_search(20, args.parallel)  # Warm-up: imports, store creation.
        run_launch(20, args.parallel)
        times: dict[str, list[float]] = {"search": [], "launch": [], "optuna": []}
        for _ in range(args.repeat):  # Interleaved, so load from elsewhere hits every side alike.
            times["search"].append(run_search(args.n, args.parallel))
            times["launch"].append(run_launch(args.n, args.parallel))
            times["optuna"].append(run_optuna(args.n, args.parallel))
    median = {name: statistics.median(values) for name, values in times.items()}
    per = {name: 1000 * value / args.n for name, value in median.items()}
    overhead = per["search"] - per["launch"]
    rows = [
        ["add_search (ours)", f"{median['search']:.2f}", f"{per['search']:.3f}"],
        ["add per unit (the launch itself)", f"{median['launch']:.2f}", f"{per['launch']:.3f}"],
        [f"Optuna study.optimize, n_jobs={args.parallel} (peer)", f"{median['optuna']:.2f}", f"{per['optuna']:.3f}"],
        ["Ray Tune", "n/a", "not installed"],
    ]
    print(f"{args.n} trials, max_parallel={args.parallel}, median of {args.repeat}")
    print(table(["side", "total s", "ms per trial"], rows))
    verdict = "PASS" if overhead <= 2.0 else "FAIL"
    print(f"search overhead beyond the launch: {overhead:.3f} ms per trial (target <= 2 ms): {verdict}")
    return 0 if overhead <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
