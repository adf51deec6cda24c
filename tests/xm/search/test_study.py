"""The pure search loop: samplers, pruners, restore after a restart, and bad objectives."""

import math
import statistics

import pytest
from xmanager import xm
from xmanager.xm import search
from xmanager.xm.search import ObjectiveError, Study, Trial, TrialState

SPACE = {"x": search.uniform(0, 1), "y": search.uniform(0, 1)}


def drive(study, objective):
    """Runs every trial at once with ``objective(params)``; returns the trials in order."""
    while not study.done:
        trial = study.ask()
        study.finish(trial.number, TrialState.COMPLETED, {"loss": objective(trial.params)})
    return [study.trials[number] for number in sorted(study.trials)]


@pytest.mark.parametrize("sampler", [search.RandomSampler, search.SobolSampler])
def test_our_samplers_give_trial_n_the_same_params_for_the_same_seed(sampler):
    first = Study(SPACE, n_trials=8, sampler=sampler(seed=3))
    second = Study(SPACE, n_trials=8, sampler=sampler(seed=3))
    a = [first.sampler.ask(n) for n in range(8)]
    assert [second.sampler.ask(n) for n in (5, 6, 7)] == a[5:]  # Resuming at trial 5 asks for the same points.
    assert len({tuple(params.values()) for params in a}) == 8
    other = Study(SPACE, n_trials=8, sampler=sampler(seed=4))
    assert [other.sampler.ask(n) for n in range(8)] != a


def test_sobol_covers_the_square_evenly():
    study = Study(SPACE, n_trials=16, sampler=search.SobolSampler(seed=0))
    points = [study.sampler.ask(n) for n in range(16)]
    quadrants = {(p["x"] < 0.5, p["y"] < 0.5) for p in points[:4]}
    assert len(quadrants) == 4  # The first four points fall in four different quadrants.


def test_max_parallel_and_n_trials_bound_what_starts():
    study = Study(SPACE, n_trials=5, max_parallel=2)
    assert [study.ask().number, study.ask().number, study.ask()] == [0, 1, None]
    study.finish(0, TrialState.COMPLETED, {"loss": 1.0})
    assert study.ask().number == 2 and study.ask() is None
    for number in (1, 2):
        study.finish(number, TrialState.COMPLETED, {"loss": 0.5})
    assert [study.ask().number, study.ask().number, study.ask()] == [3, 4, None]
    study.finish(3, TrialState.PRUNED, reports=[(1, 9.0)])
    study.finish(4, TrialState.COMPLETED, {"loss": 0.25})
    assert study.done and study.best.number == 4 and study.trials[3].value == 9.0


def test_a_grid_runs_in_order():
    psets = xm.pgrid(xm.plist("a", [1, 2]), xm.plist("b", ["u", "v"]))
    study = Study(psets)
    trials = drive(study, lambda p: p["a"])
    assert [t.params for t in trials] == psets and study.n_trials == 4


def test_restore_tells_ended_trials_keeps_running_ones_and_reruns_those_that_never_ran():
    study = Study(SPACE, n_trials=6, max_parallel=3, sampler=search.RandomSampler(seed=1))
    ended = [Trial(0, {"x": 0.1, "y": 0.2}, TrialState.COMPLETED, 0.3), Trial(2, {"x": 0.5, "y": 0.5}, TrialState.PRUNED)]
    running = Trial(3, {"x": 0.9, "y": 0.9})
    study.restore([*ended, running], rerun=[Trial(1, {"x": 0.7, "y": 0.7})])
    assert [t.number for t in study.running] == [3]
    rerun = study.ask()
    assert (rerun.number, rerun.params) == (1, {"x": 0.7, "y": 0.7})
    assert study.ask().number == 4 and study.ask() is None  # Three in flight.
    assert study.sampler.ask(4) == Study(SPACE, sampler=search.RandomSampler(seed=1), n_trials=1).sampler.ask(4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "minimize"}, "search mode must be 'min' or 'max', got 'minimize'"),
    ({"objective": ""}, "search objective must be a metric name"),
    ({"n_trials": 0}, "search n_trials must be a positive integer"),
    ({"max_parallel": None}, "search max_parallel must be a positive integer"),
])
def test_bad_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Study(SPACE, **{"n_trials": 3, **kwargs})


def test_a_trial_without_the_objective_or_with_nan_is_one_clear_error():
    study = Study(SPACE, n_trials=3)
    trial = study.ask()
    trial.work_unit_id = 7
    with pytest.raises(ObjectiveError, match=r"^search objective 'loss': trial 0 \(work unit 7\) completed without "
                                             r"reporting it as a result or a metric \(it reported: acc, lr\)$"):
        study.finish(0, TrialState.COMPLETED, {"acc": 0.9}, metric_names=["lr"])
    study.ask()
    with pytest.raises(ObjectiveError, match=r"^search objective 'loss': trial 1 reported NaN$"):
        study.finish(1, TrialState.COMPLETED, {"loss": math.nan})
    study.ask()
    with pytest.raises(ObjectiveError, match="reported str 'low', not a number"):
        study.finish(2, TrialState.COMPLETED, {"loss": "low"})


