"""The local backend's process jobs: what a job's process gets (environment, descriptors, session,
signals, logs) and how a start that fails is reported. Real processes, through the launch API."""

import json
import os
import signal
import stat

import pytest
from xmanager import xm, xm_local

PROBE = """
import json, os, signal, sys
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2)
json.dump({
    "env": {key: os.environ.get(key) for key in sys.argv[2:]},
    "sid": os.getsid(0), "pid": os.getpid(), "pgid": os.getpgid(0),
    "stdin_rdev": os.fstat(0).st_rdev, "stdin_is_char": __import__("stat").S_ISCHR(os.fstat(0).st_mode),
    "stdin_read": os.read(0, 1).decode(),
    "fds": [fd for fd in fds if os.path.exists(f"/proc/self/fd/{fd}")],
}, open(sys.argv[1], "w"))
print("to stdout")
print("to stderr", file=sys.stderr)
"""


def _run(executable_path, out, keys, *, env_vars=None, job_env=None, stream=False):
    with xm_local.create_experiment("backend") as experiment:
        [executable] = experiment.package(
            [xm.binary(executor_spec=xm_local.Local.Spec(), path=executable_path, env_vars=env_vars or {})]
        )
        experiment.add(xm.Job(executable, xm_local.Local(experimental_stream_output=stream), name="probe",
                              args=[str(out), *keys], env_vars=job_env or {}))
    return experiment, json.loads(out.read_text())


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_environment_precedence(tmp_path, script, monkeypatch):
    """os.environ < the executable's env_vars < the job's env_vars < XM_* and the backend's own."""
    monkeypatch.setenv("IN_ALL", "os")
    monkeypatch.setenv("IN_OS_AND_EXE", "os")
    monkeypatch.setenv("ONLY_OS", "os")
    monkeypatch.setenv("PYTHONUNBUFFERED", "0")
    keys = ["IN_ALL", "IN_OS_AND_EXE", "ONLY_OS", "ONLY_JOB", "XM_WORK_UNIT_ID", "XM_JOB_NAME",
            "XM_RESULTS_PATH", "PYTHONUNBUFFERED"]
    experiment, seen = _run(
        script(PROBE), tmp_path / "seen.json", keys,
        env_vars={"IN_ALL": "exe", "IN_OS_AND_EXE": "exe", "XM_JOB_NAME": "exe"},
        job_env={"IN_ALL": "job", "ONLY_JOB": "job", "XM_WORK_UNIT_ID": "job", "PYTHONUNBUFFERED": "0"},
    )
    work_dir = os.path.dirname(experiment.work_units[1].launched_jobs[0].logs)
    assert seen["env"] == {
        "IN_ALL": "job", "IN_OS_AND_EXE": "exe", "ONLY_OS": "os", "ONLY_JOB": "job",
        "XM_WORK_UNIT_ID": "1", "XM_JOB_NAME": "probe",
        "XM_RESULTS_PATH": os.path.join(work_dir, "results.json"), "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_process_has_its_session_dev_null_stdin_and_no_inherited_fds(tmp_path, script):
    inherited = os.open(os.devnull, os.O_RDONLY)  # Opened and made inheritable before the launch.
    os.set_inheritable(inherited, True)
    try:
        experiment, seen = _run(script(PROBE), tmp_path / "seen.json", [])
    finally:
        os.close(inherited)
    assert seen["sid"] == seen["pid"] == seen["pgid"]
    assert seen["stdin_is_char"] and seen["stdin_rdev"] == os.stat(os.devnull).st_rdev
    assert seen["stdin_read"] == ""
    assert seen["fds"] == []
    work_dir = os.path.dirname(experiment.work_units[1].launched_jobs[0].logs)
    assert open(os.path.join(work_dir, "stdout.log")).read() == "to stdout\n"
    assert open(os.path.join(work_dir, "stderr.log")).read() == "to stderr\n"


def test_streamed_stdout_goes_to_the_log_and_prefixed_to_ours(tmp_path, script, capfd):
    experiment, _ = _run(script(PROBE), tmp_path / "seen.json", [], stream=True)
    work_dir = os.path.dirname(experiment.work_units[1].launched_jobs[0].logs)
    assert open(os.path.join(work_dir, "stdout.log")).read() == "to stdout\n"
    assert "[1/probe] to stdout\n" in capfd.readouterr().out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_signals_python_ignores_are_at_their_defaults_in_a_job(tmp_path):
    """Python ignores SIGPIPE and SIGXFSZ; a job's process starts with them at their defaults (as Popen's
    restore_signals), so a shell pipeline into ``head`` ends quietly."""
    out = tmp_path / "sigign"
    with xm_local.create_experiment("signals") as experiment:
        _add_command(experiment, f"grep SigIgn: /proc/self/status > {out}", {})
    ignored = int(out.read_text().split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def _add_command(experiment, line, job_env):
    [executable] = experiment.package([xm.command_list(xm_local.Local.Spec(), [line])])
    experiment.add(xm.Job(executable, xm_local.Local(), env_vars=job_env))


def test_a_command_is_looked_up_on_the_jobs_path(tmp_path):
    """``bash`` (a CommandList's interpreter) is found on the PATH the job sets, as Popen would."""
    folder = tmp_path / "bin"
    folder.mkdir()
    marker = tmp_path / "marker"
    shim = folder / "bash"
    shim.write_text(f"#!/bin/sh\necho found > {marker}\nexec /bin/bash \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "out"
    with xm_local.create_experiment("commands") as experiment:
        _add_command(experiment, f"echo ran > {out}",
                     {"PATH": f"{tmp_path / 'empty'}:{folder}:{os.environ['PATH']}"})
    assert marker.read_text() == "found\n"
    assert out.read_text() == "ran\n"


def test_a_command_missing_from_the_path_fails_the_unit_with_the_reason(tmp_path):
    with pytest.raises(xm.ExperimentFailedError):
        with xm_local.create_experiment("commands") as experiment:
            _add_command(experiment, "true", {"PATH": str(tmp_path / "nothing-here")})
    unit = experiment.work_units[1]
    [job] = unit.jobs.values()
    reason = "could not start: [Errno 2] No such file or directory: 'bash'"
    assert (job.status.value, job.message) == ("failed", reason)
    assert f"xmanager: {reason}" in open(unit.launched_jobs[0].logs).read()


def test_a_job_killed_by_a_signal_says_so(script):
    path = script("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    with pytest.raises(xm.ExperimentFailedError, match="killed by SIGTERM"):
        with xm_local.create_experiment("signal") as experiment:
            [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=path)])
            experiment.add(xm.Job(executable, xm_local.Local(experimental_stream_output=False)))
    [job] = experiment.work_units[1].jobs.values()
    assert job.exit_code == -signal.SIGTERM
