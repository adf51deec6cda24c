"""Local experiments: the control plane that launches units and records everything.

``create_experiment`` inserts the experiment; each ``add()`` creates a unit in the experiment's
unit state machine (:mod:`.unit_state`, shared by threads through :mod:`.tracking`), queues its
row for the store and hands its jobs to their executors (:mod:`.launching`). Executors report
through one sink; the state machine is the one owner of every status, and its changes go to the
store in order. Leaving ``with`` or ``async with`` (one :meth:`LocalExperiment._finish`) waits
for the units this process runs, says how to follow detached ones, flushes the store and
reports failed units in one summary.

``get_experiment`` gives the same object for a stored experiment: its units are read from the
store (:mod:`.loading`), followed by polling (:mod:`.following`), and can be stopped, cancelled
or added to from any process. Opening an experiment settles the units of a launcher that died
(:mod:`.ownership`). Cancelling is a state in the store: a launcher asks it right before it
starts each unit, so nothing starts after a cancellation, whichever process recorded it.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import getpass
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

from xmanager.executors.api import BackendSettings, LogFiles
from xmanager.xm import core
from xmanager.xm.job_blocks import Executable, Job, Packageable
from xmanager.xm.report import METRICS_FILE
from xmanager.xm.status import TERMINAL_VALUES, Status
from xmanager.xm_local import config, progress, registry
from xmanager.xm_local.backends import Backends
from xmanager.xm_local.following import Follower
from xmanager.xm_local.launching import Launcher
from xmanager.xm_local.loading import StoredUnits
from xmanager.xm_local.ownership import Reconciler, is_gone, launcher_id
from xmanager.xm_local.store import ExperimentRow, MetricsFile, Store, wait_pending_writes
from xmanager.xm_local.tracking import UnitTracker
from xmanager.xm_local.unit_state import JobState, UnitState, UnitStateMachine
from xmanager.xm_local.work_unit import LocalContextAnnotations, LocalJob, LocalWorkUnit

__all__ = [
    "LocalContextAnnotations", "LocalExperiment", "LocalJob", "LocalWorkUnit", "create_experiment",
    "created_experiments", "get_experiment", "list_experiments", "package",
]

_log = logging.getLogger(__name__)

_MAX_SUMMARY_LINES = 20
#: Followed units are polled first after this many seconds, then less and less often.
_FIRST_POLL_S, _MAX_POLL_S = 0.2, 5.0
#: How often a waiting launcher looks for units that another process recorded as cancelled.
_WATCH_S = 1.0

#: When set (by ``xmanager launch``), experiments created in this context are appended to it.
created_experiments: contextvars.ContextVar[Optional[list[int]]] = contextvars.ContextVar(
    "created_experiments", default=None
)


class LocalExperiment(core.Experiment):
    """An experiment in the local store: live when created here, loaded when read back (``get_experiment``).

    Both kinds read, wait, refresh, stop and cancel the same way; a loaded one takes new units
    after its stored ones (resuming a sweep). The control plane's parts are made on first use,
    so listing 10,000 experiments builds none of them.
    """

    def __init__(self, store: Store, row: ExperimentRow, *, live: bool, max_parallel: Optional[int] = None) -> None:
        self._store = store
        self._row = row
        self.experiment_id = row.experiment_id
        self._max_parallel = max_parallel
        self._live = live
        self._context: Optional[core.MetadataContext] = None  # Built on first use: listing stays cheap.
        self._units: dict[int, LocalWorkUnit] = {}
        self._next_unit_id = 1
        self._accepting = live  # add() works; a loaded experiment starts accepting on its first add().
        self._holding = False  # Registered to release its backends and flush its writes at exit.
        self._closed = False
        self._tasks: list[Any] = []  # Job generators' tasks on the caller's loop (``async with``).
        self._reported: set[int] = set()  # Failed units already raised to the caller.
        self._context_token: Optional[contextvars.Token[Optional[core.Experiment]]] = None
        self._progress: Optional[progress.ExperimentProgress] = None  # Shown while this process launches units.
        if live:
            self._hold()

    # ---- the control plane's parts (made on first use) ---------------------------------------------
    @functools.cached_property
    def _tracker(self) -> UnitTracker:
        tracker = UnitTracker(self.experiment_id, self._store, lambda jobs: self._backends.stop_in_background(jobs))
        tracker.on_unit_end = self._queue_last_metrics
        tracker.observer = self._progress
        return tracker

    @functools.cached_property
    def _backends(self) -> Backends:
        settings = BackendSettings(max_parallel=self._max_parallel, may_start=self._store.start_refusal,
                                   stream_output=progress.show_job_output)
        return Backends(self._tracker.on_status, settings)

    @functools.cached_property
    def _stored(self) -> StoredUnits:
        return StoredUnits(self._store, self._tracker, nothing_stored=self._live)

    @functools.cached_property
    def _launcher(self) -> Launcher:
        return Launcher(self._tracker, self._store, self._backends, self._jobs_root)

    @functools.cached_property
    def _reconciler(self) -> Reconciler:
        return Reconciler(self._tracker, self._backends, self._stored, self._jobs_root)

    @functools.cached_property
    def _follower(self) -> Follower:
        return Follower(self._tracker, self._store, self._backends, self._stored, self._reconciler)

    @property
    def _jobs_root(self) -> str:
        return os.path.join(config.data_dir(), "experiments", str(self.experiment_id))

    def _hold(self) -> None:
        """From now on, the interpreter's exit waits for the units this process runs and flushes the store."""
        if not self._holding:
            self._holding = True
            atexit.register(self._at_exit)

    # ---- metadata ----------------------------------------------------------------------------------
    @property
    def context(self) -> core.MetadataContext:
        if self._context is None:
            row = self._row
            annotations = LocalContextAnnotations(self, row.title, row.tags, row.notes)
            self._context = core.MetadataContext(creator=row.creator or "", annotations=annotations)
        return self._context

    def _save_annotations(self, title: str, tags: Sequence[str], notes: str) -> None:
        self._store.update_experiment(self.experiment_id, title, tags, notes)

    @property
    def title(self) -> str:
        return self._row.title if self._context is None else self.context.annotations.title

    @property
    def tags(self) -> list[str]:
        return list(self._row.tags if self._context is None else self.context.annotations.tags)

    @property
    def created_at(self) -> float:
        return self._row.created_at

    @property
    def notes(self) -> str:
        return self._row.notes if self._context is None else self.context.annotations.notes

    @property
    def creator(self) -> Optional[str]:
        return self._row.creator

    @property
    def archived(self) -> bool:
        """Archived experiments are hidden from ``xmanager list`` (and ``list_experiments(archived=False)``)."""
        return self._row.archived_at is not None

    # ---- managing the record (any process, written now) --------------------------------------------
    def set_tags(self, tags: Sequence[str]) -> list[str]:
        """Replaces the experiment's tags; returns them."""
        return self.edit_tags(replace=tags)

    def edit_tags(self, add: Sequence[str] = (), remove: Sequence[str] = (),
                  replace: Optional[Sequence[str]] = None) -> list[str]:
        """Adds and removes tags (or replaces them all) in one transaction; returns the tags it then has."""
        self._store.flush()  # Annotations this process queued come first.
        self._store.edit_tags(self.experiment_id, add, remove, replace)
        self._reread()
        return self.tags

    def set_notes(self, notes: str) -> None:
        """Replaces the experiment's notes."""
        self._store.flush()
        self._store.set_notes(self.experiment_id, notes)
        self._reread()

    def archive(self) -> None:
        """Hides the experiment from ``xmanager list`` (``--all`` shows it); nothing is deleted."""
        self._store.set_archived(self.experiment_id, time.time())
        self._reread()

    def unarchive(self) -> None:
        self._store.set_archived(self.experiment_id, None)
        self._reread()

    def delete(self) -> None:
        """Deletes the experiment's records (units, jobs, their history, metrics, tags) and its local job
        folders. Refuses with a ``RuntimeError`` while any of its units has not ended (cancel them first)."""
        self.refresh()  # Units of a launcher that died are settled; statuses of followed units brought up to date.
        unfinished = self._store.delete_experiment(self.experiment_id)
        if unfinished:
            raise RuntimeError(
                f"experiment {self.experiment_id} has {len(unfinished)} unfinished work unit(s) "
                f"({', '.join(map(str, unfinished[:10]))}{', ...' if len(unfinished) > 10 else ''}); "
                f"nothing deleted (stop them first: xmanager cancel {self.experiment_id})"
            )
        shutil.rmtree(self._jobs_root, ignore_errors=True)
        self._closed = True

    def _reread(self) -> None:
        """The experiment's row as stored now (annotations rebuilt from it on next use)."""
        row = self._store.get_experiment(self.experiment_id)
        if row is None:
            raise core.NotFoundError(f"no experiment {self.experiment_id} in {self._store.url}")
        self._row = row
        if self._context is not None:
            annotations = self._context.annotations
            annotations.title, annotations.tags[:], annotations.notes = row.title, list(row.tags), row.notes

    # ---- reading units -----------------------------------------------------------------------------
    @property
    def work_units(self) -> dict[int, LocalWorkUnit]:
        self._load_units()
        return dict(self._units)

    @property
    def work_unit_count(self) -> int:
        return len(self._units) if self._stored_units_read() else self._row.work_unit_count

    @property
    def status_counts(self) -> dict[str, int]:
        """Units per status (as stored, until the units are read)."""
        if not self._stored_units_read():
            return dict(self._row.status_counts)
        counts: dict[str, int] = {}
        with self._tracker.lock:
            for unit in self._tracker.machine.units.values():
                counts[unit.status.value] = counts.get(unit.status.value, 0) + 1
        return counts

    def failed_units(self) -> list[LocalWorkUnit]:
        """The units that ended failed (cancelled ones are not failures)."""
        self._load_units()
        return [self._units[unit_id] for unit_id, unit in self._tracker.machine.units.items()
                if unit.status is Status.FAILED]

    def to_dataframe(self) -> Any:
        """One row per work unit: its args, its results, ``_``-prefixed reserved columns, then one column
        per metric (``xm.report(step=...)``) with the unit's last value of it by step; a result of the same
        name wins (the metric gets no column).

        Units followed by polling (cluster executors, other processes) are refreshed first, and the new
        points of running units read."""
        from xmanager.xm_local.dataframe import experiment_dataframe

        self._collect_metrics()
        return experiment_dataframe(self._store, self.experiment_id, expected_rows=self.work_unit_count)

    def metrics(self) -> Any:
        """Every unit's metrics over time (``xm.report(step=..., **metrics)``) as a long-format pandas
        DataFrame: ``work_unit_id``, ``step``, ``time`` (wall-clock seconds since the epoch), ``name``,
        ``value`` (float), sorted by unit, name and step.

        Points of running units are read from their jobs' metrics files first (from any process that
        can reach their job folders), so the frame grows while they run."""
        from xmanager.xm_local.dataframe import metrics_dataframe

        self._collect_metrics()
        return metrics_dataframe(self._store, self.experiment_id)

    def _collect_metrics(self, work_unit_id: Optional[int] = None) -> None:
        """Ingests the points the unfinished units (or unit ``work_unit_id``) added to their metrics files
        since they were last read; units that ended had theirs ingested by whoever saw them end."""
        self.refresh()
        # Else nothing was unfinished when the experiment was opened (and refresh() read no units).
        if self._stored_units_read() and self._tracker.machine.active > 0:
            with self._tracker.lock:
                unfinished = [unit_id for unit_id, unit in self._tracker.machine.units.items()
                              if not unit.status.is_terminal and work_unit_id in (None, unit_id)]
            files = [file for unit_id in unfinished for file in self._metrics_files(unit_id)]
            self._store.collect_metrics(self.experiment_id, files)
        self._store.flush()  # Ingestions queued at units' ends are committed before the read.

    def _metrics_files(self, work_unit_id: int) -> list[MetricsFile]:
        """The metrics files of the unit's jobs: ``metrics.jsonl`` in each job's folder (where the job's
        results file is, for the executors whose jobs write in their folder: local, Slurm)."""
        folder = os.path.join(self._jobs_root, str(work_unit_id))
        try:
            names = os.listdir(folder)
        except OSError:  # Not started, or run where this process cannot see its folder.
            return []
        return [MetricsFile(work_unit_id, name, os.path.join(folder, name, METRICS_FILE)) for name in sorted(names)]

    def _queue_last_metrics(self, work_unit_id: int) -> None:
        """The unit ended: its jobs' last points go to the store with (or before) its final status."""
        # Called (under the tracker's lock) at every unit's end: one stat per job of the unit, no folder listing.
        unit = self._tracker.machine.units.get(work_unit_id)
        folder = os.path.join(self._jobs_root, str(work_unit_id))
        files = [MetricsFile(work_unit_id, name, path) for name in sorted(unit.jobs if unit is not None else ())
                 if os.path.exists(path := os.path.join(folder, name, METRICS_FILE))]
        if files:  # Nothing queued for a unit that reported no points.
            self._store.queue_metrics(self.experiment_id, files)

    def _unit_metrics(self, unit: LocalWorkUnit) -> Any:
        from xmanager.xm_local.dataframe import metrics_dataframe

        self._collect_metrics(unit.work_unit_id)
        return metrics_dataframe(self._store, self.experiment_id, unit.work_unit_id)

    def __repr__(self) -> str:
        return f"<LocalExperiment {self.experiment_id} {self.title!r} units={self.work_unit_count}>"

    def _stored_units_read(self) -> bool:
        return self._live or "_stored" in self.__dict__ and self._stored.units_loaded

    def _load_units(self) -> None:
        loaded = self._stored.load_units(lambda state, args: LocalWorkUnit(self, state, args))
        if loaded:
            with self._tracker.lock:
                self._units.update(loaded)
                self._next_unit_id = max(self._next_unit_id, max(loaded) + 1)
                # Failures from before it was loaded are not this process's to report.
                self._reported.update(unit_id for unit_id, unit in loaded.items()
                                      if unit._state.status is Status.FAILED)

    def _jobs_of(self, unit: LocalWorkUnit) -> list[JobState]:
        self._stored.load_jobs((unit.work_unit_id,))
        with self._tracker.lock:
            return list(unit._state.jobs.values())

    def _logs(self, unit: LocalWorkUnit, job_name: str) -> LogFiles:
        jobs = {job.name: job for job in self._jobs_of(unit)}
        if job_name not in jobs:
            raise KeyError(f"work unit {unit.work_unit_id} has no job {job_name!r} (it has: {', '.join(jobs)})")
        self._hold()
        return self._backends.logs(jobs[job_name])

    # ---- packaging ---------------------------------------------------------------------------------
    @classmethod
    def package(cls, packageables: Sequence[Packageable] = ()) -> list[Executable]:
        return package(packageables)

    # ---- adding (xm.core's protocol) ---------------------------------------------------------------
    def _require_accepting(self) -> None:
        if self._closed:
            raise RuntimeError(f"experiment {self.experiment_id} is closed; add work inside its `with` block")
        if not self._accepting:
            self._load_units()  # New units come after the stored ones.
            self._accepting = True
            self._hold()
            if self._row.cancelled_at is not None:  # Resuming a cancelled experiment reopens it.
                self._store.reopen_experiment(self.experiment_id)

    def _upcoming_work_unit_id(self) -> Optional[int]:
        self._require_accepting()
        return self._next_unit_id

    def _create_work_unit(
        self, role: core.ExperimentUnitRole, identity: str, params: dict[str, Any],
        pset: Optional[core.PsetInfo] = None,
    ) -> LocalWorkUnit:
        self._require_accepting()
        with self._tracker.lock:
            work_unit_id = self._next_unit_id
            self._next_unit_id += 1
            unit = LocalWorkUnit(self, self._tracker.add_unit(work_unit_id), dict(params), role, identity)
            self._units[work_unit_id] = unit
            self._store.create_unit(self.experiment_id, work_unit_id, params, time.time(), pset, launcher_id())
        return unit

    def _launch(self, unit: LocalWorkUnit, jobs: list[Job]) -> None:
        self._require_accepting()
        self._launcher.launch(unit.work_unit_id, jobs)

    def add_search(
        self, job: Any, space: Any, *, objective: str = "loss", mode: str = "min", n_trials: Optional[int] = None,
        max_parallel: int = 1, sampler: Any = None, pruner: Any = None, skip_completed: bool = True,
    ) -> Any:
        """Runs a search (``docs/search.md``): asks ``sampler`` (default ``xm.search.RandomSampler()``) for
        parameter sets of ``space`` and runs each as a unit of ``job`` on its executor, ``max_parallel`` at a
        time, until ``n_trials`` have ended; ``pruner`` stops hopeless ones early (status ``pruned``). A
        trial's ``objective`` is its result of that name, else its last ``xm.report(step=...)`` value.
        Blocks until done; returns an ``xm_local.search.Search`` (``best``, ``trials``, ``to_dataframe()``).
        With ``skip_completed``, the trials this experiment holds already are the search's first ones."""
        from xmanager.xm_local.search import add_search

        return add_search(self, job, space, objective=objective, mode=mode, n_trials=n_trials,
                          max_parallel=max_parallel, sampler=sampler, pruner=pruner, skip_completed=skip_completed)

    def _launch_batch(self) -> contextlib.AbstractContextManager[None]:
        self._require_accepting()
        return self._launcher.batch()

    def _seal(self, unit: LocalWorkUnit, error: Optional[BaseException]) -> None:
        """No more jobs for ``unit`` (its generator returned or raised: then it fails and its jobs stop)."""
        message = None if error is None else f"job generator raised {type(error).__name__}: {error}"
        self._backends.stop(self._tracker.seal(unit.work_unit_id, message))

    def _completed_pset_hashes(self) -> set[str]:
        if self._tracker.machine.adopted:  # Units of a launcher that died: rerun only if they do not complete.
            self._wait_for(lambda machine: machine.adopted <= 0)
        self._store.flush()
        return self._store.completed_pset_hashes(self.experiment_id)

    def _sweep_counters(self) -> tuple[int, int]:
        self._store.flush()
        return self._store.sweep_counters(self.experiment_id)

    def _track_task(self, task: Any) -> None:
        self._tasks.append(task)

    # ---- following, stopping and cancelling ------------------------------------------------------
    def _reconcile(self) -> bool:
        """Settles the unfinished units whose launcher died (on opening the experiment); True if any."""
        if not self._stored_units_read() and not any(
            count for status, count in self._row.status_counts.items() if status not in TERMINAL_VALUES
        ):
            return False
        if not self._stored_units_read():
            launchers = self._store.unfinished_launchers([self.experiment_id]).get(self.experiment_id, set())
            if not any(is_gone(launcher) for launcher in launchers):
                return False
            self._load_units()
        orphaned = self._reconciler.orphaned()
        if not orphaned:
            return False
        self._hold()
        self._reconciler.settle(orphaned)
        self._store.flush()
        return True

    def refresh(self) -> None:
        """Brings the statuses and results of unfinished units up to date (one query per executor)."""
        if not self._stored_units_read() and not any(
            count for status, count in self._row.status_counts.items() if status not in TERMINAL_VALUES
        ):
            return
        self._load_units()
        if self._tracker.machine.detached:
            self._hold()
            self._follower.poll()
        self._store.flush()

    def cancel(self, message: str = "cancelled") -> int:
        """Cancels every unit that has not ended, whichever process launched it, and waits until they
        are recorded as cancelled. Returns how many units it cancelled.

        The experiment's cancellation is recorded in the store first: from then on its launchers (this
        process or another) start none of its units, including those not yet written to the store."""
        self._store.record_experiment_cancelled(self.experiment_id, time.time())
        self._load_units()
        with self._tracker.lock:
            unfinished = [unit for unit in self._tracker.machine.units.values() if not unit.status.is_terminal]
        self._cancel(unfinished, message)
        self._wait_for(lambda machine: all(unit.status.is_terminal for unit in unfinished))
        self._store.flush()
        return len(unfinished)

    def _cancel(self, units: Sequence[UnitState], message: str) -> None:
        """Stops ``units``: through this process's backends when it launched them, else recorded in the
        store first and stopped through their stored handles."""
        elsewhere = [unit.work_unit_id for unit in units if not unit.launched_here]
        if elsewhere:
            self._hold()
            self._follower.cancel_elsewhere(elsewhere, message)
        here = [unit for unit in units if unit.launched_here]
        if here:
            with self._tracker.lock:
                jobs = [job for unit in here for job in unit.jobs.values() if not job.status.is_terminal]
            self._backends.stop(jobs)
            self._tracker.cancel_unlaunched(here, message)

    # ---- waiting -----------------------------------------------------------------------------------
    def wait_until_complete(self) -> Any:
        """Waits for every unit, polling those on cluster executors or run by another process; sync
        code blocks, async code awaits. Raises ``xm.ExperimentFailedError`` naming failed units."""
        self._load_units()
        self._hold()
        if core.running_loop() is None:
            self._wait_all()
            return None
        return self._wait_all_async()

    def _wait_all(self) -> None:
        self._wait_for(lambda machine: machine.active <= 0)
        self._store.flush()
        self._raise_failures()

    async def _wait_all_async(self) -> None:
        import asyncio

        await self._await_generators()
        await asyncio.to_thread(self._wait_all)

    async def _await_generators(self) -> None:
        import asyncio

        while self._tasks:
            tasks, self._tasks = self._tasks, []
            await asyncio.gather(*tasks, return_exceptions=True)

    def _wait_for(self, finished: Callable[[UnitStateMachine], bool], follow: bool = True) -> None:
        """Waits until ``finished(machine)``. Meanwhile polls followed units (``follow``; less and less
        often) and, every second, takes over cancellations that another process recorded."""
        interval, watched = _FIRST_POLL_S, time.monotonic()
        while True:
            machine = self._tracker.machine
            polling = (follow and machine.detached > 0) or machine.adopted > 0  # Adopted units: always.
            if self._tracker.wait_until(finished, interval if polling else _WATCH_S):
                return
            if polling:
                self._follower.poll()
                interval = min(interval * 1.5, _MAX_POLL_S)
            if time.monotonic() - watched >= _WATCH_S:
                self._follower.watch_cancellations()
                watched = time.monotonic()

    def _wait_here(self, adopted: bool = True) -> None:
        """Waits for the units this process runs (not the followed ones) and, with ``adopted``, those it
        adopted from a launcher that died; interrupted, cancels them."""
        if adopted:
            def finished(machine: UnitStateMachine) -> bool:
                return machine.waited_here <= 0
        else:
            def finished(machine: UnitStateMachine) -> bool:
                return machine.active - machine.detached <= 0
        try:
            self._wait_for(finished, follow=False)
        except KeyboardInterrupt:
            self._stop_on_interrupt()
            raise

    # ---- leaving -------------------------------------------------------------------------------------
    def __enter__(self) -> LocalExperiment:
        self._context_token = core._current_experiment.set(self)  # get_xid_from_context() inside the block.
        return self

    async def __aenter__(self) -> LocalExperiment:
        self._context_token = core._current_experiment.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._leave_context()
        self._finish(exc_type)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import asyncio

        self._leave_context()
        if not _interrupted(exc_type):
            await self._await_generators()
        try:
            await asyncio.to_thread(self._finish, exc_type)
        except asyncio.CancelledError:
            self._stop_on_interrupt()
            raise

    def _finish(self, exc_type: Optional[type[BaseException]]) -> None:
        """Leaving the experiment's block: waits for the units this process runs, closes their backends,
        says how to follow detached units, and raises one error for the failed ones (unless the block
        raised). Interrupted (Ctrl-C, a cancelled task), it cancels the running units instead."""
        if _interrupted(exc_type):
            self._stop_on_interrupt()
            return
        self._wait_here()
        self._close()
        self._announce_detached()
        if exc_type is None:
            self._raise_failures()

    def _leave_context(self) -> None:
        token, self._context_token = self._context_token, None
        if token is not None:
            with contextlib.suppress(ValueError):  # Left from another context (a generator's task).
                core._current_experiment.reset(token)

    def _stop_on_interrupt(self) -> None:
        print(f"xmanager: interrupted; cancelling the running units of experiment {self.experiment_id}", file=sys.stderr)
        try:
            self.cancel("cancelled: the launcher was interrupted")
        finally:
            self._close()

    def _announce_detached(self) -> None:
        followed = 0
        if "_tracker" in self.__dict__:  # Units launched here on a detached executor (not other processes').
            with self._tracker.lock:
                followed = sum(1 for unit in self._tracker.machine.units.values()
                               if unit.launched_here and unit.detached and not unit.status.is_terminal)
        if followed:
            print(
                f"xmanager: {followed} work unit(s) of experiment {self.experiment_id} run on in their "
                f"cluster queue; follow them with `xmanager show {self.experiment_id}`",
                file=sys.stderr,
            )

    def _raise_failures(self) -> None:
        if any(unit_id not in self._reported for unit_id in self._failed_ids()):
            self._store.flush()
            self._follower.watch_cancellations()  # Units killed by `xmanager cancel` looked failed here.
        failed = [self._units[unit_id] for unit_id in self._failed_ids() if unit_id not in self._reported]
        if not failed:
            return
        self._reported.update(unit.work_unit_id for unit in failed)
        lines = [f"{len(failed)} of {self.work_unit_count} work units failed in experiment {self.experiment_id} "
                 f"({self.title!r}):"]
        for unit in failed[:_MAX_SUMMARY_LINES]:
            logs = [job.log for job in unit._state.jobs.values() if job.status is Status.FAILED and job.log]
            where = f"; log: {logs[0]}" if logs else ""
            lines.append(f"  work unit {unit.work_unit_id}: {unit._state.message}{where}")
        if len(failed) > _MAX_SUMMARY_LINES:
            lines.append(f"  ... and {len(failed) - _MAX_SUMMARY_LINES} more (xmanager show {self.experiment_id})")
        raise core.ExperimentFailedError("\n".join(lines), failed)

    def _failed_ids(self) -> list[int]:
        if "_tracker" not in self.__dict__:
            return []
        with self._tracker.lock:
            return [unit_id for unit_id, unit in self._tracker.machine.units.items() if unit.status is Status.FAILED]

    def _close(self) -> None:
        """Closes the backends and flushes the store (once, from whichever thread comes first)."""
        with self._tracker.lock:
            if self._closed:
                return
            self._closed = True
        self._backends.close()
        self._store.flush()
        if self._progress is not None:
            progress.finish(self._progress)
        if self._holding:
            atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        """Used without ``with``: the interpreter waits for the units it runs and saves their records
        (not for adopted ones: `xmanager show` or `list` settles a dead launcher's units and exits)."""
        try:
            self._wait_here(adopted=False)
        finally:
            self._close()


