"""The search loop on any executor: ``experiment.add_search(job, space, ...)``.

A :class:`~xmanager.xm.search.Study` (pure) says which trials run; this module runs them as work
units of the experiment, on the job's executor, through the ordinary data path (``_add``): each trial
is one unit whose args are its parameters, tagged in the store as a pset of the search (``run_id``
``search:<mode>:<objective>``, ``pset_seq`` the trial number). While trials run it reads their
intermediate values (``xm.report(step=...)``, ingested into the store's metrics) for the pruner, and
a pruned unit is stopped through its executor's cancel and recorded ``pruned``.

Everything the search knows is in the store, so a launcher killed mid-search loses nothing: run the
same search on ``get_experiment(id)`` with ``skip_completed=True`` and the trials found there are
restored (ended ones told to the sampler, running ones waited for, never-started ones run again).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import attrs
from xmanager.xm import core
from xmanager.xm.psets import pset_hashes
from xmanager.xm.search.pruners import Pruner
from xmanager.xm.search.samplers import Sampler
from xmanager.xm.search.study import Study, parse_run_id, run_id
from xmanager.xm.search.trials import Trial, TrialState
from xmanager.xm.status import Status
from xmanager.xm_local.store.rows import decode_all
from xmanager.xm_local.unit_state import UnitState, UnitStateMachine

if TYPE_CHECKING:
    from xmanager.xm_local.experiment import LocalExperiment

#: How often running trials' intermediate values are read for the pruner, and followed units polled.
POLL_S = 0.5
#: Unit messages that say a trial never ran because its launcher died: such trials run again on resume.
_NEVER_RAN = ("launcher died",)

_STATES = {Status.COMPLETED: TrialState.COMPLETED, Status.PRUNED: TrialState.PRUNED, Status.FAILED: TrialState.FAILED,
           Status.CANCELLED: TrialState.FAILED}


@attrs.define(eq=False)
class Search:
    """A finished (or stopped) search: its study (trials, best trial) and the experiment that holds it."""

    experiment: LocalExperiment
    study: Study

    @property
    def trials(self) -> list[Trial]:
        return [self.study.trials[number] for number in sorted(self.study.trials)]

    @property
    def best(self) -> Optional[Trial]:
        return self.study.best

    def to_dataframe(self) -> Any:
        """One row per trial (its last attempt): params, results, the objective's final value and
        ``best_<objective>`` (best intermediate value), ``_status`` (``pruned`` included), ``_trial_number``."""
        return trials_dataframe(self.experiment, self.study.objective, self.study.mode)


def add_search(
    experiment: LocalExperiment, job: Any, space: Any, *, objective: str, mode: str, n_trials: Optional[int],
    max_parallel: int, sampler: Optional[Sampler], pruner: Optional[Pruner], skip_completed: bool,
    poll_s: float = POLL_S,
) -> Search:
    study = Study(space, objective, mode, n_trials, max_parallel, sampler, pruner)
    experiment._require_accepting()
    experiment._load_units()
    runner = _Runner(experiment, job, study, poll_s)
    runner.restore(skip_completed)
    runner.run()
    return Search(experiment, study)


class _Runner:
    def __init__(self, experiment: LocalExperiment, job: Any, study: Study, poll_s: float) -> None:
        self.experiment = experiment
        self.job = job
        self.study = study
        self.poll_s = poll_s
        self.tag = study.run_id
        self.units: dict[int, UnitState] = {}  # Trial number -> its running unit's state.
        self.run_seq = 0

    # ---- restoring from the store -------------------------------------------------------------------
    def restore(self, skip_completed: bool) -> None:
        experiment = self.experiment
        if experiment._tracker.machine.adopted:  # Trials of a launcher that died: followed from here.
            experiment._follower.poll()
        store = experiment._store
        store.flush()
        self.run_seq = experiment._sweep_counters()[0]
        stored: dict[int, tuple[int, Status, str, dict[str, Any], dict[str, Any]]] = {}
        columns = ("run_id", "pset_seq", "status", "message", "args", "results")
        for chunk in store.unit_chunks(experiment.experiment_id, columns=columns):
            for unit_id, tag, number, status, message, args, results in zip(
                chunk["work_unit_id"], chunk["run_id"], chunk["pset_seq"], chunk["status"], chunk["message"],
                decode_all(chunk["args"]), decode_all(chunk["results"]),
            ):
                if tag == self.tag and number is not None:  # The latest unit of a trial number wins.
                    stored[int(number)] = (unit_id, Status(status), message or "", args or {}, results or {})
        if not stored:
            return
        if not skip_completed:  # A new study after the stored one: numbers go on from there.
            self.study.restore([], [])
            self.study._next = max(stored) + 1
            self.study.n_trials += len(stored)
            self.study.trials.update({number: Trial(number, args, TrialState.FAILED, work_unit_id=unit_id)
                                      for number, (unit_id, _, _, args, _) in stored.items()})
            return
        series = self._stored_series({unit_id for unit_id, *_ in stored.values()})
        machine = experiment._tracker.machine
        ended, rerun = [], []
        for number, (unit_id, status, message, args, results) in stored.items():
            params = self._params(args)
            trial = Trial(number, params, work_unit_id=unit_id, reports=series.get(unit_id, []), message=message)
            state = machine.units[unit_id] if unit_id in machine.units else None
            if state is not None and not state.status.is_terminal:
                self.units[number] = state
                ended.append(trial)  # Running on: in flight.
                continue
            if status is Status.CANCELLED or (status is Status.FAILED and any(why in message for why in _NEVER_RAN)):
                rerun.append(trial)
                continue
            trial.state = _STATES.get(status, TrialState.FAILED)
            if trial.state is TrialState.COMPLETED:
                trial.value = self._value_or_none(trial, results)
                if trial.value is None:
                    trial.state = TrialState.FAILED
            elif trial.reports:
                trial.value = trial.reports[-1][1]
            ended.append(trial)
        self.study.restore(ended, rerun)

    def _params(self, args: Mapping[str, Any]) -> dict[str, Any]:
        space = self.study.space
        if space is None:
            return dict(args)
        names = space.names()
        return {key: value for key, value in args.items() if key in names}

    def _value_or_none(self, trial: Trial, results: Mapping[str, Any]) -> Optional[float]:
        try:
            return self.study.objective_value(trial, results)
        except ValueError:
            return None

    def _stored_series(self, unit_ids: set[int], *, all_names: bool = False) -> dict[int, list[tuple[int, float]]]:
        """The objective's points of these units, as stored (one query per unit; all units when many)."""
        store, experiment_id = self.experiment._store, self.experiment.experiment_id
        series: dict[int, list[tuple[int, float]]] = {}
        chunks = (store.metric_chunks(experiment_id) if len(unit_ids) > 8
                  else (chunk for unit_id in sorted(unit_ids) for chunk in store.metric_chunks(experiment_id, unit_id)))
        for chunk in chunks:
            for unit_id, step, name, value in zip(chunk["work_unit_id"], chunk["step"], chunk["name"], chunk["value"]):
                if unit_id in unit_ids and name == self.study.objective:
                    series.setdefault(unit_id, []).append((int(step), math.nan if value is None else float(value)))
        return series

    # ---- the loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
        except BaseException as error:
            self._stop_running(f"cancelled: the search stopped ({type(error).__name__}: {error})")
            raise

    def _loop(self) -> None:
        study, experiment = self.study, self.experiment
        tracker = experiment._tracker
        units = self.units

        def any_ended(machine: UnitStateMachine) -> bool:
            return any(state.status.is_terminal for state in units.values())

        while True:
            while (trial := study.ask()) is not None:
                self._launch(trial)
            self._settle()
            if study.done:
                return
            if study.free > 0:
                continue  # Slots freed: start more trials first.
            if tracker.wait_until(any_ended, self.poll_s):
                continue
            if tracker.machine.detached > 0:  # Units on a cluster, or adopted from a launcher that died.
                experiment._follower.poll()
            if study.pruner is not None:
                self._read_reports()

    def _launch(self, trial: Trial) -> None:
        experiment = self.experiment
        pset = core.PsetInfo(pset_hashes([trial.params])[0], str(uuid.uuid4()), self.tag, self.run_seq, trial.number)
        args = {key: value for key, value in trial.params.items()}
        before = experiment._next_unit_id
        experiment._add(self.job, args, core.WorkUnitRole(), "", pset)
        unit = experiment._units[before]
        trial.work_unit_id = unit.work_unit_id
        self.units[trial.number] = unit._state

    def _settle(self) -> None:
        """Trials whose units ended: their outcome goes to the study (and the sampler)."""
        for number, state in list(self.units.items()):
            if not state.status.is_terminal:
                continue
            del self.units[number]
            trial = self.study.trials[number]
            trial.work_unit_id = state.work_unit_id
            results = dict(state.results)
            reports = trial.reports
            if (self.study.pruner is not None or self.study.objective not in results
                    or state.status is not Status.COMPLETED):  # Its whole curve: the pruner compares with it.
                self.experiment._store.flush()  # Its last points were queued with its end.
                reports = self._stored_series({state.work_unit_id}).get(state.work_unit_id, [])
            names: list[str] = []
            if state.status is Status.COMPLETED and self.study.objective not in results and not reports:
                names = self._metric_names(state.work_unit_id)
            self.study.finish(number, _STATES.get(state.status, TrialState.FAILED), results, reports,
                              state.message, names)

    def _metric_names(self, work_unit_id: int) -> list[str]:
        names: set[str] = set()
        for chunk in self.experiment._store.metric_chunks(self.experiment.experiment_id, work_unit_id):
            names.update(chunk["name"])
        return sorted(names)

    def _read_reports(self) -> None:
        """Running trials' new intermediate values (ingested into the store first) go to the pruner."""
        experiment = self.experiment
        running = {state.work_unit_id: number for number, state in self.units.items()
                   if not state.status.is_terminal and state.launched_here}
        if not running:
            return
        files = [file for unit_id in running for file in experiment._metrics_files(unit_id)]
        experiment._store.collect_metrics(experiment.experiment_id, files)
        series = self._stored_series(set(running))
        for unit_id, number in running.items():
            reason = self.study.report(number, series.get(unit_id, []))
            if reason is not None:
                self._prune(self.units[number], reason)

    def _prune(self, state: UnitState, reason: str) -> None:
        experiment = self.experiment
        experiment._backends.stop(experiment._tracker.prune(state.work_unit_id, f"pruned: {reason}"))

    def _stop_running(self, message: str) -> None:
        running = [state for state in self.units.values() if not state.status.is_terminal]
        if running:
            self.experiment._cancel(running, message)


