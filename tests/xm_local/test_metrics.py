"""Metrics over time: points a job reports with xm.report(step=...), read while it runs from another process,
on SQLite and PostgreSQL; racing readers ingest each line once; the last values in to_dataframe()."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from xmanager import xm, xm_local
from xmanager.xm_local.store import MetricsFile, Store

#: Reports 25 steps, waits for the gate file (so a reader sees the unit half-way, whatever the machine's
#: speed), then 25 more: 50 steps of two metrics, with a short sleep between steps.
STEPPER = """
import os, sys, time
from xmanager import xm
gate = sys.argv[1].split('=', 1)[1]
for step in range(50):
    if step == 25:
        deadline = time.time() + 60
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.02)
    xm.report(step=step, loss=1.0 / (step + 1), acc=step / 100)
    time.sleep(0.01)
xm.report(done=1)
"""

#: The second process: reads the experiment's metrics until it has seen half of them while the unit runs,
#: opens the gate, then reads until all are there; prints what it saw.
READER = """
import json, os, sys, time
from xmanager import xm_local
experiment_id, gate = int(sys.argv[1]), sys.argv[2]
experiment = xm_local.get_experiment(experiment_id)
seen, deadline = [], time.time() + 90
while time.time() < deadline:
    frame = experiment.metrics()
    unit = experiment.work_units[1]
    if not seen or len(frame) != seen[-1][0]:
        seen.append((len(frame), unit.get_status().status.value, len(unit.metrics())))
    if len(frame) >= 50 and not os.path.exists(gate):
        open(gate, 'w').close()
    if len(frame) == 100:
        break
    time.sleep(0.05)
