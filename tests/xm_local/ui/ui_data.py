"""Stores for the dashboard's tests, benchmark and screenshots: written through the store's own API."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from xmanager.executors.api import Handle
from xmanager.xm.status import Status
from xmanager.xm_local.store import Store

#: Arg values of the big experiment: ``lr`` (float), ``batch`` (int), ``opt`` (text).
OPTIMIZERS = ("adam", "sgd")
BATCHES = (32, 64, 128)


def big_experiment(store: Store, units: int = 100_000, title: str = "big sweep", seed: int = 0) -> int:
    """An experiment of ``units`` finished units (every 10th failed), inserted in one transaction."""
    rng = random.Random(seed)
    experiment_id = store.create_experiment(title, ["sweep", "big"], f"{units:,} units", "tester", None, [])
    now = time.time() - units
    lrs = [10 ** rng.uniform(-4, -1) for _ in range(units)]
    columns: dict[str, list[Any]] = {
        "work_unit_id": list(range(1, units + 1)),
        "args": [json.dumps({"lr": lrs[i], "batch": BATCHES[i % 3], "opt": OPTIMIZERS[i % 2]}) for i in range(units)],
        "status": ["failed" if i % 10 == 9 else "completed" for i in range(units)],
        "exit_code": [1 if i % 10 == 9 else 0 for i in range(units)],
        "message": ["exit status 1" if i % 10 == 9 else "" for i in range(units)],
        "host": [f"node{i % 7}" for i in range(units)],
        "created_at": [now] * units,
        "started_at": [now + i for i in range(units)],
        "ended_at": [now + i + rng.uniform(1, 100) for i in range(units)],
        "results": [json.dumps({"loss": round(1 - lrs[i] * 5 + rng.uniform(0, 0.3), 6), "acc": rng.random()})
                    for i in range(units)],
    }
    store.insert_finished_units(experiment_id, columns)
    return experiment_id


def unit_with_jobs(store: Store, experiment_id: int, work_unit_id: int, status: Status,
                   handles: dict[str, dict[str, Any]], args: dict[str, Any], results: dict[str, Any]) -> None:
    """A unit whose jobs (name -> handle data, with ``executor``) ran to ``status``."""
    now = time.time()
    store.create_unit(experiment_id, work_unit_id, args, now)
    for job_name, data in handles.items():
        data = dict(data)
        executor = data.pop("executor")
        store.create_job(experiment_id, work_unit_id, job_name, executor, {}, [], {})
        handle = Handle(executor, experiment_id, work_unit_id, job_name, data).to_json()
        store.record_job_status(experiment_id, work_unit_id, job_name, Status.RUNNING, at=now, handle=handle,
                                host="node1")
        if status.is_terminal:
            store.record_job_status(experiment_id, work_unit_id, job_name, status, at=now + 2,
                                    exit_code=0 if status is Status.COMPLETED else 1)
    store.record_unit_status(experiment_id, work_unit_id, Status.RUNNING, at=now, host="node1")
    if status.is_terminal:
        store.record_unit_status(experiment_id, work_unit_id, status, at=now + 2,
                                 exit_code=0 if status is Status.COMPLETED else 1)
    store.record_results(experiment_id, work_unit_id, results)


def cluster_experiment(store: Store) -> int:
    """Two units on cluster executors: a Slurm array task and a Vertex AI job with its console link."""
    experiment_id = store.create_experiment("cluster runs", ["cluster"], "", "tester", None, [])
    unit_with_jobs(store, experiment_id, 1, Status.COMPLETED, {"train": {"executor": "slurm", "job_id": "4242",
                   "task": 3, "work_dir": "/nonexistent"}}, {"lr": 0.1}, {"loss": 0.5})
    unit_with_jobs(store, experiment_id, 2, Status.FAILED, {"train": {
        "executor": "vertex", "name": "projects/p/locations/us-central1/customJobs/77",
        "console_url": "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/77?project=p"}},
        {"lr": 0.01}, {"loss": 0.25})
    store.flush()
    return experiment_id


def listed_experiments(store: Store, count: int, title: str = "run") -> list[int]:
    """``count`` small experiments titled ``<title> <i>``, tagged ``even`` or ``odd``, oldest first."""
    ids = []
    for index in range(count):
        experiment_id = store.create_experiment(f"{title} {index}", ["even" if index % 2 == 0 else "odd"], "",
                                                "tester", None, [])
        ids.append(experiment_id)
    return ids
