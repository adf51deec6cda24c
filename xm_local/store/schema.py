"""The store's schema as numbered migrations, applied in order inside one transaction.

The version lives in ``xm_schema``. A database newer than this code is refused with a
message rather than misread. Types are portable: BIGINT, INTEGER, VARCHAR, TEXT and
DOUBLE PRECISION (seconds since the epoch, UTC) mean the same in SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable

from xmanager.xm_local.store.driver import Connection, StoreError

_V1 = [
    """CREATE TABLE experiments (
        experiment_id BIGINT PRIMARY KEY,
        title VARCHAR(255) NOT NULL,
        tags TEXT NOT NULL,
        notes TEXT NOT NULL,
        creator VARCHAR(255),
        created_at DOUBLE PRECISION NOT NULL,
        launch_script TEXT,
        launch_argv TEXT
    )""",
    "CREATE INDEX ix_experiments_created ON experiments (created_at)",
    """CREATE TABLE experiment_tags (
        experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
        tag VARCHAR(255) NOT NULL,
        PRIMARY KEY (experiment_id, tag)
    )""",
    "CREATE INDEX ix_experiment_tags_tag ON experiment_tags (tag)",
    """CREATE TABLE work_units (
        experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
        work_unit_id INTEGER NOT NULL,
        args TEXT NOT NULL,
        status VARCHAR(16) NOT NULL,
        message TEXT,
        exit_code INTEGER,
        host VARCHAR(255),
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        PRIMARY KEY (experiment_id, work_unit_id)
    )""",
    """CREATE TABLE jobs (
        experiment_id BIGINT NOT NULL,
        work_unit_id INTEGER NOT NULL,
        job_name VARCHAR(255) NOT NULL,
        executor VARCHAR(64) NOT NULL,
        executable TEXT NOT NULL,
        args TEXT NOT NULL,
        env TEXT NOT NULL,
        handle TEXT,
        status VARCHAR(16) NOT NULL,
        message TEXT,
        exit_code INTEGER,
        host VARCHAR(255),
        stdout_path TEXT,
        stderr_path TEXT,
        started_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        PRIMARY KEY (experiment_id, work_unit_id, job_name),
        FOREIGN KEY (experiment_id, work_unit_id) REFERENCES work_units (experiment_id, work_unit_id)
            ON DELETE CASCADE
    )""",
    """CREATE TABLE results (
        experiment_id BIGINT NOT NULL,
        work_unit_id INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (experiment_id, work_unit_id),
        FOREIGN KEY (experiment_id, work_unit_id) REFERENCES work_units (experiment_id, work_unit_id)
            ON DELETE CASCADE
    )""",
    """CREATE TABLE status_events (
        experiment_id BIGINT NOT NULL,
        work_unit_id INTEGER NOT NULL,
        job_name VARCHAR(255) NOT NULL,
        status VARCHAR(16) NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        message TEXT
    )""",
    "CREATE INDEX ix_status_events_unit ON status_events (experiment_id, work_unit_id)",
]


#: Sweeps: each unit may be one pset of a parameter study (psweep's book-keeping fields).
#: Results move into their unit's row (they are one-to-one): one insert per finished unit.
_V2 = [
    "ALTER TABLE work_units ADD COLUMN results TEXT",
    "UPDATE work_units SET results = (SELECT r.data FROM results r WHERE r.experiment_id = "
    "work_units.experiment_id AND r.work_unit_id = work_units.work_unit_id)",
    "DROP TABLE results",
    "ALTER TABLE work_units ADD COLUMN pset_hash VARCHAR(64)",
    "ALTER TABLE work_units ADD COLUMN pset_id VARCHAR(64)",
    "ALTER TABLE work_units ADD COLUMN run_id VARCHAR(64)",
    "ALTER TABLE work_units ADD COLUMN run_seq INTEGER",
    "ALTER TABLE work_units ADD COLUMN pset_seq INTEGER",
    "ALTER TABLE work_units ADD COLUMN calc_dir TEXT",
]


def _statements(statements: list[str]) -> Callable[[Connection], None]:
    def apply(conn: Connection) -> None:
        for sql in statements:
            conn.execute(sql)

    return apply


def _v3_results_in_units(conn: Connection) -> None:
    """Repairs stores made by a development build whose version 2 kept results in their own table."""
    if "results" in conn.columns("work_units"):
        return
    _statements(_V2[:3])(conn)  # Add the column, move the results into it, drop the old table.


#: Units counted per status without reading their rows (``list_experiments``, ``get_experiment``).
_V4 = ["CREATE INDEX ix_work_units_status ON work_units (experiment_id, status)"]

#: Cancellation is a state: an experiment's cancellation is recorded on its row, so its launchers
#: start none of its units (even those not yet written); each unit records the process that launched
#: it, so any process can tell whether a unfinished unit still has an owner.
_V5 = [
    "ALTER TABLE experiments ADD COLUMN cancelled_at DOUBLE PRECISION",
    "ALTER TABLE work_units ADD COLUMN launcher VARCHAR(255)",
]

#: Metrics over time (``xm.report(step=...)``): one row per point, read in the order of the index;
#: ``metric_last`` keeps each unit's last value of each metric; ``metric_files`` remembers how far each job's metrics file was read (its byte offset), so that
#: no line is ingested twice, whichever process reads it.
_V6 = [
    """CREATE TABLE metrics (
        experiment_id BIGINT NOT NULL,
        work_unit_id INTEGER NOT NULL,
        job_name VARCHAR(255) NOT NULL,
        name VARCHAR(255) NOT NULL,
        step BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        value DOUBLE PRECISION
    )""",
    "CREATE INDEX ix_metrics_unit ON metrics (experiment_id, work_unit_id, name, step)",
    """CREATE TABLE metric_files (
        experiment_id BIGINT NOT NULL,
        work_unit_id INTEGER NOT NULL,
        job_name VARCHAR(255) NOT NULL,
        byte_offset BIGINT NOT NULL,
        PRIMARY KEY (experiment_id, work_unit_id, job_name)
    )""",
    # Each unit's last point of each metric (by step), kept as points are ingested: to_dataframe's
    # metric columns read one row per unit and metric, however many points there are.
    """CREATE TABLE metric_last (
        experiment_id BIGINT NOT NULL,
        work_unit_id INTEGER NOT NULL,
        name VARCHAR(255) NOT NULL,
        step BIGINT NOT NULL,
        value DOUBLE PRECISION,
        PRIMARY KEY (experiment_id, work_unit_id, name)
    )""",
]

#: Archiving hides an experiment from ``xmanager list`` (and ``list_experiments(archived=False)``) without
#: deleting anything: the time it was archived, NULL while it is not.
_V7 = ["ALTER TABLE experiments ADD COLUMN archived_at DOUBLE PRECISION"]

#: Migration N brings the schema from version N-1 to N. Append; never edit a released one.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _statements(_V1), _statements(_V2), _v3_results_in_units, _statements(_V4), _statements(_V5),
    _statements(_V6), _statements(_V7),
]
LATEST = len(MIGRATIONS)


def _version(conn: Connection) -> int | None:
    if not conn.has_table("xm_schema"):
        return None
    rows = conn.query("SELECT version FROM xm_schema")
    return int(rows[0][0]) if rows else 0


def migrate(conn: Connection) -> int:
    """Brings the database to :data:`LATEST`; returns the version it found."""
    found = _version(conn)
    if found == LATEST:
        return found
    if found is not None and found > LATEST:
        raise StoreError(
            f"database {conn.url!r} has schema version {found}, newer than this xmanager "
            f"understands ({LATEST}); upgrade xmanager"
        )
    try:
        _migrate(conn)
    except Exception:
        # PostgreSQL does not serialize DDL the way SQLite's BEGIN IMMEDIATE does: a process that
        # migrated at the same time makes this one's CREATE TABLE fail once it has committed.
        if _version(conn) != LATEST:
            raise
    return found or 0


def _migrate(conn: Connection) -> None:
    with conn.transaction():
        current = _version(conn)  # Another process may have migrated meanwhile.
        if current is None:
            conn.execute("CREATE TABLE xm_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO xm_schema (version) VALUES (0)")
            current = 0
        for number in range(current, LATEST):
            MIGRATIONS[number](conn)
        conn.execute("UPDATE xm_schema SET version = :v", {"v": LATEST})
