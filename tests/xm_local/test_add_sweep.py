"""experiment.add_sweep(): one unit per pset, psweep's columns, and resuming a sweep."""

import subprocess
import sys
import textwrap

import pytest
from xmanager import xm, xm_local

JOB = """
import sys
from xmanager import xm
flags = dict(arg[2:].split('=', 1) for arg in sys.argv[1:] if arg.startswith('--'))
a, b = int(flags['a']), int(flags['b'])
if (a, b) == (2, 3) and flags.get('fail_six') == '1':
    sys.exit(3)
xm.report(product=a * b)
"""


def _job(experiment, path, **args):
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=path)])
    return xm.Job(executable, xm_local.Local(), args=args)


def test_add_sweep_records_psets_and_results(script):
    path = script(JOB)
    params = xm.pgrid(xm.plist("a", [1, 2, 3]), xm.plist("b", [2, 3]))
    with xm_local.create_experiment("grid") as experiment:
        futures = experiment.add_sweep(_job(experiment, path), params)
        assert len(futures) == 6
    frame = experiment.to_dataframe().sort_values("_pset_seq")
    assert frame[["a", "b"]].to_dict("records") == params
    assert frame["product"].tolist() == [2, 3, 4, 6, 6, 9]
    assert frame["_pset_hash"].tolist() == [xm.pset_hash(pset) for pset in params]
    assert frame["_pset_seq"].tolist() == list(range(6))
    assert set(frame["_run_seq"]) == {0} and frame["_run_id"].nunique() == 1
    assert frame["_pset_id"].nunique() == 6
    assert set(frame["_status"]) == {"completed"}


def test_bookkeeping_keys_are_not_passed_to_the_job(script):
    path = script(JOB)
    params = xm.stargrid({"a": 1, "b": 2}, [xm.plist("a", [1, 3])], vary_labels=["a"])
    with xm_local.create_experiment("star") as experiment:
        experiment.add_sweep(_job(experiment, path), params)
    frame = experiment.to_dataframe()
    assert "_vary" not in frame.columns
    assert sorted(frame["product"]) == [2, 6]


def test_resume_in_a_later_process_adds_only_what_did_not_complete(script, tmp_path):
    path = script(JOB)
    params = xm.pgrid(xm.plist("a", [1, 2, 3]), xm.plist("b", [2, 3]))
    with pytest.raises(xm.ExperimentFailedError, match="1 of 6 work units failed"):
        with xm_local.create_experiment("resume") as experiment:
            experiment.add_sweep(_job(experiment, path, fail_six="1"), params)
    experiment_id = experiment.experiment_id

    launcher = tmp_path / "resume.py"
    launcher.write_text(
        textwrap.dedent(
            f"""
            from xmanager import xm, xm_local
            params = xm.pgrid(xm.plist("a", [1, 2, 3]), xm.plist("b", [2, 3]))
            with xm_local.get_experiment({experiment_id}) as experiment:
                [executable] = experiment.package(
                    [xm.binary(executor_spec=xm_local.Local.Spec(), path={path!r})]
                )
                futures = experiment.add_sweep(
                    xm.Job(executable, xm_local.Local(), args={{"fail_six": "0"}}), params, skip_completed=True
                )
                print("added", len(futures))
            """
        )
    )
    result = subprocess.run([sys.executable, str(launcher)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "added 1" in result.stdout

    frame = xm_local.get_experiment(experiment_id).to_dataframe().sort_values("_work_unit_id")
    assert frame["_work_unit_id"].tolist() == list(range(1, 8))
    last = frame.iloc[-1]
    assert (last["a"], last["b"], last["product"], last["_status"]) == (2, 3, 6, "completed")
    assert last["_run_seq"] == 1 and last["_pset_seq"] == 6
    assert frame.loc[frame["_status"] == "failed", "_pset_hash"].tolist() == [last["_pset_hash"]]


def test_add_sweep_rejects_a_pset_that_is_not_a_dict(script):
    path = script(JOB)
    with xm_local.create_experiment("bad") as experiment:
        with pytest.raises(TypeError, match=r"params\[1\] is list"):
            experiment.add_sweep(_job(experiment, path), [{"a": 1, "b": 1}, [("a", 2)]])
        assert experiment.work_unit_count == 0
