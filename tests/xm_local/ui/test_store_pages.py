"""xm_local/store/pages.py: pages of experiments and units, filtered, sorted and counted in SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

import pytest
import ui_data
from xmanager.xm.status import Status
from xmanager.xm_local.store import Store
from xmanager.xm_local.store.pages import KeyCondition, experiment_page, unit_keys, unit_page, unit_sample


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    opened = Store(url)
    yield opened
    opened.close()


def _units(store: Store) -> int:
    """An experiment of 30 finished units: lr 0.001 * i (unit 7 has no lr), loss 1/i, every third failed on host b."""
    experiment_id = store.create_experiment("units", [], "", None, None, [])
    ids = list(range(1, 31))
    store.insert_finished_units(experiment_id, {
        "work_unit_id": ids,
        "args": [('{"opt": "adam"}' if i == 7 else f'{{"lr": {0.001 * i}, "opt": "{"adam" if i % 2 else "sgd"}"}}')
                 for i in ids],
        "status": ["failed" if i % 3 == 0 else "completed" for i in ids],
        "host": ["b" if i % 3 == 0 else "a" for i in ids],
        "created_at": [1000.0] * 30,
        "started_at": [1000.0 + i for i in ids],
        "ended_at": [1000.0 + 3 * i for i in ids],
        "results": [f'{{"loss": {1 / i}}}' for i in ids],
        "message": ["Out Of Memory" if i == 12 else "" for i in ids],
    })
    return experiment_id


def test_experiment_pages_are_newest_first_and_count_all_matches(store):
    ids = ui_data.listed_experiments(store, 25)
    first = experiment_page(store, offset=0, limit=10)
    assert first.total == 25
    assert [row.experiment_id for row in first.rows] == ids[::-1][:10]
    last = experiment_page(store, offset=20, limit=10)
    assert [row.experiment_id for row in last.rows] == ids[::-1][20:]
    assert experiment_page(store, offset=30, limit=10).rows == []


def test_experiment_filters(store):
    ids = ui_data.listed_experiments(store, 6)
    middle = time.time()
    time.sleep(0.01)
    later = ui_data.listed_experiments(store, 2, title="late")
    ui_data.unit_with_jobs(store, later[1], 1, Status.RUNNING, {}, {}, {})
    store.flush()
    assert experiment_page(store, title="RUN 3").total == 1  # Any case.
    assert experiment_page(store, title="r*n 1").total == 1
    assert experiment_page(store, title="100%").total == 0  # % is a character here, not a wildcard.
    assert {row.experiment_id for row in experiment_page(store, tag="odd").rows} == {ids[1], ids[3], ids[5], later[1]}
    assert [row.experiment_id for row in experiment_page(store, since=middle).rows] == later[::-1]
    assert experiment_page(store, until=middle).total == 6
    running = experiment_page(store, status="running")
    assert [row.experiment_id for row in running.rows] == [later[1]]
    assert running.rows[0].status_counts == {"running": 1}


def test_units_page_and_total(store):
    experiment_id = _units(store)
    page = unit_page(store, experiment_id, offset=10, limit=5)
    assert page.total == 30
    assert [row.work_unit_id for row in page.rows] == [11, 12, 13, 14, 15]
    assert page.rows[0].args == {"lr": 0.011, "opt": "adam"}


def test_units_sort_on_json_keys_as_numbers_with_missing_keys_last(store):
    experiment_id = _units(store)
    ascending = unit_page(store, experiment_id, order_by=("args", "lr"), limit=30).rows
    assert [row.work_unit_id for row in ascending] == [i for i in range(1, 31) if i != 7] + [7]
    descending = unit_page(store, experiment_id, order_by=("args", "lr"), descending=True, limit=3).rows
    assert [row.work_unit_id for row in descending] == [30, 29, 28]
    by_loss = unit_page(store, experiment_id, order_by=("results", "loss"), limit=2).rows
    assert [row.work_unit_id for row in by_loss] == [30, 29]  # 1/30 < 1/29: numbers, not text.
    by_duration = unit_page(store, experiment_id, order_by="duration", descending=True, limit=1).rows
    assert by_duration[0].work_unit_id == 30


def test_units_filters(store):
    experiment_id = _units(store)
    failed = unit_page(store, experiment_id, status="failed", limit=100)
    assert failed.total == 10 and all(row.status == "failed" for row in failed.rows)
    assert [row.work_unit_id for row in unit_page(store, experiment_id, text="out of memory").rows] == [12]
    big = unit_page(store, experiment_id, conditions=[KeyCondition("args", "lr", ">=", 0.025)], limit=100)
    assert [row.work_unit_id for row in big.rows] == [25, 26, 27, 28, 29, 30]
    both = unit_page(store, experiment_id, status="completed", limit=100, conditions=[
        KeyCondition("args", "opt", "=", "sgd"), KeyCondition("results", "loss", "<", 0.1)])
    assert [row.work_unit_id for row in both.rows] == [14, 16, 20, 22, 26, 28]
    assert unit_page(store, experiment_id, conditions=[KeyCondition("args", "opt", "!=", "adam")]).total == 15


def test_units_refuse_unknown_orders(store):
    experiment_id = _units(store)
    with pytest.raises(ValueError, match="do not sort"):
        unit_page(store, experiment_id, order_by="args; DROP TABLE work_units")
    with pytest.raises(ValueError, match="operator"):
        KeyCondition("args", "lr", "LIKE", 1)


def test_keys_and_sample(store):
    experiment_id = _units(store)
    assert unit_keys(store, experiment_id) == (["lr", "opt"], ["loss"])
    sample = [row.work_unit_id for row in unit_sample(store, experiment_id, 10)]
    assert len(sample) == 10 and sample == sorted(sample) and set(sample) <= set(range(1, 31))
    assert [row.work_unit_id for row in unit_sample(store, experiment_id, 10)] == sample  # The same every time.
    assert [row.work_unit_id for row in unit_sample(store, experiment_id, 100)] == list(range(1, 31))


def test_archived_experiments_are_hidden_unless_asked_for(store):
    ids = ui_data.listed_experiments(store, 3)
    store.set_archived(ids[1], time.time())
    assert [row.experiment_id for row in experiment_page(store).rows] == [ids[2], ids[0]]
    assert experiment_page(store).total == 2
    assert [row.experiment_id for row in experiment_page(store, include_archived=True).rows] == ids[::-1]
