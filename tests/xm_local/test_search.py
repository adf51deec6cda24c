"""experiment.add_search on real executors: trials as local processes, pruning that stops them, a launcher
killed with SIGKILL mid-search and resumed, Optuna's TPE driving in-process units, bad objectives."""

import collections
import os
import signal
import subprocess
import time

import pytest
from xmanager import xm, xm_local
from xmanager.xm import search

TIMEOUT_S = 60

#: A trial: a learning curve that falls towards (x - 0.3)^2; x > 0.5 runs slowly (a hopeless trial, for
#: pruning). Its pid and x go to runs.log next to the script, one line per run.
TRIAL = """
import os, sys, time
from xmanager import xm
args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
x = float(args["x"])
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log"), "a") as log:
    log.write(f"{os.getpid()} {x!r}\\n")
slow = x > 0.5
steps = int(os.environ.get("TRIAL_STEPS", "5"))
for step in range(1, (400 if slow else steps) + 1):
    xm.report(step=step, loss=(x - 0.3) ** 2 + 1.0 / step)
    time.sleep(0.1 if slow else float(os.environ.get("TRIAL_SLEEP", "0.01")))
xm.report(loss=(x - 0.3) ** 2)
"""


def _job(experiment, path):
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=path)])
    return xm.Job(executable, xm_local.Local(experimental_stream_output=False))


def _runs(script_path):
    log = os.path.join(os.path.dirname(script_path), "runs.log")
    if not os.path.exists(log):
        return []
    with open(log) as handle:
        return [line.split() for line in handle if line.strip()]


