"""The store: migrations, version checks, batched writes, both drivers."""

import json

import pytest
from xmanager.xm_local.store import Store, StoreError, schema
from xmanager.xm_local.store import writer as sql
from xmanager.xm_local.store.driver import Connection, connect, sqlite_path

URLS = ["sqlite", "sqlite+pysqlite", "postgresql"]


@pytest.fixture(params=URLS)
def url(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    if request.param != "sqlite":
        pytest.importorskip("sqlalchemy")
    return f"{request.param}:///{tmp_path / 'store.sqlite3'}"


_NO_SWEEP = dict.fromkeys(sql.SWEEP_COLUMNS)


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
    first = store.insert_experiment(1000, "a", ["x"], "", None, None, [])
    second = store.insert_experiment(1000, "b", ["x", "x"], "", None, None, [])
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
    experiment_id = store.insert_experiment(1, "batch", [], "", None, None, [])
    counting = CountingConnection(connect(url))
    writer = store.writer
    writer._start()
    # Block the writer on a first call so that everything after it lands in one batch.
    import threading

    gate = threading.Event()
    writer.call(lambda conn: gate.wait())
    for unit in range(1, 10_001):
        writer.put(sql.INSERT_UNIT, {"experiment_id": experiment_id, "work_unit_id": unit, "args": json.dumps({"u": unit}), "status": "pending", "created_at": 0.0, **_NO_SWEEP})
        writer.put(sql.UPDATE_UNIT, {"experiment_id": experiment_id, "work_unit_id": unit, "status": "completed", "message": "", "exit_code": 0, "host": "h", "started_at": 1.0, "ended_at": 2.0})
    gate.set()
    writer.flush()
    # Now measure a second burst through a counting connection.
    writer._apply(counting, [(sql.UPSERT_RESULT, {"experiment_id": experiment_id, "work_unit_id": u, "data": "{}"}) for u in range(1, 10_001)])
    assert counting.transactions == 1
    units = store.units(experiment_id)
    assert len(units) == 10_000 and {u.status for u in units} == {"completed"}
    assert units[41].args == {"u": 42} and units[41].results == {}
    store.close()


def test_terminal_status_is_never_overwritten(url):
    store = Store(url)
    experiment_id = store.insert_experiment(7, "t", [], "", None, None, [])
    w = store.writer
    w.put(sql.INSERT_UNIT, {"experiment_id": experiment_id, "work_unit_id": 1, "args": "{}", "status": "pending", "created_at": 0.0, **_NO_SWEEP})
    update = {"experiment_id": experiment_id, "work_unit_id": 1, "message": "", "exit_code": None, "host": None, "started_at": None, "ended_at": None}
    w.put(sql.UPDATE_UNIT, {**update, "status": "cancelled"})
    w.put(sql.UPDATE_UNIT, {**update, "status": "failed", "exit_code": -15})
    w.flush()
    assert store.units(experiment_id)[0].status == "cancelled"
    store.close()


def test_writer_error_is_raised_at_flush(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store.writer.put(sql.INSERT_UNIT, {"experiment_id": 404, "work_unit_id": 1, "args": "{}", "status": "pending", "created_at": 0.0, **_NO_SWEEP})
    with pytest.raises(Exception, match="FOREIGN KEY"):
        store.writer.flush()
