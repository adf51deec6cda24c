"""xm.report(): results from inside a job, merged into the JSON file at $XM_RESULTS_PATH."""

import importlib
import json
import math
import warnings

import pytest
from xmanager import xm

# `xmanager.xm.report` the attribute is the function; the module is reached by its full name.
report_lib = importlib.import_module("xmanager.xm.report")


@pytest.fixture
def results_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    monkeypatch.setenv(report_lib.RESULTS_ENV, str(path))
    return path


def test_env_var_name():
    assert report_lib.RESULTS_ENV == "XM_RESULTS_PATH"


def test_outside_a_job_warns_once_and_records_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("XM_RESULTS_PATH", raising=False)
    monkeypatch.setattr(report_lib, "_warned", False)
    monkeypatch.chdir(tmp_path)
    assert xm.results_path() is None and report_lib.metrics_path() is None
    with pytest.warns(RuntimeWarning, match="outside a job.*XM_RESULTS_PATH"):
        assert xm.report(loss=1.0) == {"loss": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # The second call, of either form, is silent.
        assert xm.report(step=1, loss=0.5) == {"loss": 0.5}
        xm.report(acc=1)
    assert list(tmp_path.iterdir()) == []


def test_outside_a_job_values_are_still_checked(monkeypatch):
    monkeypatch.delenv("XM_RESULTS_PATH", raising=False)
    monkeypatch.setattr(report_lib, "_warned", True)
    with pytest.raises(TypeError, match="'model'"):
        xm.report(model=object())
    with pytest.raises(TypeError, match="'loss'"):
        xm.report(step=1, loss="low")


def test_results_path(results_file):
    assert xm.results_path() == str(results_file)


def test_writes_json(results_file):
    returned = xm.report(loss=0.25, epoch=10, tags=["a", "b"], nested={"k": None})
    expected = {"loss": 0.25, "epoch": 10, "tags": ["a", "b"], "nested": {"k": None}}
    assert returned == expected
    assert json.loads(results_file.read_text()) == expected


def test_successive_calls_merge(results_file):
    xm.report(loss=1.0, epoch=1)
    xm.report(loss=0.5, acc=0.9)
    assert json.loads(results_file.read_text()) == {"loss": 0.5, "epoch": 1, "acc": 0.9}


def test_merges_with_existing_file(results_file):
    results_file.write_text(json.dumps({"earlier": 1}))
    assert xm.report(later=2) == {"earlier": 1, "later": 2}


def test_no_temporary_file_left(results_file):
    xm.report(a=1)
    assert sorted(p.name for p in results_file.parent.iterdir()) == ["results.json"]


@pytest.mark.parametrize("bad", [object(), {1, 2}, b"bytes", 1j, [1, object()]])
def test_non_json_value_rejected_and_file_unchanged(results_file, bad):
    xm.report(loss=1.0)
    before = results_file.read_bytes()
    with pytest.raises(TypeError, match="'weights'"):
        xm.report(ok=2, weights=bad)
    assert results_file.read_bytes() == before


def test_non_json_value_rejected_before_file_exists(results_file):
    with pytest.raises(TypeError, match="'model'"):
        xm.report(model=object())
    assert not results_file.exists()


def test_nan_is_allowed(results_file):
    xm.report(loss=math.nan)
    assert math.isnan(json.loads(results_file.read_text())["loss"])


# ---- metrics over time: xm.report(step=...) -----------------------------------------------------------
def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_step_appends_one_line_per_call_next_to_the_results(results_file):
    metrics_file = results_file.parent / "metrics.jsonl"
    assert report_lib.metrics_path() == str(metrics_file)
    assert xm.report(step=0, loss=1.5, acc=0) == {"loss": 1.5, "acc": 0.0}
    xm.report(step=1, loss=1.25)
    lines = _lines(metrics_file)
    assert [(line["step"], line["values"]) for line in lines] == [(0, {"loss": 1.5, "acc": 0.0}), (1, {"loss": 1.25})]
    assert lines[0]["time"] <= lines[1]["time"] and isinstance(lines[0]["time"], float)
    assert not results_file.exists()  # Points are not results...
    xm.report(loss=0.5)
    assert json.loads(results_file.read_text()) == {"loss": 0.5}  # ...and results are not points.
    assert len(_lines(metrics_file)) == 2


def test_numbers_of_every_kind_are_floats(results_file):
    import numpy as np

    values = {"flag": True, "i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(False), "a": np.array(2.5),
              "nan": math.nan, "inf": -math.inf}
    assert xm.report(step=np.int32(7), **values) == {
        "flag": 1.0, "i": 3.0, "f": 0.5, "b": 0.0, "a": 2.5, "nan": pytest.approx(math.nan, nan_ok=True),
        "inf": -math.inf}
    [line] = _lines(results_file.parent / "metrics.jsonl")
    assert line["step"] == 7 and math.isnan(line["values"]["nan"]) and line["values"]["inf"] == -math.inf


@pytest.mark.parametrize("bad", ["0.5", None, [1.0], 1j, {"x": 1}, object()])
def test_a_value_that_is_not_a_number_is_a_type_error_naming_the_metric(results_file, bad):
    with pytest.raises(TypeError, match="metric 'loss'"):
        xm.report(step=1, acc=0.5, loss=bad)
    assert list(results_file.parent.iterdir()) == []  # Nothing written, not even the good metric.


@pytest.mark.parametrize("step", [1.0, "3", True, None])
def test_step_must_be_an_integer(results_file, step):
    if step is None:  # Without a step, the values are results.
        xm.report(step=step, loss=1.0)
        assert json.loads(results_file.read_text()) == {"loss": 1.0}
        return
    with pytest.raises(TypeError, match="step must be an integer"):
        xm.report(step=step, loss=1.0)


def test_a_step_without_metrics_writes_nothing(results_file):
    assert xm.report(step=3) == {}
    assert list(results_file.parent.iterdir()) == []


def test_lines_stay_whole_when_processes_append_at_once(results_file, tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom xmanager import xm\n"
            "for step in range(300):\n    xm.report(step=step, **{f'm{i}': step * 0.5 for i in range(20)}, who=int(sys.argv[1]))\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(n)]) for n in range(4)]
    assert [writer.wait(timeout=60) for writer in writers] == [0] * 4
    lines = _lines(results_file.parent / "metrics.jsonl")  # Every line parses: none interleaved.
    assert len(lines) == 1200
    assert sorted((int(line["values"]["who"]), line["step"]) for line in lines) == [
        (who, step) for who in range(4) for step in range(300)]
