"""The store: migrations, version checks, batched writes, both drivers."""

import threading

import pytest
from xmanager.xm.core import PsetInfo
from xmanager.xm.status import Status
from xmanager.xm_local.store import Store, StoreError, schema, sql
from xmanager.xm_local.store.driver import Connection, connect, sqlite_path
from xmanager.xm_local.store.rows import EXPERIMENT_COLUMNS, JOB_COLUMNS, UNIT_COLUMNS, JobRow, UnitRow

URLS = ["sqlite", "sqlite+pysqlite", "postgresql"]


@pytest.fixture(params=URLS)
def url(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    if request.param != "sqlite":
        pytest.importorskip("sqlalchemy")
    return f"{request.param}:///{tmp_path / 'store.sqlite3'}"


# The pset columns of schema version 2 without its results move: what a development build wrote.
_DEVELOPMENT_V2 = [sql_text for sql_text in schema._V2 if "pset" in sql_text or "run_" in sql_text or "calc_dir" in sql_text]


@pytest.mark.parametrize("version", [1, 2], ids=["first-release", "development-v2"])
def test_results_move_into_their_units(url, version):
    conn = connect(url)
    with conn.transaction():  # A store with results in their own table.
        conn.execute("CREATE TABLE xm_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO xm_schema (version) VALUES (:v)", {"v": version})
        schema.MIGRATIONS[0](conn)
        for statement in _DEVELOPMENT_V2 if version == 2 else []:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO experiments (experiment_id, title, tags, notes, created_at) VALUES (7, 't', '[]', '', 0)"
        )
        for unit in (1, 2):
            conn.execute(
                "INSERT INTO work_units (experiment_id, work_unit_id, args, status, created_at) "
                "VALUES (7, :u, '{}', 'completed', 0)",
                {"u": unit},
            )
        conn.execute("INSERT INTO results (experiment_id, work_unit_id, data) VALUES (7, 1, '{\"loss\": 0.5}')")
    conn.close()
    store = Store(url)
    assert [unit.results for unit in store.units(7)] == [{"loss": 0.5}, None]
    check = connect(url)
    assert not check.has_table("results")
    assert "results" in check.columns("work_units") and "pset_hash" in check.columns("work_units")
    assert check.query("SELECT version FROM xm_schema") == [(schema.LATEST,)]
    check.close()
    store.close()


def test_new_database_is_migrated_to_latest(url):
    store = Store(url)
    conn = connect(url)
    assert conn.query("SELECT version FROM xm_schema") == [(schema.LATEST,)]
    assert schema.migrate(conn) == schema.LATEST  # Idempotent.
    conn.close()
    store.close()


def test_newer_schema_is_refused(url):
    Store(url).close()
    conn = connect(url)
    with conn.transaction():
        conn.execute("UPDATE xm_schema SET version = :v", {"v": schema.LATEST + 1})
    conn.close()
    with pytest.raises(StoreError, match="newer than this xmanager"):
        Store(url)


def test_unopenable_sqlite_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open database"):
        Store(f"sqlite:///{blocker}/sub/db.sqlite3")


def test_sqlite_url_forms():
    assert sqlite_path("sqlite:////abs/db") == "/abs/db"
    assert sqlite_path("sqlite:///rel/db") == "rel/db"
    assert sqlite_path("sqlite://") == ":memory:"
    assert sqlite_path("postgresql://x/y") is None
    with pytest.raises(StoreError):
        sqlite_path("sqlite:db")


def test_experiment_ids_do_not_clash(url):
    store = Store(url)
    first = store.create_experiment("a", ["x"], "", None, None, [], first_id=1000)
    second = store.create_experiment("b", ["x", "x"], "", None, None, [], first_id=1000)
    assert (first, second) == (1000, 1001)
    assert [row.title for row in store.list_experiments(tag="x")] == ["b", "a"]
    store.close()


