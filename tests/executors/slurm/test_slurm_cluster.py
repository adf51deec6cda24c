"""The Slurm executor against a real slurmctld/slurmd: arrays, results, failures, time limits,
cancel, resume, bad input, and a launch script that exits while its units run on."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from xmanager import xm, xm_local
from xmanager.executors.slurm.cluster import SlurmError

pytestmark = pytest.mark.integration

REPORTER = """
import json, os, sys, time
from xmanager import xm
flags = dict(arg[2:].split('=', 1) for arg in sys.argv[1:] if arg.startswith('--'))
print('argv', json.dumps(sys.argv[1:]))
if flags.get('sleep'):
    time.sleep(float(flags['sleep']))
if flags.get('fail') == flags.get('a'):
    print('failing on purpose', file=sys.stderr)
    sys.exit(3)
xm.report(argv=sys.argv[1:], doubled=2 * int(flags['a']), host=os.uname().nodename)
"""

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")


def _job(experiment, path, **executor):
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=path)])
    return lambda **args: xm.Job(executable, xm_local.Slurm(**executor), args=args)


def _squeue(cluster):
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, env=os.environ)
    return out.stdout.split()


def test_sweep_runs_as_arrays_and_results_come_back(slurm_cluster, script):
    path = script(REPORTER)
    params = xm.pgrid(xm.plist("a", range(7)), xm.plist("fail", ["5"]))
    calls = []
    with xm_local.create_experiment("slurm sweep") as experiment:
        job = _job(experiment, path, psets_per_task=2, max_array_size=3)
        from xmanager.executors.slurm import cluster as cluster_module

        real = cluster_module.Cluster.submit

        def counting(self, text, *, test_only=False):
            calls.append(test_only)
            return real(self, text, test_only=test_only)

        cluster_module.Cluster.submit = counting
        try:
            futures = experiment.add_sweep(job(), params)
        finally:
            cluster_module.Cluster.submit = real
    assert len(futures) == 7
    # 7 units, 2 per task -> 4 tasks, 3 tasks per array -> 2 arrays; one --test-only check first.
    assert calls == [True, False, False]
    with pytest.raises(xm.ExperimentFailedError, match="1 of 7 work units failed"):
        experiment.wait_until_complete()
    frame = experiment.to_dataframe().sort_values("a")
    assert frame["_status"].tolist() == ["completed"] * 5 + ["failed", "completed"]
    assert frame.loc[frame["a"] == 5, "_exit_code"].tolist() == [3]
    done = frame[frame["_status"] == "completed"]
    assert (done["doubled"] == 2 * done["a"]).all()
    assert set(frame["_pset_seq"]) == set(range(7))


def test_a_launch_script_exits_and_another_process_follows_the_units(slurm_cluster, script, tmp_path):
    path = script(REPORTER)
    launcher = tmp_path / "launch.py"
    launcher.write_text(
        textwrap.dedent(
            f"""
            from xmanager import xm, xm_local

            def main(argv):
                with xm_local.create_experiment("detached") as experiment:
                    [exe] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path={path!r})])
                    experiment.add_sweep(xm.Job(exe, xm_local.Slurm(), args={{"sleep": "2"}}),
                                         xm.plist("a", [1, 2, 3]))
                    print("EXPERIMENT", experiment.experiment_id, flush=True)
            """
        )
    )
    started = time.monotonic()
    launched = subprocess.run([XMANAGER, "launch", str(launcher)], capture_output=True, text=True, timeout=60)
    assert launched.returncode == 0, launched.stderr
    assert time.monotonic() - started < 15  # It did not wait for the jobs.
    assert "run on in their cluster queue" in launched.stderr
    experiment_id = launched.stdout.split("EXPERIMENT")[1].split()[0]
    follower = subprocess.run(
        [sys.executable, "-c",
         f"from xmanager import xm_local; e = xm_local.get_experiment({experiment_id}); e.wait_until_complete(); "
         "print(e.to_dataframe()[['a', 'doubled', '_status']].to_json(orient='records'))"],
        capture_output=True, text=True, timeout=120,
    )
    assert follower.returncode == 0, follower.stderr
    rows = json.loads(follower.stdout.strip().splitlines()[-1])
    assert sorted((row["a"], row["doubled"], row["_status"]) for row in rows) == [
        (1, 2, "completed"), (2, 4, "completed"), (3, 6, "completed")
    ]
    shown = subprocess.run([XMANAGER, "show", experiment_id], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.count("completed") >= 3
    logs = subprocess.run([XMANAGER, "logs", experiment_id, "1"], capture_output=True, text=True)
    assert 'argv ["--a=1", "--sleep=2"]' in logs.stdout or 'argv ["--sleep=2", "--a=1"]' in logs.stdout


def test_xmanager_show_refreshes_units_of_a_script_that_exited(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("show refreshes") as experiment:
        experiment.add_sweep(_job(experiment, path)(), xm.plist("a", [1, 2]))
    deadline = time.monotonic() + 60
    shown = ""
    while time.monotonic() < deadline:
        shown = subprocess.run([XMANAGER, "show", str(experiment.experiment_id)], capture_output=True, text=True).stdout
        if "units: 2 completed" in shown:
            break
        time.sleep(0.5)
    assert "units: 2 completed" in shown


def test_awkward_argument_values_reach_the_job_intact(slurm_cluster, script):
    path = script(REPORTER)
    awkward = ["two words", "it's \"quoted\"", "$HOME and `id`", "line one\nline two", "; rm -rf /tmp/nothing"]
    with xm_local.create_experiment("awkward") as experiment:
        job = _job(experiment, path)
        experiment.add_sweep(job(), [{"a": index, "text": value} for index, value in enumerate(awkward)])
    experiment.wait_until_complete()
    frame = experiment.to_dataframe().sort_values("a")
    assert [argv for argv in frame["argv"]] == [[f"--a={i}", f"--text={v}"] for i, v in enumerate(awkward)]


def _square(x):
    return {"square": x * x}


def test_python_callables_run_on_the_cluster(slurm_cluster):
    with xm_local.create_experiment("callables") as experiment:
        [square] = experiment.package([xm.python_callable(xm_local.Slurm.Spec(), _square)])
        experiment.add_sweep(xm.Job(square, xm_local.Slurm()), xm.plist("x", [2, 3]))
    experiment.wait_until_complete()
    assert sorted(experiment.to_dataframe()["square"]) == [4, 9]


def test_cancel_stops_queued_and_running_units(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("cancel me") as experiment:
        job = _job(experiment, path)
        experiment.add_sweep(job(sleep="300"), xm.plist("a", [1, 2]))
    time.sleep(1)
    result = subprocess.run([XMANAGER, "cancel", str(experiment.experiment_id)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = xm_local.get_experiment(experiment.experiment_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        loaded = xm_local.get_experiment(experiment.experiment_id)
        loaded.refresh()
        if set(loaded.status_counts) == {"cancelled"}:
            break
        time.sleep(0.5)
    assert xm_local.get_experiment(experiment.experiment_id).status_counts == {"cancelled": 2}


def test_cancel_of_one_unit_leaves_the_others_running(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("cancel one") as experiment:
        experiment.add_sweep(_job(experiment, path)(sleep="3"), xm.plist("a", [1, 2]))
    result = subprocess.run([XMANAGER, "cancel", str(experiment.experiment_id), "1"], capture_output=True, text=True)
    assert result.returncode == 0 and "cancelled 1 work unit" in result.stdout, result.stderr
    loaded = xm_local.get_experiment(experiment.experiment_id)
    loaded.wait_until_complete()
    frame = loaded.to_dataframe().sort_values("_work_unit_id")
    assert frame["_status"].tolist() == ["cancelled", "completed"]


def test_resume_submits_only_what_did_not_complete(slurm_cluster, script):
    path = script(REPORTER)
    params = xm.plist("a", [1, 2, 3])
    with xm_local.create_experiment("resume") as experiment:
        experiment.add_sweep(_job(experiment, path)(fail="2"), params)
    with pytest.raises(xm.ExperimentFailedError):
        experiment.wait_until_complete()
    with xm_local.get_experiment(experiment.experiment_id) as again:
        exe = again.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=path)])[0]
        futures = again.add_sweep(xm.Job(exe, xm_local.Slurm(), args={"fail": "none"}), params, skip_completed=True)
        assert [future.result().work_unit_id for future in futures] == [4]
    again.wait_until_complete()
    frame = again.to_dataframe().sort_values("_work_unit_id")
    assert frame["_status"].tolist() == ["completed", "failed", "completed", "completed"]
    assert frame["a"].tolist() == [1, 2, 3, 2]


def test_a_bad_partition_is_refused_before_anything_is_queued(slurm_cluster, script):
    path = script(REPORTER)
    before = _squeue(slurm_cluster)
    with pytest.raises(xm.ExperimentFailedError, match="2 of 2 work units failed"):
        with xm_local.create_experiment("bad partition") as experiment:
            job = _job(experiment, path, partition="no-such-partition")
            with pytest.raises(SlurmError, match=r"(?s)work unit\(s\) 1, 2.*invalid partition"):
                experiment.add_sweep(job(), xm.plist("a", [1, 2]))
    assert _squeue(slurm_cluster) == before
    frame = experiment.to_dataframe()
    assert set(frame["_status"]) == {"failed"}
    assert frame["_message"].str.contains("invalid partition").all()


def test_a_time_limit_beyond_the_partition_is_refused(slurm_cluster, script):
    path = script(REPORTER)
    with pytest.raises(xm.ExperimentFailedError):
        with xm_local.create_experiment("too long") as experiment:
            job = _job(experiment, path, partition="short", time="10:00")
            with pytest.raises(SlurmError, match="Slurm refused work unit"):
                experiment.add(job(a="1"))


def test_invalid_time_strings_are_refused_when_the_executor_is_made():
    with pytest.raises(ValueError, match="not a Slurm time limit"):
        xm_local.Slurm(time="2 hours")


def test_missing_sbatch_names_the_package(slurm_cluster, script, monkeypatch, tmp_path):
    path = script(REPORTER)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(xm.ExperimentFailedError, match="not found on PATH"):
        with xm_local.create_experiment("no sbatch") as experiment:
            job = _job(experiment, path)
            with pytest.raises(SlurmError, match="not found on PATH; install the Slurm client"):
                experiment.add(job(a="1"))


def test_a_job_killed_by_its_time_limit_is_reported_as_timeout(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("timeout") as experiment:
        experiment.add(_job(experiment, path, time="0:01")(a="1", sleep="600"))
    with pytest.raises(xm.ExperimentFailedError, match="TIMEOUT"):
        experiment.wait_until_complete()
    assert experiment.to_dataframe()["_status"].tolist() == ["failed"]


def test_a_job_group_runs_as_one_allocation_of_srun_steps(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("group") as experiment:
        [exe] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=path)])
        experiment.add(xm.JobGroup(
            left=xm.Job(exe, xm_local.Slurm(), args={"a": "1"}),
            right=xm.Job(exe, xm_local.Slurm(), args={"a": "2"}),
        ))
    experiment.wait_until_complete()
    jobs = experiment._store.jobs(experiment.experiment_id)
    assert {job.status for job in jobs} == {"completed"}
    assert len({job.handle["data"]["job_id"] for job in jobs}) == 1  # One sbatch, one allocation.
    assert experiment.to_dataframe()["doubled"].tolist() in ([2], [4])  # The unit's results (last job wins).


def test_a_failing_job_stops_the_rest_of_its_group(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("group fails") as experiment:
        [exe] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=path)])
        experiment.add(xm.JobGroup(
            failing=xm.Job(exe, xm_local.Slurm(), args={"a": "1", "fail": "1"}),
            sleeping=xm.Job(exe, xm_local.Slurm(), args={"a": "2", "sleep": "300"}),
        ))
    started = time.monotonic()
    with pytest.raises(xm.ExperimentFailedError, match="exit code 3"):
        experiment.wait_until_complete()
    assert time.monotonic() - started < 60
    statuses = {job.job_name: job.status for job in experiment._store.jobs(experiment.experiment_id)}
    assert statuses["failing"] == "failed" and statuses["sleeping"] in ("failed", "cancelled")


def test_node_failure_is_reported_with_slurms_reason(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("node failure") as experiment:
        experiment.add(_job(experiment, path)(a="1", sleep="300"))
    _wait_running(experiment)
    subprocess.run(["scontrol", "update", "NodeName=localhost", "State=DOWN", "Reason=test"], check=True)
    try:
        with pytest.raises(xm.ExperimentFailedError, match="NODE_FAIL"):
            experiment.wait_until_complete()
    finally:
        _resume_node()


def _wait_running(experiment):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        experiment.refresh()
        if experiment.status_counts.get("running"):
            return
        time.sleep(0.3)
    raise AssertionError("the unit did not start")


def _resume_node():
    """Brings the node back after a test set it DOWN (RESUME is refused while it still cleans up)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
        if state.startswith(("idle", "mixed", "alloc")):
            return
        subprocess.run(["scontrol", "update", "NodeName=localhost", "State=RESUME"], capture_output=True)
        time.sleep(0.3)
    raise AssertionError(f"the node did not come back (state {state!r})")


def test_a_unit_with_a_requeue_limit_survives_a_node_failure(slurm_cluster, script):
    path = script(REPORTER)
    with xm_local.create_experiment("requeue") as experiment:
        experiment.add(_job(experiment, path, requeue_limit=1)(a="4", sleep="3"))
    _wait_running(experiment)
    subprocess.run(["scontrol", "update", "NodeName=localhost", "State=DOWN", "Reason=test"], check=True)
    _resume_node()
    [job] = experiment._store.jobs(experiment.experiment_id)
    task = f"{job.handle['data']['job_id']}_{job.handle['data']['task']}"
    # Slurm delays a requeued job's start by minutes; make it eligible now to keep the test short.
    subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], capture_output=True)
    experiment.wait_until_complete()
    assert experiment.to_dataframe()["doubled"].tolist() == [8]
