"""The metadata store: every experiment, unit, job, status change and result.

The only code that builds SQL. Reads are synchronous queries returning row classes
(:mod:`.rows`) or, for large reads, :data:`~.rows.Chunk` blocks of columns; writes from a
running launch are queued on a :class:`~.writer.BatchWriter` in the order they are made.
Experiments are inserted synchronously, so their ids are unique across processes sharing
the database; cancellations are recorded synchronously, before anything is stopped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from xmanager.xm.status import Status
from xmanager.xm_local.store import sql
from xmanager.xm_local.store.driver import Connection, StoreError, connect
from xmanager.xm_local.store.metrics import MetricsFile, collect
from xmanager.xm_local.store.rows import (
    EXPERIMENT_COLUMNS,
    JOB_COLUMNS,
    JSON_COLUMNS,
    SWEEP_COLUMNS,
    UNIT_COLUMNS,
    Chunk,
    ExperimentRow,
    JobRow,
    UnitRow,
    chunk_of,
    decode_all,
    encode,
    rows_of,
)
from xmanager.xm_local.store.schema import migrate
from xmanager.xm_local.store.writer import BatchWriter

if TYPE_CHECKING:
    from xmanager.xm.core import PsetInfo

__all__ = [
    "Chunk", "ExperimentRow", "JobRow", "MetricsFile", "Store", "StoreError", "UnitRow", "add_pending_write",
    "wait_pending_writes",
]

_PENDING: list[Any] = []
#: Rows per block of a large read: small enough that a block's Python objects stay a few MB.
CHUNK_ROWS = 16_384
_MAX_IN_LIST = 500


def add_pending_write(wait: Any) -> None:
    """Registers a write this process started elsewhere (e.g. a recorder process); reads wait for it."""
    _PENDING.append(wait)


def wait_pending_writes() -> None:
    """Returns once every write registered with :func:`add_pending_write` has finished."""
    while _PENDING:
        _PENDING.pop(0)()


class Store:
    """One database, opened and migrated to the current schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Connection = connect(url)
        self._lock = threading.RLock()
        try:
            migrate(self._conn)
        except StoreError:
            self._conn.close()
            raise
        except Exception as error:
            self._conn.close()
            raise StoreError(f"cannot prepare database {url!r}: {error}") from error
        self.writer = BatchWriter(url)

    def flush(self) -> None:
        """Returns once every queued write is committed; raises the writer's error, if any."""
        self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
        self._conn.close()

    def _query(self, statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.query(statement, params)

    # ---- experiments -------------------------------------------------------------------------
    def create_experiment(
        self,
        title: str,
        tags: Sequence[str],
        notes: str,
        creator: Optional[str],
        launch_script: Optional[str],
        launch_argv: Sequence[str],
        *,
        first_id: Optional[int] = None,
    ) -> int:
        """Inserts an experiment; its id is ``first_id`` (default: the time in milliseconds) or the next free one."""
        experiment_id = int(time.time() * 1000) if first_id is None else first_id
        for _ in range(1000):
            params = {
                "experiment_id": experiment_id, "title": title, "tags": encode(list(tags)), "notes": notes,
                "creator": creator, "created_at": time.time(), "launch_script": launch_script,
                "launch_argv": encode(list(launch_argv)), "cancelled_at": None, "archived_at": None,
            }
            try:
                with self._lock, self._conn.transaction():
                    self._conn.execute(sql.INSERT_EXPERIMENT, params)
                    _replace_tags(self._conn, experiment_id, tags)
                return experiment_id
            except self._conn.is_integrity_error:
                experiment_id += 1
        raise StoreError("could not find a free experiment id")

    def update_experiment(self, experiment_id: int, title: str, tags: Sequence[str], notes: str) -> None:
        """Queues new metadata for an experiment (through the writer, in order)."""

        def apply(conn: Connection) -> None:
            params = {"experiment_id": experiment_id, "title": title, "tags": encode(list(tags)), "notes": notes}
            conn.execute(sql.UPDATE_EXPERIMENT, params)
            _replace_tags(conn, experiment_id, tags)

        self.writer.call(apply)

    def edit_tags(
        self, experiment_id: int, add: Sequence[str] = (), remove: Sequence[str] = (),
        replace: Optional[Sequence[str]] = None,
    ) -> tuple[str, ...]:
        """Sets the experiment's tags (``replace``), or adds and removes some, now and in one transaction
        (two processes tagging at once lose neither change). Returns the tags it then has."""
        params: dict[str, Any] = {"experiment_id": experiment_id}
        with self._lock, self._conn.transaction():
            rows = self._conn.query(sql.SELECT_TAGS, params)
            if not rows:
                raise StoreError(f"no experiment {experiment_id} in {self.url}")
            tags = list(replace) if replace is not None else list(json.loads(rows[0][0] or "[]"))
            tags = [tag for tag in dict.fromkeys([*tags, *add]) if tag not in set(remove)]
            self._conn.execute(sql.SET_TAGS, {**params, "tags": encode(tags)})
            _replace_tags(self._conn, experiment_id, tags)
        return tuple(tags)

    def set_notes(self, experiment_id: int, notes: str) -> None:
        """Replaces the experiment's notes, now."""
        with self._lock, self._conn.transaction():
            self._conn.execute(sql.SET_NOTES, {"experiment_id": experiment_id, "notes": notes})

    def set_archived(self, experiment_id: int, at: Optional[float]) -> None:
        """Archives the experiment (``at``: the time) or, with None, brings it back; now."""
        with self._lock, self._conn.transaction():
            self._conn.execute(sql.SET_ARCHIVED, {"experiment_id": experiment_id, "at": at})

    def delete_experiment(self, experiment_id: int) -> list[int]:
        """Deletes every row of the experiment (units, jobs, history, metrics, tags) in one transaction,
        unless some of its units are unfinished: then nothing is deleted and their ids are returned."""
        self.writer.flush()
        params = {"experiment_id": experiment_id}
        with self._lock, self._conn.transaction():
            unfinished = sorted(row[0] for row in self._conn.query(sql.UNFINISHED_UNITS, params))
            if unfinished:
                return unfinished
            for statement in sql.DELETE_EXPERIMENT:
                self._conn.execute(statement, params)
        return []

    def list_experiments(
        self,
        *,
        title: Optional[str] = None,
        tag: Optional[str] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
        limit: Optional[int] = None,
        status: Optional[str] = None,
        archived: Optional[bool] = None,
    ) -> list[ExperimentRow]:
        """Experiments newest first, with unit counts per status: two queries in all. ``status``: only those
        with a unit in that status; ``archived``: only archived ones (True) or only the others (False)."""
        where, params = sql.experiment_filter(title=title, tag=tag, status=status, since=since, until=until,
                                              archived=archived)
        selection = (" WHERE " + " AND ".join(where)) if where else ""
        selection += " ORDER BY e.created_at DESC, e.experiment_id DESC"
        if limit is not None:
            selection += f" LIMIT {int(limit)}"
        counts_sql = sql.COUNT_UNITS
        if where or limit is not None:  # Count only the selected experiments' units.
            counts_sql += f" WHERE experiment_id IN (SELECT e.experiment_id FROM experiments e{selection})"
        with self._lock:
            rows = self._conn.query(sql.SELECT_EXPERIMENTS + selection, params)
            counts = self._conn.query(counts_sql + " GROUP BY experiment_id, status", params)
        by_experiment: dict[int, dict[str, int]] = {}
        for experiment_id, status, count in counts:
            by_experiment.setdefault(experiment_id, {})[status] = count
        return _experiment_rows(rows, by_experiment)

    def get_experiment(self, experiment_id: int) -> Optional[ExperimentRow]:
        params = {"experiment_id": experiment_id}
        with self._lock:
            rows = self._conn.query(sql.SELECT_EXPERIMENTS + " WHERE e.experiment_id = :experiment_id", params)
            if not rows:
                return None
            counts = self._conn.query(sql.COUNT_UNITS + " WHERE experiment_id = :experiment_id GROUP BY "
                                      "experiment_id, status", params)
        return _experiment_rows(rows, {experiment_id: {status: count for _, status, count in counts}})[0]

    # ---- writing units and jobs (queued, in order) ---------------------------------------------
    def create_unit(
        self, experiment_id: int, work_unit_id: int, args: Mapping[str, Any], created_at: float,
        pset: Optional[PsetInfo] = None, launcher: Optional[str] = None,
    ) -> None:
        """A new pending unit with its args, the process that launches it (``host pid start-ticks``)
        and, when it is a pset of a sweep, the pset's columns."""
        params = {
            "experiment_id": experiment_id, "work_unit_id": work_unit_id, "args": encode(args),
            "status": Status.PENDING.value, "created_at": created_at, "launcher": launcher,
        }
        for name in SWEEP_COLUMNS:
            params[name] = None if pset is None else getattr(pset, name)
        self.writer.put(sql.INSERT_UNIT, params)

    def create_job(
        self, experiment_id: int, work_unit_id: int, job_name: str, executor: str,
        executable: Mapping[str, Any], args: Sequence[str], env: Mapping[str, str],
    ) -> None:
        """A new pending job of a unit: its executor's name, what it runs, its argv tail and env."""
        self.writer.put(sql.INSERT_JOB, {
            "experiment_id": experiment_id, "work_unit_id": work_unit_id, "job_name": job_name, "executor": executor,
            "executable": encode(executable), "args": encode(list(args)), "env": encode(env),
            "status": Status.PENDING.value,
        })

    def record_job_status(
        self, experiment_id: int, work_unit_id: int, job_name: str, status: Status, *, at: float,
        message: str = "", exit_code: Optional[int] = None, host: Optional[str] = None,
        handle: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """A job's new status (ignored by the database once the job's row is terminal), and its history row."""
        self.writer.put(sql.UPDATE_JOB, {
            "experiment_id": experiment_id, "work_unit_id": work_unit_id, "job_name": job_name,
            "status": status.value, "message": message, "exit_code": exit_code, "host": host,
            "handle": None if handle is None else encode(handle),
            "started_at": at if status is Status.RUNNING else None, "ended_at": at if status.is_terminal else None,
        })
        self.writer.put(sql.INSERT_EVENT, {
            "experiment_id": experiment_id, "work_unit_id": work_unit_id, "job_name": job_name,
            "status": status.value, "at": at, "message": message,
        })

    def record_unit_status(
        self, experiment_id: int, work_unit_id: int, status: Status, *, at: float,
        message: str = "", exit_code: Optional[int] = None, host: Optional[str] = None,
    ) -> None:
        """A unit's new status (ignored by the database once the unit's row is terminal)."""
        self.writer.put(sql.UPDATE_UNIT, {
            "experiment_id": experiment_id, "work_unit_id": work_unit_id, "status": status.value,
            "message": message, "exit_code": exit_code, "host": host,
            "started_at": at if status is Status.RUNNING else None, "ended_at": at if status.is_terminal else None,
        })

    def record_results(self, experiment_id: int, work_unit_id: int, results: Mapping[str, Any]) -> None:
        """A unit's results so far (all of them: each call replaces the last)."""
        self.writer.put(sql.SET_RESULTS, {
            "experiment_id": experiment_id, "work_unit_id": work_unit_id, "results": encode(results),
        })

    def record_handle(
        self, experiment_id: int, work_unit_id: int, job_name: str, handle: Mapping[str, Any],
        stdout_path: Optional[str], stderr_path: Optional[str],
    ) -> None:
        """Where a launched job can be found again (``Handle.to_json()``), and its log files."""
        self.writer.put(sql.SET_HANDLE, {
            "experiment_id": experiment_id, "work_unit_id": work_unit_id, "job_name": job_name,
            "handle": encode(handle), "stdout_path": stdout_path, "stderr_path": stderr_path,
        })

    def record_cancelled(
        self, experiment_id: int, work_unit_ids: Optional[Collection[int]], message: str, at: float
    ) -> list[int]:
        """Records the unfinished units among ``work_unit_ids`` (None: all) and their unfinished jobs as
        cancelled, now and in one transaction. Returns those units' ids.

        Done before the jobs are stopped, so that their launcher's report of the kill (a failure)
        cannot overwrite it: terminal statuses are never overwritten. Cancelling all of them (None)
        also records the experiment as cancelled: its launchers then start none of its units, not
        even those whose rows they have not written yet."""
        self.writer.flush()  # This process's own queued writes come first.
        params = {"experiment_id": experiment_id}
        with self._lock, self._conn.transaction():
            if work_unit_ids is None:
                self._conn.execute(sql.CANCEL_EXPERIMENT, {"experiment_id": experiment_id, "at": at})
            unfinished = [row[0] for row in self._conn.query(sql.UNFINISHED_UNITS, params)]
            if work_unit_ids is not None:
                wanted = set(work_unit_ids)
                unfinished = [unit_id for unit_id in unfinished if unit_id in wanted]
            rows = [{"experiment_id": experiment_id, "work_unit_id": unit_id, "message": message, "at": at}
                    for unit_id in unfinished]
            if rows:
                self._conn.executemany(sql.CANCEL_UNIT_JOBS, rows)
                self._conn.executemany(sql.CANCEL_UNIT, rows)
        return sorted(unfinished)

    def start_refusal(self, experiment_id: int, work_unit_id: int) -> Optional[str]:
        """Why the unit must not start (its experiment or the unit was cancelled), or None; one query."""
        rows = self._query(sql.START_CHECK, {"experiment_id": experiment_id, "work_unit_id": work_unit_id})
        if not rows:
            return None
        cancelled_at, status, message = rows[0]
        if status == Status.CANCELLED.value:
            return str(message or "cancelled")
        if cancelled_at is not None:
            return "cancelled before it started: its experiment was cancelled"
        return None

    def record_experiment_cancelled(self, experiment_id: int, at: float) -> None:
        """Records the experiment as cancelled, now: its launchers start none of its units from here on."""
        with self._lock, self._conn.transaction():
            self._conn.execute(sql.CANCEL_EXPERIMENT, {"experiment_id": experiment_id, "at": at})

    def reopen_experiment(self, experiment_id: int) -> None:
        """Clears an experiment's cancellation (units added to it later start again); now."""
        with self._lock, self._conn.transaction():
            self._conn.execute(sql.REOPEN_EXPERIMENT, {"experiment_id": experiment_id})

    def unfinished_launchers(self, experiment_ids: Collection[int]) -> dict[int, set[str]]:
        """The launchers (``host pid start-ticks``) of the unfinished units of ``experiment_ids``."""
        found: dict[int, set[str]] = {}
        for experiment_id in experiment_ids:
            rows = self._query(sql.UNFINISHED_LAUNCHERS, {"experiment_id": experiment_id})
            if rows:
                found[experiment_id] = {row[0] for row in rows}
        return found

    def insert_finished_units(self, experiment_id: int, columns: Mapping[str, Sequence[Any]]) -> None:
        """Inserts units that already ran (sweeps run in-process), in one transaction.

        ``columns`` maps ``work_units`` column names (:data:`~.rows.UNIT_COLUMNS`) to one value per
        unit; JSON columns (``args``, ``results``) as text; columns left out are NULL.
        """
        unknown = set(columns) - set(UNIT_COLUMNS)
        if unknown:
            raise ValueError(f"not work_units columns: {', '.join(sorted(unknown))}")
        given = [name for name in UNIT_COLUMNS if name in columns and name != "experiment_id"]
        if len({len(columns[name]) for name in given}) > 1:
            raise ValueError("insert_finished_units: columns of different lengths")
        absent = [name for name in UNIT_COLUMNS if name not in given and name != "experiment_id"]
        names, first, last = ("experiment_id", *given, *absent), (experiment_id,), (None,) * len(absent)
        rows = [dict(zip(names, first + values + last)) for values in zip(*(columns[name] for name in given))]
        with self._lock, self._conn.transaction():
            self._conn.executemany(sql.INSERT_FINISHED_UNIT, rows)

    # ---- reading units and jobs ------------------------------------------------------------------
    def unit_chunks(
        self, experiment_id: int, work_unit_ids: Optional[Collection[int]] = None, *,
        columns: Sequence[str] = UNIT_COLUMNS, size: Optional[int] = None,
    ) -> Iterator[Chunk]:
        """The experiment's units (those of ``work_unit_ids``; None: all) in id order, as blocks of
        ``columns`` (names of :data:`~.rows.UNIT_COLUMNS`; JSON columns as text)."""
        unknown = set(columns).difference(UNIT_COLUMNS)
        if unknown:
            raise ValueError(f"not work_units columns: {', '.join(sorted(unknown))}")
        names = tuple(dict.fromkeys(("work_unit_id", *columns)))
        # The range on work_unit_id makes every planner read the primary key, in id order, without a sort.
        statement = sql.select("work_units", names) + " WHERE experiment_id = :experiment_id AND work_unit_id >= 0"
        params: dict[str, Any] = {"experiment_id": experiment_id}
        wanted: Optional[set[int]] = None
        if work_unit_ids is not None:
            if len(work_unit_ids) <= _MAX_IN_LIST:
                placeholders = []
                for index, unit_id in enumerate(sorted(work_unit_ids)):
                    placeholders.append(f":w{index}")
                    params[f"w{index}"] = unit_id
                statement += f" AND work_unit_id IN ({', '.join(placeholders) or 'NULL'})"
            else:
                wanted = set(work_unit_ids)
        with self._lock:
            for rows in self._conn.stream(statement + " ORDER BY work_unit_id", params, size or CHUNK_ROWS):
                if wanted is not None:
                    rows = [row for row, unit_id in zip(rows, chunk_of(names, rows)["work_unit_id"])
                            if unit_id in wanted]
                yield chunk_of(names, rows)

    def units(self, experiment_id: int, work_unit_id: Optional[int] = None) -> list[UnitRow]:
        """The experiment's units (or one of them), results included."""
        ids = None if work_unit_id is None else (work_unit_id,)
        return [row for chunk in self.unit_chunks(experiment_id, ids) for row in rows_of(UnitRow, chunk)]

    def units_with_status(self, experiment_id: int, status: Status) -> dict[int, Optional[str]]:
        """The experiment's units whose stored status is ``status``: id -> stored message."""
        params = {"experiment_id": experiment_id, "status": status.value}
        return {unit_id: message for unit_id, message in self._query(sql.UNITS_WITH_STATUS, params)}

    def next_work_unit_id(self, experiment_id: int) -> int:
        rows = self._query(sql.NEXT_UNIT_ID, {"experiment_id": experiment_id})
        return int(rows[0][0] or 0) + 1

    def sweep_counters(self, experiment_id: int) -> tuple[int, int]:
        """The next ``run_seq`` and ``pset_seq`` of an experiment's sweeps."""
        run_seq, pset_seq = self._query(sql.SWEEP_COUNTERS, {"experiment_id": experiment_id})[0]
        return (-1 if run_seq is None else int(run_seq)) + 1, (-1 if pset_seq is None else int(pset_seq)) + 1

    def completed_pset_hashes(self, experiment_id: int) -> set[str]:
        """Hashes of the experiment's psets that completed (what a resumed sweep skips)."""
        return {row[0] for row in self._query(sql.COMPLETED_PSET_HASHES, {"experiment_id": experiment_id})}

    def pset_ids(self, experiment_id: int) -> set[str]:
        return {row[0] for row in self._query(sql.PSET_IDS, {"experiment_id": experiment_id})}

    def jobs(self, experiment_id: int, work_unit_id: Optional[int] = None) -> list[JobRow]:
        """The experiment's jobs (or one unit's), by unit and name."""
        statement, params = sql.SELECT_JOBS, {"experiment_id": experiment_id}
        if work_unit_id is not None:
            statement += " AND work_unit_id = :work_unit_id"
            params["work_unit_id"] = work_unit_id
        rows = self._query(statement + " ORDER BY work_unit_id, job_name", params)
        return rows_of(JobRow, chunk_of(JOB_COLUMNS, rows))

    # ---- metrics over time -------------------------------------------------------------------------
    def metric_chunks(self, experiment_id: int, work_unit_id: Optional[int] = None) -> Iterator[Chunk]:
        """The experiment's metrics points (or one unit's) by unit, name and step, as blocks of
        :data:`~.sql.METRIC_COLUMNS` (``at``: wall time in seconds since the epoch; ``value``: None for NaN)."""
        statement, params = sql.SELECT_METRICS, {"experiment_id": experiment_id}
        if work_unit_id is not None:
            statement += " AND work_unit_id = :work_unit_id"
            params["work_unit_id"] = work_unit_id
        with self._lock:
            for rows in self._conn.stream(statement + sql.METRICS_ORDER, params, CHUNK_ROWS):
                yield chunk_of(sql.METRIC_COLUMNS, rows)

    def last_metrics(self, experiment_id: int) -> Chunk:
        """Each unit's last value (by step) of each of its metrics, as columns ``work_unit_id``, ``name``,
        ``value`` (None for NaN), in no particular order."""
        rows = self._query(sql.SELECT_LAST_METRICS, {"experiment_id": experiment_id})
        return chunk_of(("work_unit_id", "name", "value"), rows)

    def collect_metrics(self, experiment_id: int, files: Sequence[MetricsFile]) -> int:
        """Ingests the new whole lines of running jobs' metrics files now; returns the points added.

        Safe to race with other processes doing the same: each line is ingested once."""
        if not files:
            return 0
        with self._lock:
            return collect(self._conn, experiment_id, files, in_transaction=False)

    def queue_metrics(self, experiment_id: int, files: Sequence[MetricsFile]) -> None:
        """Ingests the files' new lines through the writer, in order with the writes queued before (a unit's
        end: its last points are committed with its final status)."""
        def apply(conn: Connection) -> None:
            collect(conn, experiment_id, files, in_transaction=True)

        if files:
            self.writer.call(apply)


def _replace_tags(conn: Connection, experiment_id: int, tags: Sequence[str]) -> None:
    conn.execute(sql.DELETE_TAGS, {"experiment_id": experiment_id})
    conn.executemany(sql.INSERT_TAG, [{"experiment_id": experiment_id, "tag": tag} for tag in dict.fromkeys(tags)])


def _experiment_rows(rows: list[tuple[Any, ...]], counts: Mapping[int, dict[str, int]]) -> list[ExperimentRow]:
    """Experiment rows with their units' counts; JSON columns decoded one column at a time."""
    chunk = chunk_of(EXPERIMENT_COLUMNS, rows)
    columns = [
        [tuple(value or ()) for value in decode_all(chunk[name])] if name in JSON_COLUMNS else chunk[name]
        for name in EXPERIMENT_COLUMNS
    ]
    result = []
    for values in zip(*columns):
        fields = dict(zip(EXPERIMENT_COLUMNS, values))
        by_status = counts.get(fields["experiment_id"], {})
        result.append(ExperimentRow(**fields, work_unit_count=sum(by_status.values()), status_counts=by_status))
    return result
