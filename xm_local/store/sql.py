"""Every statement the store runs (migrations aside), built from the row classes' column lists.

Portable SQL with ``:name`` parameters; only :class:`~xmanager.xm_local.store.Store` and its
writer use these. Updates of a status never overwrite a terminal one: the first process to
record how a job or unit ended wins (``xmanager cancel`` records before it kills).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from xmanager.xm.status import TERMINAL_VALUES
from xmanager.xm_local.store.rows import (
    EVENT_COLUMNS,
    EXPERIMENT_COLUMNS,
    JOB_COLUMNS,
    SWEEP_COLUMNS,
    TAG_COLUMNS,
    UNIT_COLUMNS,
)


def insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + name for name in columns)})"


def select(table: str, columns: Sequence[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"


NOT_TERMINAL = f"status NOT IN ({', '.join(repr(value) for value in TERMINAL_VALUES)})"
_UNIT_KEY = "experiment_id = :experiment_id AND work_unit_id = :work_unit_id"
_JOB_KEY = f"{_UNIT_KEY} AND job_name = :job_name"

# ---- experiments -------------------------------------------------------------------------------
INSERT_EXPERIMENT = insert("experiments", EXPERIMENT_COLUMNS)
UPDATE_EXPERIMENT = (
    "UPDATE experiments SET title = :title, tags = :tags, notes = :notes WHERE experiment_id = :experiment_id"
)
DELETE_TAGS = "DELETE FROM experiment_tags WHERE experiment_id = :experiment_id"
INSERT_TAG = insert("experiment_tags", TAG_COLUMNS)
SELECT_EXPERIMENTS = select("experiments e", ["e." + name for name in EXPERIMENT_COLUMNS])
SELECT_TAGS = "SELECT tags FROM experiments WHERE experiment_id = :experiment_id"
SET_TAGS = "UPDATE experiments SET tags = :tags WHERE experiment_id = :experiment_id"
SET_NOTES = "UPDATE experiments SET notes = :notes WHERE experiment_id = :experiment_id"
SET_ARCHIVED = "UPDATE experiments SET archived_at = :at WHERE experiment_id = :experiment_id"
HAS_STATUS = (
    "EXISTS (SELECT 1 FROM work_units s WHERE s.experiment_id = e.experiment_id AND s.status = :status)"
)
#: Deleting an experiment: its rows in every table, children first.
DELETE_EXPERIMENT = tuple(
    f"DELETE FROM {table} WHERE experiment_id = :experiment_id"
    for table in ("status_events", "metrics", "metric_files", "metric_last", "jobs", "work_units", "experiment_tags",
                  "experiments")
)
HAS_TAG = "EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id AND t.tag = :tag)"
COUNT_UNITS = "SELECT experiment_id, status, COUNT(*) FROM work_units"


def like_pattern(text: str) -> str:
    """A LIKE pattern (with ``ESCAPE '\\'``) matching ``text`` anywhere, lower-cased, its ``%`` and ``_`` literal."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def experiment_filter(
    *,
    title: Optional[str] = None,
    tag: Optional[str] = None,
    status: Optional[str] = None,
    since: Optional[float] = None,
    until: Optional[float] = None,
    archived: Optional[bool] = None,
) -> tuple[list[str], dict[str, Any]]:
    """The conditions on ``experiments e`` (and their parameters) that list_experiments and the dashboard share.

    ``title``: a substring, case-insensitive (``*`` a wildcard); ``tag`` exact; ``status``: a unit in that status;
    ``since``/``until``: creation time bounds (epoch seconds); ``archived``: only archived (True), only the
    others (False), or both (None).
    """
    where: list[str] = []
    params: dict[str, Any] = {}
    if archived is not None:
        where.append("e.archived_at IS NOT NULL" if archived else "e.archived_at IS NULL")
    if title:
        where.append("LOWER(e.title) LIKE :title ESCAPE '\\'")
        params["title"] = title.lower().replace("*", "%") if "*" in title else like_pattern(title)
    if tag:
        where.append(HAS_TAG)
        params["tag"] = tag
    if status:
        where.append(HAS_STATUS)
        params["status"] = status
    if since is not None:
        where.append("e.created_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("e.created_at < :until")
        params["until"] = until
    return where, params

# ---- units -------------------------------------------------------------------------------------
#: A unit as ``add()`` creates it: pending, with its args, its launcher and (in a sweep) its pset.
INSERT_UNIT = insert(
    "work_units", ("experiment_id", "work_unit_id", "args", "status", "created_at", "launcher", *SWEEP_COLUMNS)
)
#: A unit that already ran (``xm_local.sweep.run``): every column.
INSERT_FINISHED_UNIT = insert("work_units", UNIT_COLUMNS)
UPDATE_UNIT = (
    "UPDATE work_units SET status = :status, message = :message, exit_code = COALESCE(:exit_code, exit_code), "
    "host = COALESCE(host, :host), started_at = COALESCE(started_at, :started_at), "
    f"ended_at = COALESCE(ended_at, :ended_at) WHERE {_UNIT_KEY} AND {NOT_TERMINAL}"
)
SET_RESULTS = f"UPDATE work_units SET results = :results WHERE {_UNIT_KEY}"
NEXT_UNIT_ID = "SELECT MAX(work_unit_id) FROM work_units WHERE experiment_id = :experiment_id"
SWEEP_COUNTERS = "SELECT MAX(run_seq), MAX(pset_seq) FROM work_units WHERE experiment_id = :experiment_id"
COMPLETED_PSET_HASHES = (
    "SELECT DISTINCT pset_hash FROM work_units WHERE experiment_id = :experiment_id AND pset_hash IS NOT NULL "
    "AND status = 'completed'"
)
PSET_IDS = "SELECT pset_id FROM work_units WHERE experiment_id = :experiment_id AND pset_id IS NOT NULL"
UNITS_WITH_STATUS = "SELECT work_unit_id, message FROM work_units WHERE experiment_id = :experiment_id AND status = :status"
UNFINISHED_UNITS = f"SELECT work_unit_id FROM work_units WHERE experiment_id = :experiment_id AND {NOT_TERMINAL}"
#: The processes that launched the unfinished units of some experiments (reconciling dead launchers).
UNFINISHED_LAUNCHERS = (
    "SELECT DISTINCT launcher FROM work_units WHERE experiment_id = :experiment_id AND "
    f"{NOT_TERMINAL} AND launcher IS NOT NULL"
)

# ---- jobs --------------------------------------------------------------------------------------
INSERT_JOB = insert("jobs", ("experiment_id", "work_unit_id", "job_name", "executor", "executable", "args", "env", "status"))
UPDATE_JOB = (
    "UPDATE jobs SET status = :status, message = :message, exit_code = COALESCE(:exit_code, exit_code), "
    "host = COALESCE(:host, host), handle = COALESCE(:handle, handle), "
    "started_at = COALESCE(started_at, :started_at), ended_at = COALESCE(ended_at, :ended_at) "
    f"WHERE {_JOB_KEY} AND {NOT_TERMINAL}"
)
SET_HANDLE = (
    "UPDATE jobs SET handle = :handle, stdout_path = COALESCE(:stdout_path, stdout_path), "
    f"stderr_path = COALESCE(:stderr_path, stderr_path) WHERE {_JOB_KEY}"
)
INSERT_EVENT = insert("status_events", EVENT_COLUMNS)
SELECT_JOBS = select("jobs", JOB_COLUMNS) + " WHERE experiment_id = :experiment_id"

# ---- cancelling from any process ---------------------------------------------------------------
CANCEL_EXPERIMENT = (
    "UPDATE experiments SET cancelled_at = :at WHERE experiment_id = :experiment_id AND cancelled_at IS NULL"
)
REOPEN_EXPERIMENT = "UPDATE experiments SET cancelled_at = NULL WHERE experiment_id = :experiment_id"
#: Whether a unit may start: its experiment's cancellation, and its own status if its row is written.
START_CHECK = (
    "SELECT e.cancelled_at, u.status, u.message FROM experiments e LEFT JOIN work_units u "
    "ON u.experiment_id = e.experiment_id AND u.work_unit_id = :work_unit_id "
    "WHERE e.experiment_id = :experiment_id"
)
CANCEL_UNIT_JOBS = (
    "UPDATE jobs SET status = 'cancelled', message = :message, ended_at = COALESCE(ended_at, :at) "
    f"WHERE {_UNIT_KEY} AND {NOT_TERMINAL}"
)
CANCEL_UNIT = (
    "UPDATE work_units SET status = 'cancelled', message = :message, ended_at = COALESCE(ended_at, :at) "
    f"WHERE {_UNIT_KEY} AND {NOT_TERMINAL}"
)

#: The order in which the writer runs the statement groups of one batch: rows are inserted
#: before they are updated, and a job's status before the unit's derived from it.
WRITE_ORDER = (INSERT_UNIT, INSERT_JOB, SET_HANDLE, UPDATE_JOB, UPDATE_UNIT, INSERT_EVENT, SET_RESULTS)

# ---- metrics over time ---------------------------------------------------------------------------
#: A point as ``experiment.metrics()`` reads it (``at`` is shown as ``time``).
METRIC_COLUMNS = ("work_unit_id", "step", "at", "name", "value")
INSERT_METRIC = insert("metrics", ("experiment_id", "work_unit_id", "job_name", "name", "step", "at", "value"))
SELECT_METRICS = f"{select('metrics', METRIC_COLUMNS)} WHERE experiment_id = :experiment_id"
METRICS_ORDER = " ORDER BY work_unit_id, name, step, at"
#: Each unit's last value of each metric (by step; the later point of a step reported twice).
UPSERT_LAST_METRIC = (
    insert("metric_last", ("experiment_id", "work_unit_id", "name", "step", "value"))
    + " ON CONFLICT (experiment_id, work_unit_id, name) DO UPDATE SET step = excluded.step, value = excluded.value"
    " WHERE excluded.step >= metric_last.step"
)
SELECT_LAST_METRICS = "SELECT work_unit_id, name, value FROM metric_last WHERE experiment_id = :experiment_id"
#: How far a job's metrics file was read; claiming the next lines is a conditional write, so of two
#: readers racing for the same lines one changes a row and ingests them, the other changes none.
METRIC_OFFSET = f"SELECT byte_offset FROM metric_files WHERE {_JOB_KEY}"
CLAIM_FIRST_LINES = (
    insert("metric_files", ("experiment_id", "work_unit_id", "job_name", "byte_offset")) + " ON CONFLICT DO NOTHING"
)
CLAIM_LINES = f"UPDATE metric_files SET byte_offset = :byte_offset WHERE {_JOB_KEY} AND byte_offset = :old_offset"