print(json.dumps(seen))
"""


def _binary(experiment, path):
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=path)])
    return executable


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, data_dir):
    if request.param == "sqlite":
        return f"sqlite:///{data_dir}/xmanager.sqlite3"
    return request.getfixturevalue("postgres_url")


def test_points_are_read_while_the_job_runs_from_a_second_process(script, tmp_path, database_url, python):
    gate = tmp_path / "gate"
    path = script(STEPPER)
    experiment = xm_local.create_experiment("stepper", database_url=database_url)
    experiment.add(xm.Job(_binary(experiment, path), xm_local.Local(), args={"gate": str(gate)}))
    reader = subprocess.run(
        [python, "-c", READER, str(experiment.experiment_id), str(gate)], capture_output=True, text=True,
        env={**os.environ, "XM_DATABASE_URL": database_url}, timeout=120,
    )
    assert reader.returncode == 0, reader.stderr
    experiment.wait_until_complete()
    seen = json.loads(reader.stdout)
    counts = [count for count, _, _ in seen]
    assert counts == sorted(counts) and counts[-1] == 100  # The points grew, and none came twice.
    assert (50, "running", 50) in [tuple(entry) for entry in seen]  # Half of them, read while the job ran.

    frame = experiment.metrics()
    assert list(frame.columns) == ["work_unit_id", "step", "time", "name", "value"]
    assert len(frame) == 100 and set(frame["work_unit_id"]) == {1}
    assert frame["name"].tolist() == ["acc"] * 50 + ["loss"] * 50  # Sorted by unit, name, step.
    loss = frame[frame["name"] == "loss"]
    assert loss["step"].tolist() == list(range(50))
    assert loss["value"].tolist() == [1.0 / (step + 1) for step in range(50)]
    assert (np.diff(loss["time"].to_numpy()) >= 0).all()
    assert abs(loss["time"].iloc[-1] - time.time()) < 600  # Wall-clock seconds since the epoch.
    unit_frame = experiment.work_units[1].metrics()
    assert unit_frame.reset_index(drop=True).equals(frame.reset_index(drop=True))
    table = experiment.to_dataframe()
    assert table["loss"].tolist() == [1.0 / 50] and table["acc"].tolist() == [0.49] and table["done"].tolist() == [1]


def test_the_launcher_ingests_a_units_points_when_it_ends(script, data_dir):
    path = script("from xmanager import xm\nfor s in range(3):\n    xm.report(step=s, x=s * 2)\n")
    with xm_local.create_experiment("at end") as experiment:
        executable = _binary(experiment, path)
        for _ in range(3):
            experiment.add(xm.Job(executable, xm_local.Local()))
    files = list(data_dir.glob("experiments/*/*/*/metrics.jsonl"))
    assert len(files) == 3
    for file in files:  # The points are in the store already: the files are not needed any more.
        file.unlink()
    code = ("from xmanager import xm_local\n"
            f"f = xm_local.get_experiment({experiment.experiment_id}).metrics()\n"
            "print(len(f), sorted(set(f.work_unit_id)), f[f.work_unit_id == 2].value.tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=60)
    assert out.stdout.strip().split(maxsplit=1) == ["9", "[1, 2, 3] [0.0, 2.0, 4.0]"], out.stderr


def _square_with_metrics(x):
    for step in range(4):
        xm.report(step=step, partial=x * step)
    return {"y": x * x}


def test_python_callables_in_local_workers_report_points():
    with xm_local.create_experiment("callables") as experiment:
        [executable] = experiment.package([xm.python_callable(xm_local.Local.Spec(), _square_with_metrics)])
        for x in (1, 2):
            experiment.add(xm.Job(executable, xm_local.Local(), args={"x": x}))
    frame = experiment.metrics()
    assert frame.groupby("work_unit_id")["value"].apply(list).to_dict() == {1: [0.0, 1.0, 2.0, 3.0],
                                                                            2: [0.0, 2.0, 4.0, 6.0]}
    table = experiment.to_dataframe()
    assert table["partial"].tolist() == [3.0, 6.0] and table["y"].tolist() == [1, 4]


def test_a_unit_without_points_has_an_empty_frame_and_no_columns(script):
    path = script("from xmanager import xm\nxm.report(final=1)\n")
    with xm_local.create_experiment("no metrics") as experiment:
        experiment.add(xm.Job(_binary(experiment, path), xm_local.Local()))
    frame = experiment.metrics()
    assert frame.empty and list(frame.columns) == ["work_unit_id", "step", "time", "name", "value"]
    assert [str(dtype) for dtype in frame.dtypes[["work_unit_id", "step", "time", "value"]]] == ["int64"] * 2 + [
        "float64"] * 2
    assert list(experiment.to_dataframe().columns)[:2] == ["final", "_experiment_id"]
    assert "_pset_runtime" == list(experiment.to_dataframe().columns)[-1]


# ---- to_dataframe()'s last values ----------------------------------------------------------------
LAST_VALUES = """
import sys
from xmanager import xm
i = int(sys.argv[1].split('=')[1])
if i == 1:
    xm.report(step=5, loss=0.5, lr=0.1, i=99.0, _status=7.0)
    xm.report(step=3, loss=0.7)   # An earlier step reported later: the last value is step 5's.
    xm.report(step=5, lr=0.2)     # The same step again: the later point wins.
    xm.report(step=1, score=float('nan'))
    xm.report(loss=0.25)          # A result of the same name wins over the metric.
if i == 2:
    xm.report(step=0, acc=True)
"""


def test_to_dataframe_gains_a_column_per_metric_with_its_last_value(script):
    path = script(LAST_VALUES)
    with xm_local.create_experiment("last") as experiment:
        executable = _binary(experiment, path)
        for i in (1, 2, 3):
            experiment.add(xm.Job(executable, xm_local.Local(), args={"i": i}))
    table = experiment.to_dataframe()
    reserved = ["_experiment_id", "_work_unit_id", "_status", "_exit_code", "_message", "_exec_host", "_time_utc",
                "_end_utc", "_pset_runtime"]
    columns = list(table.columns)
    assert columns[:2] == ["i", "loss"] and columns[2:11] == reserved  # Existing columns, in their order.
    assert columns[11:] == ["metric__status", "acc", "metric_i", "lr", "score"]  # In name order.
    assert table["loss"].tolist()[0] == 0.25  # The result, not the metric's 0.5.
    assert table["lr"].tolist()[0] == 0.2
    assert table["metric_i"].tolist()[0] == 99.0 and table["metric__status"].tolist()[0] == 7.0
    assert np.isnan(table["score"].tolist()[0])
    assert table["acc"].tolist()[1] == 1.0
    assert table.loc[2, ["acc", "lr", "score"]].isna().all()  # Unit 3 reported no points.
    points = experiment.metrics()
    loss = points[(points.work_unit_id == 1) & (points.name == "loss")]
    assert loss["step"].tolist() == [3, 5] and loss["value"].tolist() == [0.7, 0.5]


# ---- racing readers --------------------------------------------------------------------------------
RACER = """
import sys, time
from xmanager.xm_local.store import MetricsFile, Store
url, experiment_id, path, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
store = Store(url)
import os
added = 0
while True:
    done = os.path.exists(stop)
    added += store.collect_metrics(experiment_id, [MetricsFile(1, "job", path)])
    if done:
        break