def trials_dataframe(experiment: LocalExperiment, objective: str, mode: str) -> Any:
    """The search's trials in ``experiment.to_dataframe()``'s columns, one row per trial number (its
    latest unit), with ``_trial_number`` and ``best_<objective>``, sorted by trial number."""
    import numpy as np

    frame = experiment.to_dataframe()
    tag = run_id(objective, mode)
    if "_run_id" not in frame.columns:
        frame = frame.iloc[0:0].copy()
        frame["_run_id"] = []
        frame["_pset_seq"] = []
    trials = frame[frame["_run_id"] == tag].copy()
    trials["_trial_number"] = trials["_pset_seq"].astype("int64")
    trials = trials.sort_values(["_trial_number", "_work_unit_id"]).drop_duplicates("_trial_number", keep="last")
    metrics = experiment.metrics()
    best = np.full(len(trials), np.nan)
    if len(metrics):
        points = metrics[metrics["name"] == objective]
        grouped = points.groupby("work_unit_id")["value"]
        per_unit = grouped.min() if mode == "min" else grouped.max()
        best = trials["_work_unit_id"].map(per_unit).to_numpy(dtype=float)
    if objective in trials.columns:  # Trials without intermediate values: their best is their final value.
        final = trials[objective].to_numpy(dtype=float, na_value=np.nan)
        best = np.where(np.isnan(best), final, best)
    trials[f"best_{objective}"] = best
    return trials.reset_index(drop=True)