class CountingConnection(Connection):
    """Wraps a real connection and counts transactions."""

    def __init__(self, inner):
        self.inner, self.url, self.transactions = inner, inner.url, 0

    def execute(self, sql_text, params=None):
        self.inner.execute(sql_text, params)

    def executemany(self, sql_text, rows):
        self.inner.executemany(sql_text, rows)

    def query(self, sql_text, params=None):
        return self.inner.query(sql_text, params)

    def stream(self, sql_text, params, size):
        return self.inner.stream(sql_text, params, size)

    def transaction(self):
        self.transactions += 1
        return self.inner.transaction()

    def close(self):
        self.inner.close()

    def has_table(self, name):
        return self.inner.has_table(name)

    def columns(self, table):
        return self.inner.columns(table)

    @property
    def is_integrity_error(self):
        return self.inner.is_integrity_error


def test_writes_are_batched(url):
    store = Store(url)
    experiment_id = store.create_experiment("batch", [], "", None, None, [])
    counting = CountingConnection(connect(url))
    writer = store.writer
    writer._start()
    # Block the writer on a first call so that everything after it lands in one batch.
    gate = threading.Event()
    writer.call(lambda conn: gate.wait())
    for unit in range(1, 10_001):
        store.create_unit(experiment_id, unit, {"u": unit}, 0.0)
        store.record_unit_status(experiment_id, unit, Status.COMPLETED, at=2.0, exit_code=0, host="h")
    gate.set()
    store.flush()
    # Now measure a second burst through a counting connection.
    rows = [{"experiment_id": experiment_id, "work_unit_id": u, "results": "{}"} for u in range(1, 10_001)]
    writer._apply(counting, [(sql.SET_RESULTS, row) for row in rows])
    assert counting.transactions == 1
    units = store.units(experiment_id)
    assert len(units) == 10_000 and {u.status for u in units} == {"completed"}
    assert units[41].args == {"u": 42} and units[41].results == {}
    assert units[41].ended_at == 2.0 and units[41].started_at is None
    store.close()


def test_terminal_status_is_never_overwritten(url):
    store = Store(url)
    experiment_id = store.create_experiment("t", [], "", None, None, [])
    store.create_unit(experiment_id, 1, {}, 0.0)
    store.record_unit_status(experiment_id, 1, Status.CANCELLED, at=1.0)
    store.record_unit_status(experiment_id, 1, Status.FAILED, at=2.0, exit_code=-15)
    store.flush()
    [unit] = store.units(experiment_id)
    assert (unit.status, unit.exit_code, unit.ended_at) == ("cancelled", None, 1.0)
    store.close()


