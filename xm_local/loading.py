"""Loading: an experiment's stored units and jobs, read into its state machine once each.

Units are read in blocks of columns, so 100,000 of them cost one query and no per-row
objects beyond the units themselves; their args are decoded when first asked for. Jobs
(with the handles another process needs to follow or stop them) are read when needed: for
all units, or for the few a caller names.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Optional, TypeVar

from xmanager.executors.api import Handle
from xmanager.xm.status import Status
from xmanager.xm_local.store import Store
from xmanager.xm_local.store.rows import collector_paused, decode_all
from xmanager.xm_local.tracking import UnitTracker
from xmanager.xm_local.unit_state import JobState, UnitState

_STATUSES = {status.value: status for status in Status}
#: The jobs of up to this many units are read unit by unit; beyond, all at once.
_FEW = 20

UnitT = TypeVar("UnitT")


class StoredUnits:
    """Reads one experiment's units and jobs from the store, each at most once."""

    def __init__(self, store: Store, tracker: UnitTracker, *, nothing_stored: bool = False) -> None:
        self._store = store
        self._tracker = tracker
        #: True once the stored units are in the state machine (from the start for a new experiment).
        self.units_loaded = nothing_stored
        self._jobs_loaded: set[int] = set()

    @property
    def store(self) -> Store:
        """The store the units are read from (and their settling writes to)."""
        return self._store

    def load_units(self, make_unit: Callable[[UnitState, str], UnitT]) -> dict[int, UnitT]:
        """Every stored unit, made by ``make_unit(state, args_json)``; empty after the first call."""
        made: dict[int, UnitT] = {}
        with self._tracker.lock, collector_paused():
            if self.units_loaded:
                return made
            self.units_loaded = True
            load = self._tracker.machine.load_unit
            statuses = _STATUSES
            columns = ("status", "message", "exit_code", "results", "args", "launcher")
            for chunk in self._store.unit_chunks(self._tracker.experiment_id, columns=columns):
                for unit_id, status, message, exit_code, results, args, launcher in zip(
                    chunk["work_unit_id"], chunk["status"], chunk["message"], chunk["exit_code"],
                    decode_all(chunk["results"]), chunk["args"], chunk["launcher"],
                ):
                    state = load(unit_id, statuses[status], message or "", exit_code, results or {}, launcher)
                    made[unit_id] = make_unit(state, args)
        return made

    def load_jobs(self, work_unit_ids: Optional[Collection[int]] = None) -> None:
        """The stored jobs, with their handles, of the loaded units among ``work_unit_ids`` (None: all);
        each unit's once. Units created by this process have their jobs already."""
        experiment_id = self._tracker.experiment_id
        with self._tracker.lock:
            machine = self._tracker.machine
            loaded = {unit_id for unit_id, unit in machine.units.items() if not unit.launched_here}
            missing = loaded - self._jobs_loaded
            wanted = missing if work_unit_ids is None else missing.intersection(work_unit_ids)
            if not wanted:
                return
            if work_unit_ids is None or len(self._jobs_loaded) + len(wanted) > _FEW:
                wanted, rows = missing, self._store.jobs(experiment_id)  # One query for all.
            else:
                rows = [row for unit_id in sorted(wanted) for row in self._store.jobs(experiment_id, unit_id)]
            for row in rows:
                if row.work_unit_id not in wanted:
                    continue
                handle = None if row.handle is None else Handle.from_json(
                    row.handle, experiment_id, row.work_unit_id, row.job_name
                )
                machine.load_job(row.work_unit_id, JobState(
                    row.job_name, row.executor, _STATUSES[row.status], row.message or "", row.exit_code, handle,
                    row.stderr_path or row.stdout_path,
                ))
            self._jobs_loaded |= wanted
