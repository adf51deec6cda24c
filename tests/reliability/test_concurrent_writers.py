"""Several processes writing one store while others read it: SQLite (one file) and PostgreSQL.

Four writer processes, started on a database without a schema, each launch 2,500 units (25 sweeps of 100, so their transactions interleave)
through the public API on the in-process executor; two reader processes meanwhile loop over
``list_experiments()`` and ``get_experiment(id).to_dataframe()``. Afterwards every row must be there
with its args, status and results, and no process may have met a lock error ("database is locked",
a busy timeout, a deadlock or a serialization failure), whether it surfaced as an exception or as
the store writer's report on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from xmanager.xm_local.store import Store

pytestmark = pytest.mark.integration

WRITERS, UNITS, SWEEPS = 4, 2_500, 25
LOCK_WORDS = ("locked", "busy", "deadlock", "could not serialize", "could not obtain lock", "lock timeout")

WRITER = """\
import sys
from xmanager import xm, xm_local

def double(value, writer):
    return {"double": value * 2, "writer": writer}

writer, units, sweeps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with xm_local.create_experiment(f"writer {writer}") as experiment:
    print("EXPERIMENT", experiment.experiment_id, flush=True)
    [executable] = experiment.package([xm.python_callable(xm_local.InProcess.Spec(), double)])
    job = xm.Job(executable, xm_local.InProcess())
    size = units // sweeps
    for start in range(0, units, size):
        experiment.add_sweep(job, [{"value": value, "writer": writer} for value in range(start, start + size)])
"""

READER = """\
import json, os, sys
from xmanager import xm_local

stop = sys.argv[1]
loops, rows, errors = 0, 0, []
while not os.path.exists(stop) or loops == 0:
    try:
        for experiment in xm_local.list_experiments():
            rows += len(xm_local.get_experiment(experiment.experiment_id).to_dataframe())
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
    loops += 1
print(json.dumps({"loops": loops, "rows": rows, "errors": errors}))
"""


def _lock_errors(texts: list[str]) -> list[str]:
    return [text for text in texts if any(word in text.lower() for word in LOCK_WORDS)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, data_dir):
    if request.param == "sqlite":
        return f"sqlite:///{data_dir / 'shared.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def test_four_writers_and_two_readers_share_one_store(database_url, tmp_path, figures):
    env = {**os.environ, "XM_DATABASE_URL": database_url}
    # No schema yet: the six processes race to create it, as launchers sharing a new store do.
    stop = str(tmp_path / "stop")
    readers = [subprocess.Popen([sys.executable, "-c", READER, stop], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(number), str(UNITS), str(SWEEPS)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for number in range(WRITERS)]
    try:
        written = [process.communicate(timeout=100) for process in writers]
    finally:
        open(stop, "w").close()
        for process in writers:
            if process.poll() is None:
                process.kill()
        read = [process.communicate(timeout=60) for process in readers]

    experiment_ids = {}
    for number, (process, (stdout, stderr)) in enumerate(zip(writers, written)):
        assert process.returncode == 0, stderr
        experiment_ids[number] = int(stdout.split()[1])
    reports = [json.loads(stdout.splitlines()[-1]) for stdout, _ in read]
    reader_errors = [error for report in reports for error in report["errors"]]

    store = Store(database_url)
    correct = 0
    for number, experiment_id in experiment_ids.items():
        for unit in store.units(experiment_id):
            value = unit.args.get("value")
            if (unit.status == "completed" and unit.args == {"value": value, "writer": number}
                    and unit.results == {"double": 2 * value, "writer": number}):
                correct += 1
        assert sorted(unit.args["value"] for unit in store.units(experiment_id)) == list(range(UNITS))
    store.close()
    tried = WRITERS * UNITS
    figures.add("concurrent writers: 4 x 2,500 units, SQLite and PostgreSQL, readers looping",
                tried=tried, lost=tried - correct)
    lock_errors = _lock_errors([stderr for _, stderr in written] + [stderr for _, stderr in read] + reader_errors)
    assert not lock_errors, lock_errors[:5]
    assert not reader_errors, reader_errors[:5]
    assert not [stderr for _, stderr in written if "could not write" in stderr]
    assert correct == tried
    assert all(report["loops"] >= 1 and report["rows"] > 0 for report in reports), reports