def _interrupted(exc_type: Optional[type[BaseException]]) -> bool:
    """The block ended by Ctrl-C, a cancelled task or an exit, not by an error of its own."""
    return exc_type is not None and not issubclass(exc_type, Exception)


# ---- module-level API ---------------------------------------------------------------------------
def package(packageables: Sequence[Packageable]) -> list[Executable]:
    """Packages each request with the plugin that owns its executor spec."""
    executables = []
    for packageable in packageables:
        if not isinstance(packageable, Packageable):
            raise TypeError(f"package() takes xm.Packageable items, got {type(packageable).__name__}")
        try:
            plugin = registry.for_spec(type(packageable.executor_spec))
        except LookupError as error:
            raise TypeError(f"{error}") from None
        if not isinstance(packageable.executable_spec, plugin.supported_executables):
            pairs = "\n  ".join(registry.supported_pairs())
            raise TypeError(
                f"cannot package {type(packageable.executable_spec).__name__} for "
                f"{type(packageable.executor_spec).__name__}; supported pairs:\n  {pairs}"
            )
        executables.append(plugin.package(packageable))
    return executables


def _store(url: Optional[str] = None) -> Store:
    wait_pending_writes()  # Reads see what this process wrote, e.g. a sweep's recorder.
    return Store(url or config.database_url())


