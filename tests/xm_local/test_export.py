"""xmanager export: units and metrics in every format, to files and to stdout, and TensorBoard event files read back."""

import io
import json
import os
import pickle
import struct
import subprocess
import sys

import pandas as pd
import pytest
from xmanager import xm, xm_local

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

JOB = """
import sys
from xmanager import xm
i = int(sys.argv[1].split('=')[1])
for step in range(0, 30, 10):
    xm.report(step=step, loss=1.0 / (step + i), acc=step * i / 100)
xm.report(best=i, note=float('nan'))
"""


@pytest.fixture
def experiment(script):
    path = script(JOB)
    with xm_local.create_experiment("export", tags=["t"]) as experiment:
        [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=path)])
        for i in (1, 2):
            experiment.add(xm.Job(executable, xm_local.Local(), args={"i": i}))
    return experiment


def run(*args, cwd=None):
    return subprocess.run([XMANAGER, *args], capture_output=True, cwd=cwd, env=os.environ, timeout=120)


@pytest.mark.parametrize("fmt, read", [
    ("csv", pd.read_csv), ("parquet", pd.read_parquet), ("pickle", pd.read_pickle),
])
def test_units_and_metrics_to_files_and_stdout(experiment, tmp_path, fmt, read):
    eid = str(experiment.experiment_id)
    units_file, metrics_file = tmp_path / f"units.{fmt}", tmp_path / f"metrics.{fmt}"
    done = run("export", eid, "--format", fmt, "-o", str(units_file))
    assert done.returncode == 0 and done.stdout.decode() == f"wrote 2 rows to {units_file}\n", done.stderr
    units = read(units_file)
    assert units["i"].tolist() == [1, 2] and units["best"].tolist() == [1, 2]
    assert units["loss"].tolist() == [1.0 / 21, 1.0 / 22]  # The last value by step of each metric.
    done = run("export", eid, "--format", fmt, "--metrics", "-o", str(metrics_file))
    assert done.returncode == 0 and done.stdout.decode() == f"wrote 12 points to {metrics_file}\n", done.stderr
    metrics = read(metrics_file)
    assert list(metrics.columns) == ["work_unit_id", "step", "time", "name", "value"]
    assert metrics[(metrics.work_unit_id == 2) & (metrics.name == "acc")]["value"].tolist() == [0.0, 0.2, 0.4]

    piped = run("export", eid, "--format", fmt, "--metrics", "-o", "-")  # Binary formats too.
    assert piped.returncode == 0 and piped.stderr.decode() == "wrote 12 points to stdout\n"
    assert piped.stdout == metrics_file.read_bytes() or read(io.BytesIO(piped.stdout)).equals(metrics)
    assert sorted(os.listdir(tmp_path)) == sorted([units_file.name, metrics_file.name, "job.py", "xm-data"])


def test_json_is_one_object_per_unit(experiment, tmp_path):
    out = run("export", str(experiment.experiment_id), "--format", "json", "-o", "-")
    assert out.returncode == 0, out.stderr
    units = json.loads(out.stdout)  # Strict JSON: the NaN result is null.
    assert [list(unit) for unit in units] == [[
        "experiment_id", "work_unit_id", "status", "message", "exit_code", "host", "created_at", "started_at",
        "ended_at", "args", "results", "metrics", "pset",
    ]] * 2
    first = units[0]
    assert first["experiment_id"] == experiment.experiment_id and first["work_unit_id"] == 1
    assert first["status"] == "completed" and first["exit_code"] == 0 and first["pset"] is None
    assert first["args"] == {"i": 1} and first["results"] == {"best": 1, "note": None}
    assert first["metrics"] == {"acc": 0.2, "loss": 1.0 / 21}
    assert first["created_at"] <= first["started_at"] <= first["ended_at"]
    assert out.stdout.count(b"\n") == 4  # "[", a line per unit, "]".
    default = run("export", str(experiment.experiment_id), "--format", "json", cwd=tmp_path)
    assert json.loads((tmp_path / f"experiment_{experiment.experiment_id}.json").read_text()) == units, default.stderr

    points = json.loads(run("export", str(experiment.experiment_id), "--format", "json", "--metrics", "-o", "-").stdout)
    assert len(points) == 12 and list(points[0]) == ["work_unit_id", "step", "time", "name", "value"]
    assert points[0]["name"] == "acc" and points[0]["step"] == 0


def _events(folder):
    """The scalars of the TensorBoard event files in ``folder``, read from their TFRecord framing."""
    from tensorboardX.proto import event_pb2

    scalars = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as handle:
            data = handle.read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            record = data[offset + 12: offset + 12 + length]  # After the length and its CRC; the data's CRC follows.
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                scalars.append((value.tag, event.step, round(value.simple_value, 6)))
    return scalars


def test_tensorboard_writes_a_run_per_unit(experiment, tmp_path):
    logdir = tmp_path / "tb"
    out = run("export", str(experiment.experiment_id), "--format", "tensorboard", "-o", str(logdir))
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(logdir)) == ["work_unit_1", "work_unit_2"]
    assert sorted(_events(logdir / "work_unit_2")) == sorted(
        [("loss", step, round(1.0 / (step + 2), 6)) for step in (0, 10, 20)]
        + [("acc", step, round(step * 2 / 100, 6)) for step in (0, 10, 20)]
    )
    again = run("export", str(experiment.experiment_id), "--format", "tensorboard", "-o", str(logdir))
    assert again.returncode == 2
    assert again.stderr.decode() == f"xmanager: error: export -o {logdir}: already exists and is not an empty " \
                                    "folder; name a new folder\n"
    piped = run("export", str(experiment.experiment_id), "--format", "tensorboard", "-o", "-")
    assert piped.returncode == 2 and b"name it with -o DIR" in piped.stderr


def test_export_errors_are_one_line(experiment, tmp_path):
    missing = run("export", str(experiment.experiment_id), "--format", "json", "-o", str(tmp_path / "no" / "x.json"))
    assert missing.returncode == 2
    assert missing.stderr.decode().strip().endswith(f"folder {tmp_path / 'no'} does not exist")
    assert len(missing.stderr.splitlines()) == 1
    bad = run("export", str(experiment.experiment_id), "--format", "xml")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_pickle_on_stdout_is_the_dataframe(experiment):
    out = run("export", str(experiment.experiment_id), "--format", "pickle", "-o", "-")
    frame = pickle.loads(out.stdout)
    assert frame["i"].tolist() == [1, 2] and "acc" in frame.columns
