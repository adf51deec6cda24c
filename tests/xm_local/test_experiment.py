"""Launching through the local control plane: real processes, the store read back."""

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from xmanager import xm, xm_local


def _package(experiment, path, **kwargs):
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=path, **kwargs)])
    return executable


REPORTER = """
import sys
from xmanager import xm
flags = dict(arg[2:].split('=', 1) for arg in sys.argv[1:] if arg.startswith('--'))
x = int(flags['x'])
print('stdout of', x)
if x == 3:
    print('boom', file=sys.stderr)
    sys.exit(7)
xm.report(square=x * x, name=flags.get('name', ''))
"""


def test_sweep_records_args_results_and_status(script):
    path = script(REPORTER)
    with pytest.raises(xm.ExperimentFailedError) as failure:
        with xm_local.create_experiment("sweep", tags=["t1"]) as experiment:
            executable = _package(experiment, path)
            for x in range(1, 6):
                experiment.add(xm.Job(executable, xm_local.Local(), args={"x": x, "name": f"n{x}"}))
    message = str(failure.value)
    assert "1 of 5 work units failed" in message
    assert "work unit 3" in message and "exit code 7" in message
    assert os.path.join(str(experiment.experiment_id), "3", "job_py", "stderr.log") in message

    frame = experiment.to_dataframe()
    assert list(frame["x"]) == [1, 2, 3, 4, 5]
    assert list(frame["_status"]) == ["completed", "completed", "failed", "completed", "completed"]
    assert frame.loc[frame.x == 4, "square"].item() == 16
    assert frame.loc[frame.x == 3, "_exit_code"].item() == 7
    assert frame["_pset_runtime"].notna().all()
    assert set(frame["_work_unit_id"]) == {1, 2, 3, 4, 5}
    unit = experiment.work_units[3]
    assert unit.get_status().is_failed
    with open(unit.launched_jobs[0].logs) as log:
        assert "boom" in log.read()