def create_experiment(
    experiment_title: str = "",
    *,
    tags: Sequence[str] = (),
    notes: str = "",
    max_parallel: Optional[int] = None,
    database_url: Optional[str] = None,
) -> LocalExperiment:
    """Creates an experiment in the store and returns it, ready for ``with``.

    ``max_parallel`` caps concurrently running local units (default: number of CPUs).
    """
    store = _store(database_url)
    experiment_id = store.create_experiment(
        experiment_title, list(tags), notes, _user(), os.environ.get("XM_LAUNCH_SCRIPT"), sys.argv
    )
    row = store.get_experiment(experiment_id)
    assert row is not None
    created = created_experiments.get()
    if created is not None:
        created.append(experiment_id)
    _log.debug("experiment %d created", experiment_id)
    experiment = LocalExperiment(store, row, live=True, max_parallel=max_parallel)
    experiment._progress = progress.start(experiment_id, experiment_title)
    return experiment


def _user() -> Optional[str]:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def get_experiment(experiment_id: int | str, *, database_url: Optional[str] = None) -> LocalExperiment:
    """Loads an experiment (from any process); raises ``xm.NotFoundError`` for unknown ids."""
    try:
        number = int(experiment_id)
    except (TypeError, ValueError):
        raise core.NotFoundError(f"experiment id must be a number, got {experiment_id!r}") from None
    store = _store(database_url)
    row = store.get_experiment(number)
    if row is None:
        raise core.NotFoundError(f"no experiment {number} in {store.url}")
    experiment = LocalExperiment(store, row, live=False)
    experiment._reconcile()
    return experiment


def list_experiments(
    *,
    title: Optional[str] = None,
    tag: Optional[str] = None,
    since: Optional[float] = None,
    until: Optional[float] = None,
    limit: Optional[int] = None,
    status: Optional[str] = None,
    archived: Optional[bool] = None,
    database_url: Optional[str] = None,
) -> list[LocalExperiment]:
    """Experiments newest first. ``title`` matches a substring (``*`` as wildcard), ``tag`` exactly,
    ``since``/``until`` are epoch seconds, ``status`` keeps those with a unit in that status (``failed``),
    ``archived`` only the archived ones (True) or only the others (False; None: both). Costs two
    queries whatever the count."""
    store = _store(database_url)
    rows = store.list_experiments(title=title, tag=tag, since=since, until=until, limit=limit, status=status,
                                  archived=archived)
    experiments = [LocalExperiment(store, row, live=False) for row in rows]
    for experiment in experiments:  # Units of launchers that died are settled first (a query per unfinished one).
        if experiment._reconcile():
            fresh = store.get_experiment(experiment.experiment_id)
            if fresh is not None:
                experiment._row = fresh
    return experiments
