"""Shared stores for the dashboard's tests: one 100,000-unit experiment (built once a session) and small ones."""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the ui extra")
pytest.importorskip("plotly", reason="the dashboard needs the ui extra")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ui_data  # noqa: E402
from xmanager.xm_local.store import Store  # noqa: E402


@pytest.fixture(scope="session")
def big_store(tmp_path_factory):
    """``(url, experiment_id, cluster_experiment_id)``: a store with a 100,000-unit experiment, 120 small ones
    and the cluster experiment (read-only: tests must not change it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-big') / 'store.sqlite3'}"
    store = Store(url)
    ui_data.listed_experiments(store, 120)
    experiment_id = ui_data.big_experiment(store)
    cluster_id = ui_data.cluster_experiment(store)
    store.close()
    return url, experiment_id, cluster_id