def best_trial_row(experiment: LocalExperiment) -> Optional[tuple[int, int, str, float]]:
    """The best completed trial of the experiment's (first) search: ``(work_unit_id, trial number,
    objective, value)``, or None when it holds no search. Read from the store (``xmanager show``)."""
    store = experiment._store
    found: Optional[tuple[str, str]] = None
    candidates: dict[int, tuple[int, Any]] = {}
    for chunk in store.unit_chunks(experiment.experiment_id, columns=("run_id", "pset_seq", "status", "results")):
        for unit_id, tag, number, status, results in zip(
            chunk["work_unit_id"], chunk["run_id"], chunk["pset_seq"], chunk["status"], decode_all(chunk["results"])
        ):
            parsed = parse_run_id(tag)
            if parsed is None or (found is not None and parsed != found) or status != Status.COMPLETED.value:
                continue
            found = parsed
            candidates[unit_id] = (int(number), (results or {}).get(parsed[0]))
    if found is None:
        return None
    objective, mode = found
    last = store.last_metrics(experiment.experiment_id)
    for unit_id, name, value in zip(last["work_unit_id"], last["name"], last["value"]):
        if name == objective and unit_id in candidates and candidates[unit_id][1] is None:
            candidates[unit_id] = (candidates[unit_id][0], value)
    best: Optional[tuple[int, int, str, float]] = None
    for unit_id, (number, value) in candidates.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        if best is None or (value < best[3] if mode == "min" else value > best[3]):
            best = (unit_id, number, objective, float(value))
    return best


def best_trial_line(experiment: LocalExperiment) -> Optional[str]:
    """``best trial: N (work unit U) loss=V`` for ``xmanager show``; None when the experiment holds no search."""
    best = best_trial_row(experiment)
    if best is None:
        return None
    unit_id, number, objective, value = best
    return f"best trial: {number} (work unit {unit_id}) {objective}={value:.6g}"


__all__: Sequence[str] = ("Search", "add_search", "best_trial_line", "best_trial_row", "trials_dataframe")