def test_a_search_on_local_runs_its_trials_as_units_and_marks_the_best(script, python):
    trial = script(TRIAL, name="trial.py")
    with xm_local.create_experiment("search") as experiment:
        found = experiment.add_search(_job(experiment, trial), {"x": search.uniform(0.0, 0.5)}, n_trials=6,
                                      max_parallel=2, sampler=search.SobolSampler(seed=0))
    frame = found.to_dataframe()
    assert list(frame["_trial_number"]) == list(range(6)) and set(frame["_status"]) == {"completed"}
    assert list(frame["loss"]) == pytest.approx([(x - 0.3) ** 2 for x in frame["x"]])
    assert list(frame["best_loss"]) == pytest.approx([(x - 0.3) ** 2 + 1 / 5 for x in frame["x"]])
    best = found.best
    assert best.value == min(frame["loss"]) and frame.loc[best.number, "_work_unit_id"] == best.work_unit_id
    assert sorted(float(x) for _, x in _runs(trial)) == sorted(frame["x"])  # Each trial ran once.
    xmanager = os.path.join(os.path.dirname(python), "xmanager")
    show = subprocess.run([xmanager, "show", str(experiment.experiment_id)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=True)
    assert f"best trial: {best.number} (work unit {best.work_unit_id}) loss={best.value:.6g}" in show.stdout


def test_pruned_trials_are_stopped_and_recorded_pruned(script):
    trial = script(TRIAL, name="trial.py")
    grid = [{"x": 0.3}, {"x": 0.35}, {"x": 0.9}, {"x": 0.25}]
    with xm_local.create_experiment("pruning") as experiment:
        found = experiment.add_search(_job(experiment, trial), grid, n_trials=4, max_parallel=1,
                                      pruner=search.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    frame = found.to_dataframe()
    assert list(frame["_status"]) == ["completed", "completed", "pruned", "completed"]
    pruned = frame.iloc[2]
    assert pruned["_message"].startswith("pruned: median stopping at step ")
    assert found.trials[2].state is search.TrialState.PRUNED
    unit = xm_local.get_experiment(experiment.experiment_id).work_units[int(pruned["_work_unit_id"])]
    status = unit.get_status()
    assert status.is_pruned and not status.is_failed and status.message == pruned["_message"]
    assert [job.status.value for job in unit.jobs.values()] == ["pruned"]
    [pid] = [int(pid) for pid, x in _runs(trial) if float(x) == 0.9]
    assert not os.path.exists(f"/proc/{pid}")  # Stopped (and reaped), not left running.
    assert not experiment.failed_units()
    assert found.trials[2].last_step < 400  # Stopped long before its end.


KILLED_LAUNCHER = """
import os, sys
from xmanager import xm, xm_local
from xmanager.xm import search
experiment_id = os.environ.get("RESUME")
experiment = xm_local.get_experiment(experiment_id) if experiment_id else xm_local.create_experiment("resumed")
with experiment:
    print(experiment.experiment_id, flush=True)
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=sys.argv[1])])
    job = xm.Job(executable, xm_local.Local(experimental_stream_output=False))
    experiment.add_search(job, {"x": search.uniform(0.0, 0.5)}, n_trials=8, max_parallel=2,
                          sampler=search.RandomSampler(seed=11), skip_completed=True)
"""


def test_a_launcher_killed_mid_search_resumes_without_losing_or_repeating_a_trial(tmp_path, script, python):
    trial = script(TRIAL, name="trial.py")
    launcher_script = tmp_path / "launch.py"
    launcher_script.write_text(KILLED_LAUNCHER)
    env = {**os.environ, "TRIAL_STEPS": "10", "TRIAL_SLEEP": "0.05"}
    launcher = subprocess.Popen([python, str(launcher_script), trial], stdout=subprocess.PIPE, text=True, env=env)
    try:
        experiment_id = int(launcher.stdout.readline())
        deadline = time.monotonic() + TIMEOUT_S
        while len(_runs(trial)) < 4:  # Killed with trials done and two running.
            assert time.monotonic() < deadline and launcher.poll() is None
            time.sleep(0.02)
        launcher.send_signal(signal.SIGKILL)
    finally:
        launcher.kill()
        launcher.wait(timeout=TIMEOUT_S)
    before = len(_runs(trial))
    assert before < 8
    resumed = subprocess.run([python, str(launcher_script), trial], capture_output=True, text=True,
                             env={**env, "RESUME": str(experiment_id)}, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    experiment = xm_local.get_experiment(experiment_id)
    frame = experiment.to_dataframe()
    trials = frame[frame["_run_id"] == "search:min:loss"]
    completed = trials[trials["_status"] == "completed"]
    assert sorted(completed["_pset_seq"]) == list(range(8))  # No trial lost.
    runs = collections.Counter(float(x) for _, x in _runs(trial))
    assert len(runs) == 8 and set(runs.values()) == {1}  # None ran twice.
    assert sorted(runs) == sorted(completed["x"])
    # The parameters are those of the sampler's trials 0-7, whichever process asked.
    sampler = search.RandomSampler(seed=11)
    search.Study({"x": search.uniform(0.0, 0.5)}, n_trials=8, sampler=sampler)
    assert sorted(sampler.ask(n)["x"] for n in range(8)) == sorted(runs)


def _quadratic(x, y):
    return {"loss": (x - 0.3) ** 2 + (y - 0.7) ** 2}


def _no_loss(x):
    return {"acc": x}


def _nan_loss(x):
    return {"loss": float("nan")}


def _in_process(experiment, function):
    [executable] = experiment.package([xm.python_callable(xm_local.InProcess.Spec(), function)])
    return xm.Job(executable, xm_local.InProcess())


def test_optuna_tpe_drives_the_search_and_holds_its_trials():
    optuna = pytest.importorskip("optuna")
    sampler = search.OptunaSampler(optuna.samplers.TPESampler(seed=0, n_startup_trials=4))
    with xm_local.create_experiment("tpe") as experiment:
        found = experiment.add_search(_in_process(experiment, _quadratic),
                                      {"x": search.uniform(0, 1), "y": search.uniform(0, 1)}, n_trials=12,
                                      max_parallel=2, sampler=sampler)
    history = sampler.study.trials
    assert isinstance(sampler.study.sampler, optuna.samplers.TPESampler) and len(history) == 12
    assert [t.state for t in history] == [optuna.trial.TrialState.COMPLETE] * 12
    ours = {(t.params["x"], t.params["y"]): t.value for t in found.trials}
    assert {(t.params["x"], t.params["y"]): t.value for t in history} == ours


@pytest.mark.parametrize(("function", "message"), [
    (_no_loss, r"search objective 'loss': trial 0 \(work unit 1\) completed without reporting it as a result or a "
               r"metric \(it reported: acc\)"),
    (_nan_loss, r"search objective 'loss': trial 0 \(work unit 1\) reported NaN"),
])
def test_a_bad_objective_stops_the_search_with_one_error(function, message):
    with xm_local.create_experiment("bad objective") as experiment:
        with pytest.raises(search.ObjectiveError, match=message):
            experiment.add_search(_in_process(experiment, function), {"x": search.uniform(0, 1)}, n_trials=4)
    assert experiment.work_unit_count == 1


def test_a_bad_mode_or_space_is_refused_before_any_unit():
    with xm_local.create_experiment("bad mode") as experiment:
        job = _in_process(experiment, _quadratic)
        with pytest.raises(search.ObjectiveError, match="search mode must be 'min' or 'max', got 'minimize'"):
            experiment.add_search(job, {"x": search.uniform(0, 1)}, mode="minimize", n_trials=2)
        with pytest.raises(search.SpaceError, match="search space 'x': uniform"):
            experiment.add_search(job, {"x": search.uniform(1, 0)}, n_trials=2)
    assert experiment.work_unit_count == 0


def test_the_digits_example_tunes_a_real_model_on_local(monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
    import search_digits

    found = search_digits.launch("local", trials=6, parallel=3, seed=0)
    frame = found.to_dataframe()
    assert list(frame["_trial_number"]) == list(range(6))
    assert set(frame["_status"]) <= {"completed", "pruned"}
    assert found.best is not None and found.best.value < 0.2 and found.best.params.keys() == {"alpha", "eta0", "penalty"}