def test_experiment_is_readable_from_a_new_process(script, python):
    path = script(REPORTER)
    with xm_local.create_experiment("readback") as experiment:
        executable = _package(experiment, path)
        experiment.add(xm.Job(executable, xm_local.Local(), args={"x": 2}))
    code = (
        "from xmanager import xm_local\n"
        f"e = xm_local.get_experiment({experiment.experiment_id})\n"
        "df = e.to_dataframe()\n"
        "print(e.title, e.work_unit_count, df['square'].tolist(), df['_status'].tolist())\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=os.environ, check=True).stdout
    assert out.split() == ["readback", "1", "[4]", "['completed']"]


def test_args_reach_the_process_literally(tmp_path, script):
    marker = tmp_path / "pwned"
    out = tmp_path / "argv.json"
    path = script(f"import json, sys\njson.dump(sys.argv[1:], open({str(out)!r}, 'w'))")
    payload = f"$(touch {marker}); `touch {marker}` ' \" ;"
    with xm_local.create_experiment("literal") as experiment:
        executable = _package(experiment, path, args=["pos 1"])
        experiment.add(xm.Job(executable, xm_local.Local(), args={"x": payload, "flag": True}))
    assert json.loads(out.read_text()) == ["pos 1", f"--x={payload}", "--flag"]
    assert not marker.exists()


def test_job_environment(tmp_path, script):
    out = tmp_path / "env.json"
    keys = ["XM_EXPERIMENT_ID", "XM_WORK_UNIT_ID", "XM_JOB_NAME", "XM_RESULTS_PATH", "MY_VAR", "PKG_VAR"]
    path = script(f"import json, os\njson.dump({{k: os.environ.get(k) for k in {keys!r}}}, open({str(out)!r}, 'w'))")
    with xm_local.create_experiment("env") as experiment:
        executable = _package(experiment, path, env_vars={"PKG_VAR": "p"})
        experiment.add(xm.Job(executable, xm_local.Local(), name="trainer", env_vars={"MY_VAR": "m"}))
    env = json.loads(out.read_text())
    assert env["XM_EXPERIMENT_ID"] == str(experiment.experiment_id)
    assert env["XM_WORK_UNIT_ID"] == "1"
    assert env["XM_JOB_NAME"] == "trainer"
    assert env["XM_RESULTS_PATH"].endswith(os.path.join("1", "trainer", "results.json"))
    assert (env["MY_VAR"], env["PKG_VAR"]) == ("m", "p")


def test_shell_safe_arg_expands_from_job_env(tmp_path, script):
    out = tmp_path / "argv.json"
    path = script(f"import json, sys\njson.dump(sys.argv[1:], open({str(out)!r}, 'w'))")
    with xm_local.create_experiment("shellsafe") as experiment:
        executable = _package(experiment, path)
        experiment.add(
            xm.Job(executable, xm_local.Local(), args=[xm.ShellSafeArg("$GREETING-${XM_WORK_UNIT_ID}")], env_vars={"GREETING": "hi"})
        )
    assert json.loads(out.read_text()) == ["hi-1"]


def test_missing_binary_fails_at_package_time(tmp_path):
    missing = tmp_path / "nope" / "a.out"
    with xm_local.create_experiment("missing") as experiment:
        with pytest.raises(FileNotFoundError, match=str(missing)):
            _package(experiment, str(missing))


def test_unsupported_pair_lists_supported_ones():
    with xm_local.create_experiment("pairs") as experiment:
        spec = xm.VeKernel(entry="f", args=["n: int"], sources={"k": "int f(int n) { return n; }"})
        with pytest.raises(TypeError) as error:
            experiment.package([xm.Packageable(spec, xm_local.Local.Spec())])
    assert "VeKernel" in str(error.value)
    assert "Binary on LocalSpec" in str(error.value)


def test_command_list_gets_args_as_positional_parameters(tmp_path):
    out = tmp_path / "out.txt"
    with xm_local.create_experiment("commands") as experiment:
        [executable] = experiment.package(
            [xm.command_list(xm_local.Local.Spec(), ["cd /", f'printf "%s\\n" "$PWD" > {out}; printf "%s\\n"'])]
        )
        experiment.add(xm.Job(executable, xm_local.Local(), args=["a b", "$(whoami)"]))
    stdout = experiment.work_units[1].launched_jobs[0].logs.replace("stderr.log", "stdout.log")
    assert out.read_text() == "/\n"
    assert open(stdout).read() == "a b\n$(whoami)\n"


def _square(x, offset=0):
    print("computing", x)
    xm.report(reported=True)
    return {"y": x * x + offset}


def _broken(x):
    raise ValueError(f"bad x {x}")


def _not_json(x):
    return {"value": object()}


def test_python_callable_jobs():
    with pytest.raises(xm.ExperimentFailedError) as failure:
        with xm_local.create_experiment("callables", max_parallel=2) as experiment:
            square, broken, not_json = experiment.package(
                [
                    xm.python_callable(xm_local.Local.Spec(), _square, args={"offset": 1}),
                    xm.python_callable(xm_local.Local.Spec(), _broken),
                    xm.python_callable(xm_local.Local.Spec(), _not_json),
                ]
            )
            for x in range(4):
                experiment.add(xm.Job(square, xm_local.Local(), args={"x": x}))
            experiment.add(xm.Job(broken, xm_local.Local(), args={"x": 9}))
            experiment.add(xm.Job(not_json, xm_local.Local(), args={"x": 1}))
    assert "2 of 6 work units failed" in str(failure.value)
    frame = experiment.to_dataframe().set_index("_work_unit_id")
    assert frame.loc[[1, 2, 3, 4], "y"].tolist() == [1, 2, 5, 10]
    assert frame.loc[[1, 2, 3, 4], "reported"].tolist() == [True] * 4
    assert "ValueError: bad x 9" in frame.loc[5, "_message"]
    assert "not JSON-serialisable" in frame.loc[6, "_message"]
    stderr = experiment.work_units[5].launched_jobs[0].logs
    assert "Traceback" in open(stderr).read()
    stdout = experiment.work_units[1].launched_jobs[0].logs.replace("stderr.log", "stdout.log")
    assert open(stdout).read() == "computing 0\n"


def test_corrupt_results_file_fails_the_unit(script):
    path = script("import os\nopen(os.environ['XM_RESULTS_PATH'], 'w').write('{not json')")
    with pytest.raises(xm.ExperimentFailedError, match="not valid JSON"):
        with xm_local.create_experiment("corrupt") as experiment:
            experiment.add(xm.Job(_package(experiment, path), xm_local.Local()))
    log = experiment.work_units[1].launched_jobs[0].logs
    assert "not valid JSON" in open(log).read()


def test_job_group_failure_cancels_the_rest(script):
    sleeper = script("import time\ntime.sleep(60)", "sleeper.py")
    failer = script("import sys, time\ntime.sleep(0.3)\nsys.exit(3)", "failer.py")
    start = time.monotonic()
    with pytest.raises(xm.ExperimentFailedError):
        with xm_local.create_experiment("group") as experiment:
            s, f = experiment.package(
                [xm.binary(xm_local.Local.Spec(), sleeper), xm.binary(xm_local.Local.Spec(), failer)]
            )
            experiment.add(xm.JobGroup(server=xm.Job(s, xm_local.Local()), client=xm.Job(f, xm_local.Local())))
    assert time.monotonic() - start < 30
    jobs = xm_local.get_experiment(experiment.experiment_id).work_units[1].jobs
    assert jobs["client"].status.value == "failed" and jobs["client"].exit_code == 3
    assert jobs["server"].status.value == "cancelled"
    unit = experiment.work_units[1]
    assert unit.get_status().is_failed and "client" in unit.get_status().message


def test_concurrency_limit_is_respected(tmp_path, script):
    log = tmp_path / "spans"
    path = script(
        "import sys, time\n"
        f"with open({str(log)!r}, 'a') as f: f.write(f'start {{time.time()}}\\n')\n"
        "time.sleep(0.4)\n"
        f"with open({str(log)!r}, 'a') as f: f.write(f'end {{time.time()}}\\n')\n"
    )
    with xm_local.create_experiment("limit", max_parallel=2) as experiment:
        executable = _package(experiment, path)
        for _ in range(5):
            experiment.add(xm.Job(executable, xm_local.Local()))
    events = sorted((float(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_async_experiment_with_job_generator(script):
    path = script(REPORTER)

    async def generator(work_unit, x):
        [executable] = work_unit.experiment.package([xm.binary(xm_local.Local.Spec(), path)])
        work_unit.add(xm.Job(executable, xm_local.Local(), args={"x": x}))

    async def main():
        async with xm_local.create_experiment("async") as experiment:
            futures = [experiment.add(generator, args={"x": x}) for x in (1, 2)]
            units = [await future for future in futures]
            await units[1].wait_until_complete()
            assert units[1].get_status().is_completed
        return experiment

    experiment = asyncio.run(main())
    frame = experiment.to_dataframe()
    assert frame["x"].tolist() == [1, 2] and frame["square"].tolist() == [1, 4]


def test_sync_job_generator_and_unit_wait(script):
    path = script(REPORTER)

    async def generator(work_unit, x):
        [executable] = work_unit.experiment.package([xm.binary(xm_local.Local.Spec(), path)])
        work_unit.add(xm.Job(executable, xm_local.Local(), args={"x": x}))

    with xm_local.create_experiment("sync-gen") as experiment:
        unit = experiment.add(generator, args={"x": 3}).result()
        with pytest.raises(xm.ExperimentUnitFailedError, match="exit code 7"):
            unit.wait_until_complete()
        ok = experiment.add(generator, args={"x": 5}).result()
        ok.wait_until_complete()
        assert ok.results == {"square": 25, "name": ""}
    # The failure was already raised to the caller, so leaving the block does not raise it again.
    assert experiment.work_unit_count == 2


def test_failing_generator_fails_its_unit():
    async def generator(work_unit, x):
        raise RuntimeError(f"cannot build {x}")

    with pytest.raises(xm.ExperimentFailedError, match="cannot build 4"):
        with xm_local.create_experiment("gen-fail") as experiment:
            experiment.add(generator, args={"x": 4})


def test_metadata_persists_and_lists():
    with xm_local.create_experiment("alpha", tags=["a"], notes="first") as experiment:
        experiment.context.annotations.add_tags("b")
        experiment.context.annotations.set_title("alpha2")
    xm_local.create_experiment("beta", tags=["b"])._close()
    loaded = xm_local.get_experiment(experiment.experiment_id)
    assert loaded.title == "alpha2" and loaded.tags == ["a", "b"]
    assert [e.title for e in xm_local.list_experiments(tag="b")] == ["beta", "alpha2"]
    assert [e.title for e in xm_local.list_experiments(title="alp")] == ["alpha2"]
    assert xm_local.list_experiments(since=time.time() + 60) == []


def test_unknown_experiment_is_not_found():
    with pytest.raises(xm.NotFoundError, match="no experiment 42"):
        xm_local.get_experiment(42)


def test_ten_thousand_units_are_recorded(tmp_path):
    async def noop(work_unit, i):
        return None

    with xm_local.create_experiment("many") as experiment:
        for i in range(10_000):
            experiment.add(noop, args={"i": i})
    frame = xm_local.get_experiment(experiment.experiment_id).to_dataframe()
    assert len(frame) == 10_000 and frame["i"].tolist() == list(range(10_000))
    assert (frame["_status"] == "completed").all()


def test_interrupt_cancels_running_units(tmp_path, python):
    launcher = tmp_path / "launch.py"
    launcher.write_text(
        "import sys\n"
        "from xmanager import xm, xm_local\n"
        "with xm_local.create_experiment('interrupt', max_parallel=2) as e:\n"
        "    [exe] = e.package([xm.binary(xm_local.Local.Spec(), '/bin/sleep')])\n"
        "    for _ in range(3):\n"
        "        e.add(xm.Job(exe, xm_local.Local(), args=['60']))\n"
        "    print(e.experiment_id, flush=True)\n"
    )
    process = subprocess.Popen([python, str(launcher)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    experiment_id = int(process.stdout.readline())
    pids = _pids_once_running(experiment_id, 2).values()  # Both slots run.
    process.send_signal(2)  # SIGINT, as Ctrl-C.
    _, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "cancelling" in stderr
    assert xm_local.get_experiment(experiment_id).status_counts == {"cancelled": 3}
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_sqlalchemy_driver_gives_the_same_results(tmp_path, script):
    pytest.importorskip("sqlalchemy")
    url = f"sqlite+pysqlite:///{tmp_path / 'sa.sqlite3'}"
    path = script(REPORTER)
    with xm_local.create_experiment("sa", database_url=url) as experiment:
        executable = _package(experiment, path)
        for x in (1, 2):
            experiment.add(xm.Job(executable, xm_local.Local(), args={"x": x}))
    frame = xm_local.get_experiment(experiment.experiment_id, database_url=url).to_dataframe()
    assert frame["square"].tolist() == [1, 4]
    assert "sqlalchemy" in sys.modules


def test_get_xid_from_context_inside_with_and_async_with():
    import asyncio

    from xmanager.xm import core

    with xm_local.create_experiment(experiment_title="xid") as experiment:
        assert core.get_xid_from_context() == experiment.experiment_id
    assert core.get_xid_from_context() == -1

    async def main():
        async with xm_local.create_experiment(experiment_title="xid-async") as inner:
            assert core.get_xid_from_context() == inner.experiment_id
        assert core.get_xid_from_context() == -1

    asyncio.run(main())


SLEEPERS = """
import sys
from xmanager import xm, xm_local
with xm_local.create_experiment('sleepers', max_parallel=int(sys.argv[1])) as e:
    [exe] = e.package([xm.binary(xm_local.Local.Spec(), '/bin/sleep')])
    for _ in range(3):
        e.add(xm.Job(exe, xm_local.Local(), args=['60']))
    print(e.experiment_id, flush=True)
print('left the block', flush=True)
"""


def _launch_sleepers(tmp_path, python, max_parallel):
    launcher = tmp_path / "sleepers.py"
    launcher.write_text(SLEEPERS)
    process = subprocess.Popen([python, str(launcher), str(max_parallel)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    return process, int(process.stdout.readline())


def _pids_once_running(experiment_id, count):
    """The pids of the experiment's running jobs, once ``count`` of them run (as another process sees them)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        units = xm_local.get_experiment(experiment_id).work_units.values()
        pids = {unit.work_unit_id: job.handle.data["pid"] for unit in units for job in unit.jobs.values()
                if job.status.value == "running" and job.handle is not None and "pid" in job.handle.data}
        if len(pids) == count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{count} jobs never ran")


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_loaded_experiment_cancels_units_another_process_runs_or_queues(tmp_path, python):
    process, experiment_id = _launch_sleepers(tmp_path, python, max_parallel=1)
    [pid] = _pids_once_running(experiment_id, 1).values()
    assert xm_local.get_experiment(experiment_id).cancel() == 3
    stdout, stderr = process.communicate(timeout=60)  # The launcher's two queued units never start.
    assert process.returncode == 0, stderr
    assert "left the block" in stdout and "failed" not in stderr
    loaded = xm_local.get_experiment(experiment_id)
    assert loaded.status_counts == {"cancelled": 3}
    assert all(unit.get_status().is_cancelled for unit in loaded.work_units.values())
    assert [job.handle for unit in list(loaded.work_units.values())[1:] for job in unit.jobs.values()] == [None, None]
    assert _gone(pid)


def test_a_loaded_unit_stops_from_another_process_and_the_others_run_on(tmp_path, python):
    process, experiment_id = _launch_sleepers(tmp_path, python, max_parallel=3)
    pids = _pids_once_running(experiment_id, 3)
    stop = f"from xmanager import xm_local\nxm_local.get_experiment({experiment_id}).work_units[2].stop()\n"
    subprocess.run([python, "-c", stop], check=True, env=os.environ, timeout=60)
    assert _gone(pids[2])
    units = xm_local.get_experiment(experiment_id).work_units
    assert units[2].get_status().is_cancelled and units[2].get_status().message == "stopped"
    assert [units[u].get_status().status.value for u in (1, 3)] == ["running", "running"]
    assert not _gone(pids[1]) and not _gone(pids[3])
    assert xm_local.get_experiment(experiment_id).cancel("enough") == 2
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    statuses = {u: unit.get_status() for u, unit in xm_local.get_experiment(experiment_id).work_units.items()}
    assert [(s.status.value, s.message) for s in statuses.values()] == [
        ("cancelled", "enough"), ("cancelled", "stopped"), ("cancelled", "enough")]
    assert _gone(pids[1]) and _gone(pids[3])


def test_a_loaded_experiment_without_units_to_cancel():
    with xm_local.create_experiment("done") as experiment:
        pass
    loaded = xm_local.get_experiment(experiment.experiment_id)
    assert loaded.cancel() == 0
    with loaded:  # Entering and leaving a loaded experiment that launched nothing is a no-op.
        pass
