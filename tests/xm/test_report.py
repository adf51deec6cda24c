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