def test_writer_error_is_raised_at_flush(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store.create_unit(404, 1, {}, 0.0)
    with pytest.raises(Exception, match="FOREIGN KEY"):
        store.flush()


def test_column_lists_are_the_tables_columns(url):
    """The row classes are the one list of each table's columns: they match the migrated schema."""
    Store(url).close()
    conn = connect(url)
    assert conn.columns("experiments") == list(EXPERIMENT_COLUMNS)
    assert conn.columns("work_units") == list(UNIT_COLUMNS)
    assert conn.columns("jobs") == list(JOB_COLUMNS)
    conn.close()


def test_units_jobs_and_statuses_read_back_by_name(url):
    store = Store(url)
    experiment_id = store.create_experiment("typed", ["t"], "n", "me", "/l.py", ["l.py", "--x"])
    store.create_unit(experiment_id, 1, {"a": 1}, 10.0, PsetInfo("h1", "p1", "r1", 0, 0))
    store.create_unit(experiment_id, 2, {"a": 2}, 10.0)
    store.create_job(experiment_id, 1, "train", "local", {"type": "Binary"}, ["--a=1"], {"E": "1"})
    store.record_handle(experiment_id, 1, "train", {"executor": "local", "data": {"pid": 6}}, "/o", "/e")
    store.record_job_status(experiment_id, 1, "train", Status.RUNNING, at=11.0, host="h",
                            handle={"executor": "local", "data": {"pid": 7}})
    store.record_job_status(experiment_id, 1, "train", Status.COMPLETED, at=12.0, exit_code=0)
    store.record_unit_status(experiment_id, 1, Status.RUNNING, at=11.0, host="h")
    store.record_unit_status(experiment_id, 1, Status.COMPLETED, at=12.0, exit_code=0)
    store.record_results(experiment_id, 1, {"loss": 0.5})
    store.flush()

    [row] = store.list_experiments()
    assert (row.title, row.tags, row.launch_argv, row.work_unit_count) == ("typed", ("t",), ("l.py", "--x"), 2)
    assert dict(row.status_counts) == {"completed": 1, "pending": 1}
    assert store.get_experiment(experiment_id) == row
    first, second = store.units(experiment_id)
    assert first == UnitRow(experiment_id, 1, {"a": 1}, "completed", "", 0, "h", 10.0, 11.0, 12.0, {"loss": 0.5},
                            "h1", "p1", "r1", 0, 0, None)
    assert (second.status, second.results, second.pset_hash) == ("pending", None, None)
    [job] = store.jobs(experiment_id)
    assert job == JobRow(experiment_id, 1, "train", "local", {"type": "Binary"}, ["--a=1"], {"E": "1"},
                         {"executor": "local", "data": {"pid": 7}}, "completed", "", 0, "h", "/o", "/e", 11.0, 12.0)
    [chunk] = store.unit_chunks(experiment_id, [2])
    assert chunk["work_unit_id"] == (2,) and chunk["args"] == ('{"a": 2}',)
    assert [len(c["work_unit_id"]) for c in store.unit_chunks(experiment_id, size=1)] == [1, 1]
    assert store.completed_pset_hashes(experiment_id) == {"h1"} and store.pset_ids(experiment_id) == {"p1"}
    assert store.sweep_counters(experiment_id) == (1, 1) and store.next_work_unit_id(experiment_id) == 3
    assert store.units_with_status(experiment_id, Status.COMPLETED) == {1: ""}
    store.close()


def test_cancellation_is_recorded_first_and_wins(url):
    store = Store(url)
    experiment_id = store.create_experiment("cancel", [], "", None, None, [])
    for unit in (1, 2, 3):
        store.create_unit(experiment_id, unit, {}, 0.0)
        store.create_job(experiment_id, unit, "j", "local", {}, [], {})
    store.record_unit_status(experiment_id, 3, Status.COMPLETED, at=1.0, exit_code=0)
    store.record_job_status(experiment_id, 3, "j", Status.COMPLETED, at=1.0, exit_code=0)
    assert store.record_cancelled(experiment_id, [1, 3], "stop it", 5.0) == [1]
    assert store.record_cancelled(experiment_id, None, "all", 6.0) == [2]
    store.record_unit_status(experiment_id, 1, Status.FAILED, at=7.0, message="killed by SIGTERM", exit_code=-15)
    store.flush()
    units = {unit.work_unit_id: unit for unit in store.units(experiment_id)}
    assert [(units[u].status, units[u].message) for u in (1, 2, 3)] == [
        ("cancelled", "stop it"), ("cancelled", "all"), ("completed", "")]
    assert units[1].ended_at == 5.0
    assert [job.status for job in store.jobs(experiment_id)] == ["cancelled", "cancelled", "completed"]
    store.close()


def test_finished_units_are_inserted_by_column_name(url):
    store = Store(url)
    experiment_id = store.create_experiment("sweep", [], "", None, None, [])
    store.insert_finished_units(experiment_id, {
        "work_unit_id": [1, 2], "args": ['{"a": 1}', '{"a": 2}'], "status": ["completed", "failed"],
        "created_at": [1.0, 1.0], "results": ['{"r": 1}', None], "pset_hash": ["h1", "h2"],
    })
    units = store.units(experiment_id)
    assert [(u.args, u.status, u.results, u.pset_hash, u.message) for u in units] == [
        ({"a": 1}, "completed", {"r": 1}, "h1", None), ({"a": 2}, "failed", None, "h2", None)]
    with pytest.raises(ValueError, match="not work_units columns: nope"):
        store.insert_finished_units(experiment_id, {"work_unit_id": [3], "nope": [1]})
    with pytest.raises(ValueError, match="different lengths"):
        store.insert_finished_units(experiment_id, {"work_unit_id": [3, 4], "args": ["{}"]})
    assert len(store.units(experiment_id)) == 2
    store.close()
