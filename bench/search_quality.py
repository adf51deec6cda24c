"""Search quality: our loop vs Optuna's own on the 6-d Hartmann function; ASHA's step budget.

    python bench/search_quality.py [--trials 100] [--seeds 10]

Hartmann-6 (minimum -3.32237): for TPE and random search, the best value found in --trials trials, mean
over --seeds seeds, through ``experiment.add_search`` (InProcess units, max_parallel=1, OptunaSampler /
RandomSampler) and through Optuna's own ``study.optimize`` with the same sampler and seed (the peer, same
run). Target: equal within noise (the difference of the means within 2 standard errors).

ASHA: 81 trials (RandomSampler) on a synthetic learning curve (loss(t) = final + exp(-t / 8), 81 steps,
``final`` from the parameters), run in lockstep through the pure ``xm.search.Study`` with ASHAPruner
(reduction factor 3, max 81 steps). Target: total steps <= 40% of running every trial to the end, and the
best trial (by final loss) still found.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import scratch_dir, table  # noqa: E402

_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
      [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
_ALPHA = [1.0, 1.2, 3.0, 3.2]
NAMES = [f"x{i}" for i in range(6)]


def hartmann6(**x: float) -> dict[str, float]:
    values = [x[name] for name in NAMES]
    total = 0.0
    for i in range(4):
        total -= _ALPHA[i] * math.exp(-sum(_A[i][j] * (values[j] - _P[i][j] * 1e-4) ** 2 for j in range(6)))
    return {"loss": total}


def sampler_for(kind: str, seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed) if kind == "tpe" else optuna.samplers.RandomSampler(seed=seed)


def ours(kind: str, seed: int, trials: int) -> float:
    from xmanager import xm, xm_local

    space = {name: xm.search.uniform(0.0, 1.0) for name in NAMES}
    with xm_local.create_experiment(f"hartmann {kind} {seed}", max_parallel=1) as experiment:
        [executable] = experiment.package([xm.python_callable(xm_local.InProcess.Spec(), hartmann6)])
        found = experiment.add_search(xm.Job(executable, xm_local.InProcess()), space, n_trials=trials,
                                      max_parallel=1, sampler=xm.search.OptunaSampler(sampler_for(kind, seed)))
    assert found.best is not None and found.best.value is not None
    return found.best.value


def peer(kind: str, seed: int, trials: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler_for(kind, seed))
    study.optimize(lambda trial: hartmann6(**{name: trial.suggest_float(name, 0.0, 1.0) for name in NAMES})["loss"],
                   n_trials=trials)
    return float(study.best_value)


def asha(trials: int = 81, steps: int = 81) -> tuple[int, int, bool]:
    from xmanager.xm import search

    study = search.Study({"a": search.uniform(0, 1), "b": search.uniform(0, 1)}, n_trials=trials,
                         max_parallel=trials, sampler=search.RandomSampler(seed=0),
                         pruner=search.ASHAPruner(min_resource=1, reduction_factor=3, max_resource=steps))
    running = [study.ask() for _ in range(trials)]

    def final(params: dict[str, float]) -> float:
        return (params["a"] - 0.3) ** 2 + (params["b"] - 0.6) ** 2

    used = 0
    for step in range(1, steps + 1):
        for trial in running:
            if trial.state is not search.TrialState.RUNNING:
                continue
            used += 1
            curve = [(t, final(trial.params) + math.exp(-t / 8)) for t in range(1, step + 1)]
            reason = study.report(trial.number, curve)
            if reason is not None:
                study.finish(trial.number, search.TrialState.PRUNED, message=reason)
            elif step == steps:
                study.finish(trial.number, search.TrialState.COMPLETED, {"loss": final(trial.params)})
    truly_best = min(running, key=lambda trial: final(trial.params))
    best = study.best
    return used, trials * steps, best is not None and best.number == truly_best.number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rows, ok = [], True
    with scratch_dir("xm-bench-quality", False, use_as_store=True):
        for kind in ("tpe", "random"):
            a = [ours(kind, seed, args.trials) for seed in range(args.seeds)]
            b = [peer(kind, seed, args.trials) for seed in range(args.seeds)]
            se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) if len(a) > 1 else 0.0
            same = abs(statistics.mean(a) - statistics.mean(b)) <= 2 * se + 1e-9
            ok &= same
            rows.append([kind, f"{statistics.mean(a):.4f}", f"{statistics.mean(b):.4f}", f"{se:.4f}",
                         "equal within noise" if same else "DIFFERENT"])
    print(f"Hartmann-6 (min -3.3224), best of {args.trials} trials, mean over {args.seeds} seeds")
    print(table(["sampler", "add_search (ours)", "Optuna study.optimize (peer)", "std. error", "verdict"], rows))
    used, full, found = asha()
    share = used / full
    ok &= share <= 0.4 and found
    print(f"\nASHA on a synthetic learning curve: {used} of {full} steps ({100 * share:.1f}%, target <= 40%); "
          f"best trial {'found' if found else 'NOT found'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
