"""The metadata store: every experiment, unit, job, status change and result.

Reads are synchronous queries; writes from a running launch go through a
:class:`~.writer.BatchWriter`. Experiments are inserted synchronously, so their ids are
unique across processes sharing the database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any, Optional

import attrs
from xmanager.xm_local.store.driver import Connection, StoreError, connect
from xmanager.xm_local.store.schema import migrate
from xmanager.xm_local.store.writer import BatchWriter

__all__ = ["ExperimentRow", "JobRow", "Store", "StoreError", "UnitRow", "add_pending_write", "wait_pending_writes"]

_PENDING: list[Any] = []


def add_pending_write(wait: Any) -> None:
    """Registers a write this process started elsewhere (e.g. a recorder process); reads wait for it."""
    _PENDING.append(wait)


def wait_pending_writes() -> None:
    """Returns once every write registered with :func:`add_pending_write` has finished."""
    while _PENDING:
        _PENDING.pop(0)()


@attrs.frozen
class ExperimentRow:
    experiment_id: int
    title: str
    tags: tuple[str, ...]
    notes: str
    creator: Optional[str]
    created_at: float
    launch_script: Optional[str]
    launch_argv: tuple[str, ...]
    work_unit_count: int = 0
    status_counts: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class UnitRow:
    experiment_id: int
    work_unit_id: int
    args: dict[str, Any]
    status: str
    message: Optional[str]
    exit_code: Optional[int]
    host: Optional[str]
    created_at: float
    started_at: Optional[float]
    ended_at: Optional[float]
    results: Optional[dict[str, Any]]
    pset_hash: Optional[str] = None
    pset_id: Optional[str] = None
    run_id: Optional[str] = None
    run_seq: Optional[int] = None
    pset_seq: Optional[int] = None
    calc_dir: Optional[str] = None


@attrs.frozen
class JobRow:
    experiment_id: int
    work_unit_id: int
    job_name: str
    executor: str
    executable: dict[str, Any]
    args: list[str]
    env: dict[str, str]
    handle: Optional[dict[str, Any]]
    status: str
    message: Optional[str]
    exit_code: Optional[int]
    host: Optional[str]
    stdout_path: Optional[str]
    stderr_path: Optional[str]
    started_at: Optional[float]
    ended_at: Optional[float]


_EXPERIMENT_COLUMNS = "experiment_id, title, tags, notes, creator, created_at, launch_script, launch_argv"
_UNIT_QUERY = (
    "SELECT u.experiment_id, u.work_unit_id, u.args, u.status, u.message, u.exit_code, u.host, "
    "u.created_at, u.started_at, u.ended_at, u.results, u.pset_hash, u.pset_id, u.run_id, u.run_seq, u.pset_seq, "
    "u.calc_dir FROM work_units u WHERE u.experiment_id = :experiment_id"
)
_JOB_COLUMNS = (
    "experiment_id, work_unit_id, job_name, executor, executable, args, env, handle, status, message, "
    "exit_code, host, stdout_path, stderr_path, started_at, ended_at"
)


_FINISHED_UNIT_COLUMNS = (
    "experiment_id", "work_unit_id", "args", "status", "message", "host", "created_at", "started_at", "ended_at",
    "results", "pset_hash", "pset_id", "run_id", "run_seq", "pset_seq", "calc_dir",
)
_INSERT_FINISHED_UNIT = (
    f"INSERT INTO work_units ({', '.join(_FINISHED_UNIT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + column for column in _FINISHED_UNIT_COLUMNS)})"
)


def _loads(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


class Store:
    """One database, opened and migrated to the current schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Connection = connect(url)
        self._lock = threading.Lock()
        try:
            migrate(self._conn)
        except StoreError:
            self._conn.close()
            raise
        except Exception as error:
            self._conn.close()
            raise StoreError(f"cannot prepare database {url!r}: {error}") from error
        self.writer = BatchWriter(url)

    def close(self) -> None:
        self.writer.flush()
        self._conn.close()

    # ---- experiments -----------------------------------------------------------------
    def insert_experiment(
        self,
        experiment_id: int,
        title: str,
        tags: Sequence[str],
        notes: str,
        creator: Optional[str],
        launch_script: Optional[str],
        launch_argv: Sequence[str],
    ) -> int:
        """Inserts an experiment; on an id clash takes the next free id. Returns the id."""
        for _ in range(1000):
            params = {
                "experiment_id": experiment_id, "title": title, "tags": json.dumps(list(tags)),
                "notes": notes, "creator": creator, "created_at": time.time(),
                "launch_script": launch_script, "launch_argv": json.dumps(list(launch_argv)),
            }
            try:
                with self._lock, self._conn.transaction():
                    self._conn.execute(
                        f"INSERT INTO experiments ({_EXPERIMENT_COLUMNS}) VALUES (:experiment_id, :title, :tags, "
                        ":notes, :creator, :created_at, :launch_script, :launch_argv)",
                        params,
                    )
                    self._replace_tags(self._conn, experiment_id, tags)
                return experiment_id
            except self._conn.is_integrity_error:
                experiment_id += 1
        raise StoreError("could not find a free experiment id")

    @staticmethod
    def _replace_tags(conn: Connection, experiment_id: int, tags: Sequence[str]) -> None:
        conn.execute("DELETE FROM experiment_tags WHERE experiment_id = :e", {"e": experiment_id})
        conn.executemany(
            "INSERT INTO experiment_tags (experiment_id, tag) VALUES (:e, :tag)",
            [{"e": experiment_id, "tag": tag} for tag in dict.fromkeys(tags)],
        )

    def update_experiment(self, experiment_id: int, title: str, tags: Sequence[str], notes: str) -> None:
        """Queues new metadata for an experiment (through the writer, in order)."""

        def apply(conn: Connection) -> None:
            conn.execute(
                "UPDATE experiments SET title = :title, tags = :tags, notes = :notes WHERE experiment_id = :e",
                {"title": title, "tags": json.dumps(list(tags)), "notes": notes, "e": experiment_id},
            )
            self._replace_tags(conn, experiment_id, tags)

        self.writer.call(apply)

    def list_experiments(
        self,
        *,
        title: Optional[str] = None,
        tag: Optional[str] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
        limit: Optional[int] = None,
    ) -> list[ExperimentRow]:
        """Experiments newest first, with unit counts per status: two queries in all."""
        where, params = [], {}
        if title is not None:
            where.append("e.title LIKE :title")
            params["title"] = title.replace("*", "%") if "*" in title else f"%{title}%"
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id AND t.tag = :tag)")
            params["tag"] = tag
        if since is not None:
            where.append("e.created_at >= :since")
            params["since"] = since
        if until is not None:
            where.append("e.created_at < :until")
            params["until"] = until
        selection = " FROM experiments e"
        if where:
            selection += " WHERE " + " AND ".join(where)
        selection += " ORDER BY e.created_at DESC, e.experiment_id DESC"
        if limit is not None:
            selection += f" LIMIT {int(limit)}"
        columns = ", ".join("e." + c for c in _EXPERIMENT_COLUMNS.split(", "))
        counts_sql = "SELECT experiment_id, status, COUNT(*) FROM work_units"
        if where or limit is not None:  # Count only the selected experiments' units.
            counts_sql += f" WHERE experiment_id IN (SELECT e.experiment_id{selection})"
        with self._lock:
            rows = self._conn.query(f"SELECT {columns}{selection}", params)
            counts = self._conn.query(counts_sql + " GROUP BY experiment_id, status", params)
        by_experiment: dict[int, dict[str, int]] = {}
        for experiment_id, status, count in counts:
            by_experiment.setdefault(experiment_id, {})[status] = count
        return [self._experiment(row, by_experiment.get(row[0], {})) for row in rows]

    @staticmethod
    def _experiment(row: tuple[Any, ...], counts: dict[str, int]) -> ExperimentRow:
        return ExperimentRow(
            experiment_id=row[0], title=row[1], tags=tuple(json.loads(row[2])), notes=row[3],
            creator=row[4], created_at=row[5], launch_script=row[6],
            launch_argv=tuple(json.loads(row[7] or "[]")),
            work_unit_count=sum(counts.values()), status_counts=counts,
        )

    def get_experiment(self, experiment_id: int) -> Optional[ExperimentRow]:
        with self._lock:
            rows = self._conn.query(
                f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments WHERE experiment_id = :e", {"e": experiment_id}
            )
            if not rows:
                return None
            counts = self._conn.query(
                "SELECT status, COUNT(*) FROM work_units WHERE experiment_id = :e GROUP BY status",
                {"e": experiment_id},
            )
        return self._experiment(rows[0], dict(counts))

    # ---- units and jobs ----------------------------------------------------------------
    def unit_tuples(self, experiment_id: int, work_unit_id: Optional[int] = None) -> list[tuple[Any, ...]]:
        """Raw unit rows (results included), for callers that build columns in bulk."""
        sql, params = _UNIT_QUERY, {"experiment_id": experiment_id}
        if work_unit_id is not None:
            sql += " AND u.work_unit_id = :w"
            params["w"] = work_unit_id
        with self._lock:
            return self._conn.query(sql + " ORDER BY u.work_unit_id", params)

    def units(self, experiment_id: int, work_unit_id: Optional[int] = None) -> list[UnitRow]:
        return [
            UnitRow(*row[:2], json.loads(row[2]), *row[3:10], _loads(row[10]), *row[11:17])
            for row in self.unit_tuples(experiment_id, work_unit_id)
        ]

    def next_work_unit_id(self, experiment_id: int) -> int:
        with self._lock:
            rows = self._conn.query(
                "SELECT MAX(work_unit_id) FROM work_units WHERE experiment_id = :e", {"e": experiment_id}
            )
        return int(rows[0][0] or 0) + 1

    def sweep_counters(self, experiment_id: int) -> tuple[int, int]:
        """The next ``run_seq`` and ``pset_seq`` of an experiment's sweeps."""
        with self._lock:
            rows = self._conn.query(
                "SELECT MAX(run_seq), MAX(pset_seq) FROM work_units WHERE experiment_id = :e", {"e": experiment_id}
            )
        run_seq, pset_seq = rows[0]
        return (-1 if run_seq is None else int(run_seq)) + 1, (-1 if pset_seq is None else int(pset_seq)) + 1

    def completed_pset_hashes(self, experiment_id: int) -> set[str]:
        """Hashes of the experiment's psets that completed (what a resumed sweep skips)."""
        with self._lock:
            rows = self._conn.query(
                "SELECT DISTINCT pset_hash FROM work_units WHERE experiment_id = :e AND pset_hash IS NOT NULL "
                "AND status = 'completed'",
                {"e": experiment_id},
            )
        return {row[0] for row in rows}

    def pset_ids(self, experiment_id: int) -> set[str]:
        with self._lock:
            rows = self._conn.query(
                "SELECT pset_id FROM work_units WHERE experiment_id = :e AND pset_id IS NOT NULL", {"e": experiment_id}
            )
        return {row[0] for row in rows}

    def insert_finished_units(self, rows: Sequence[dict[str, Any]]) -> None:
        """Inserts units that already ran (sweeps run in-process) with their results, in one transaction.

        Each row has the ``work_units`` columns, ``results`` being the results JSON or ``None``.
        """
        with self._lock, self._conn.transaction():
            self._conn.executemany(_INSERT_FINISHED_UNIT, rows)

    def jobs(self, experiment_id: int, work_unit_id: Optional[int] = None) -> list[JobRow]:
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE experiment_id = :e"
        params: dict[str, Any] = {"e": experiment_id}
        if work_unit_id is not None:
            sql += " AND work_unit_id = :w"
            params["w"] = work_unit_id
        with self._lock:
            rows = self._conn.query(sql + " ORDER BY work_unit_id, job_name", params)
        return [
            JobRow(
                *row[:4], json.loads(row[4]), json.loads(row[5]), json.loads(row[6]), _loads(row[7]), *row[8:]
            )
            for row in rows
        ]

    def status_events(self, experiment_id: int, work_unit_id: int) -> list[tuple[str, str, float, Optional[str]]]:
        with self._lock:
            return [
                tuple(row)  # type: ignore[misc]
                for row in self._conn.query(
                    "SELECT job_name, status, at, message FROM status_events WHERE experiment_id = :e "
                    "AND work_unit_id = :w ORDER BY at",
                    {"e": experiment_id, "w": work_unit_id},
                )
            ]