print(added)
"""


def test_racing_readers_ingest_each_line_once(tmp_path, database_url, python):
    store = Store(database_url)
    experiment_id = store.create_experiment("race", [], "", None, None, [])
    store.create_unit(experiment_id, 1, {}, time.time())
    store.flush()
    path, stop = tmp_path / "metrics.jsonl", tmp_path / "stop"
    racers = [subprocess.Popen([python, "-c", RACER, database_url, str(experiment_id), str(path), str(stop)],
                               stdout=subprocess.PIPE, text=True) for _ in range(3)]
    lines = 600
    with open(path, "a") as handle:
        for step in range(lines):  # Appended as a job does, whole lines, while the readers read.
            handle.write(json.dumps({"step": step, "time": 1.0, "values": {"a": step, "b": -step}}) + "\n")
            handle.flush()
            if step % 50 == 0:
                time.sleep(0.02)
        handle.write('{"step": 600, "time": 1.0, "val')  # A line still being written is left for later.
        handle.flush()
    stop.touch()
    added = [int(racer.communicate(timeout=120)[0]) for racer in racers]
    assert sum(added) == 2 * lines
    frame = xm_local.get_experiment(experiment_id, database_url=database_url).metrics()
    assert len(frame) == 2 * lines
    assert frame[frame.name == "a"]["step"].tolist() == list(range(lines))
    last = store.last_metrics(experiment_id)
    assert sorted(zip(last["work_unit_id"], last["name"], last["value"])) == [
        (1, "a", float(lines - 1)), (1, "b", float(1 - lines))]
    with open(path, "a") as handle:
        handle.write('ue": 3}}\n{"not": "a point"}\nnot json\n')
    assert store.collect_metrics(experiment_id, [MetricsFile(1, "job", str(path))]) == 0  # Bad lines skipped.
    assert store.collect_metrics(experiment_id, [MetricsFile(1, "job", str(path))]) == 0
    store.close()


def test_unreadable_or_missing_files_are_skipped(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.sqlite3")
    experiment_id = store.create_experiment("missing", [], "", None, None, [])
    assert store.collect_metrics(experiment_id, [MetricsFile(1, "job", str(tmp_path / "none.jsonl"))]) == 0
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    assert store.collect_metrics(experiment_id, [MetricsFile(1, "job", str(folder))]) == 0
    store.close()


def test_store_schema_keeps_metrics_per_experiment(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.sqlite3")
    first = store.create_experiment("a", [], "", None, None, [])
    second = store.create_experiment("b", [], "", None, None, [])
    path = tmp_path / "m.jsonl"
    path.write_text(textwrap.dedent("""\
        {"step": 1, "time": 2.5, "values": {"x": 1}}
        {"step": 2, "time": 3.5, "values": {"x": 2}}
    """))
    assert store.collect_metrics(first, [MetricsFile(4, "job", str(path))]) == 2
    assert store.collect_metrics(second, [MetricsFile(4, "job", str(path))]) == 2  # Its own offset.
    chunks = list(store.metric_chunks(first))
    assert [dict(chunk) for chunk in chunks] == [
        {"work_unit_id": (4, 4), "step": (1, 2), "at": (2.5, 3.5), "name": ("x", "x"), "value": (1.0, 2.0)}]
    store.close()