def test_the_last_intermediate_value_is_the_objective_without_a_result():
    study = Study(SPACE, n_trials=1, mode="max")
    study.ask()
    assert study.finish(0, TrialState.COMPLETED, {}, reports=[(1, 0.5), (2, 0.75)]).value == 0.75


# ---- pruners ------------------------------------------------------------------------------------------
def curve(final, steps):
    """A learning curve that falls from final + 1 towards ``final``; its order is the same at every step."""
    return [(step, final + math.exp(-step / 5)) for step in range(1, steps + 1)]


def test_median_pruner_stops_a_trial_worse_than_the_median_of_completed_ones():
    pruner = search.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    study = Study(SPACE, n_trials=5, max_parallel=5, pruner=pruner)
    for final in (0.1, 0.2, 0.3):
        trial = study.ask()
        study.finish(trial.number, TrialState.COMPLETED, {}, reports=curve(final, 10))
    good, bad = study.ask(), study.ask()
    assert study.report(bad.number, curve(0.9, 1)) is None  # Warm-up.
    reason = study.report(bad.number, curve(0.9, 3))
    median = statistics.median(final + math.exp(-3 / 5) for final in (0.1, 0.2, 0.3))
    assert reason == (f"median stopping at step 3: best so far {0.9 + math.exp(-3 / 5):.6g} is worse than the "
                      f"median {median:.6g} of 3 completed trials")
    assert study.report(good.number, curve(0.15, 3)) is None


def test_median_pruner_waits_for_its_startup_trials():
    study = Study(SPACE, n_trials=3, max_parallel=3, pruner=search.MedianPruner(n_startup_trials=2))
    first = study.ask()
    study.finish(first.number, TrialState.COMPLETED, {}, reports=curve(0.1, 5))
    late = study.ask()
    assert study.report(late.number, curve(5.0, 5)) is None


def test_asha_keeps_the_best_third_at_each_rung_and_judges_a_rung_once():
    pruner = search.ASHAPruner(min_resource=1, reduction_factor=3)
    assert pruner.rungs(30) == [1, 3, 9, 27]
    study = Study(SPACE, n_trials=9, max_parallel=9, pruner=pruner)
    trials = [study.ask() for _ in range(9)]
    finals = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6]
    decisions = {}
    for trial, final in zip(trials, finals):  # Everyone reaches rung 0 (step 1) in turn.
        decisions[trial.number] = study.report(trial.number, curve(final, 1))
    assert decisions[0] is None  # The first at a rung always goes on.
    assert decisions[2] is not None and decisions[2].startswith("ASHA rung 0 (step 1): ")
    assert decisions[1] is None  # 0.1 is the best at rung 0.
    # Trial 1 goes on to step 3 (rung 1): alone there, it is promoted; rung 0 is not judged again.
    assert study.report(1, curve(0.1, 3)) is None


def test_asha_spends_far_fewer_steps_and_keeps_the_best_trial():
    """The budget claim of the benchmark, on a deterministic stepper: all curves run in lockstep."""
    finals = [0.05 * ((n * 7) % 27) + 0.01 * n for n in range(27)]
    study = Study(SPACE, n_trials=27, max_parallel=27, pruner=search.ASHAPruner(reduction_factor=3, max_resource=81))
    trials = [study.ask() for _ in range(27)]
    steps = 0
    for step in range(1, 82):
        for trial in trials:
            if trial.state is not TrialState.RUNNING:
                continue
            steps += 1
            reason = study.report(trial.number, curve(finals[trial.number], step))
            if reason is not None:
                study.finish(trial.number, TrialState.PRUNED, message=reason)
            elif step == 81:
                study.finish(trial.number, TrialState.COMPLETED, {})
    assert steps <= 0.4 * 27 * 81
    assert study.best.number == min(range(27), key=lambda n: finals[n])


# ---- Optuna ------------------------------------------------------------------------------------------
def test_optuna_tpe_is_asked_and_told_and_restored_trials_join_its_history():
    optuna = pytest.importorskip("optuna")
    sampler = search.OptunaSampler(optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    space = {**SPACE, "m": search.conditional({"a": {"k": search.randint(1, 3)}, "b": {}}), "act": [[1], [2]]}
    study = Study(space, n_trials=12, sampler=sampler)
    study.restore([Trial(0, {"x": 0.3, "y": 0.1, "m": "a", "k": 2, "act": [2]}, TrialState.COMPLETED, 0.4),
                   Trial(1, {"x": 0.9, "y": 0.9, "m": "b", "act": [1]}, TrialState.PRUNED, reports=[(1, 2.0)])])
    trials = drive(study, lambda p: (p["x"] - 0.3) ** 2 + (p["y"] - 0.1) ** 2)
    history = sampler.study.trials
    assert len(history) == 12 and sampler.study.sampler is sampler.sampler
    assert history[0].params == {"x": 0.3, "y": 0.1, "m": "a", "m=a.k": 2, "act": 1}
    assert history[1].state is optuna.trial.TrialState.PRUNED and history[1].intermediate_values == {1: 2.0}
    assert [t.value for t in history[2:]] == [t.value for t in trials[2:]]
    assert all(t.params["act"] in ([1], [2]) for t in trials[2:])
