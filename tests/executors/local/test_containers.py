"""Container jobs on the local executor, run on a real private Docker engine (started once per session)."""

import json
import os
import time

import docker_support
import pytest
from xmanager import xm, xm_local
from xmanager.executors.images import build as images
from xmanager.executors.local import DockerOptions
from xmanager.executors.local import containers as container_jobs

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(request, monkeypatch):
    """The session's private Docker engine (DOCKER_HOST set for this test)."""
    return docker_support.use_engine(request, monkeypatch)


# The test image has no xmanager; the job writes its results file itself, as any container can.
APP = """\
import json, os, sys, time
flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--"))
x = int(flags.get("x", "0"))
print("stdout of", x, "in", os.getcwd())
print("stderr of", x, file=sys.stderr)
if "sleep" in flags:
    time.sleep(float(flags["sleep"]))
if "hostname" in flags:
    import socket
    print("hostname", socket.gethostname())
if "write" in flags:
    with open(flags["write"], "w") as handle:
        handle.write(f"written by {x}")
if x == 3:
    sys.exit(7)
with open(os.environ["XM_RESULTS_PATH"], "w") as handle:
    json.dump({"square": x * x, "experiment": os.environ["XM_EXPERIMENT_ID"]}, handle)
"""


@pytest.fixture
def app(tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "main.py").write_text(APP)
    return folder


def _package(experiment, spec):
    [executable] = experiment.package([xm.Packageable(executable_spec=spec, executor_spec=xm_local.Local.Spec())])
    return executable


def _python(app, image, **extra):
    return xm.PythonContainer(entrypoint=xm.ModuleName("main"), path=str(app), base_image=image, **extra)


def _containers(env, experiment_id):
    return env.client.containers.list(all=True, filters={"label": f"{container_jobs.LABEL_EXPERIMENT}={experiment_id}"})


def test_python_container_sweep_records_statuses_logs_and_results(engine, app):
    with pytest.raises(xm.ExperimentFailedError) as failure:
        with xm_local.create_experiment("containers") as experiment:
            executable = _package(experiment, _python(app, engine.python_image))
            assert executable.image.startswith("xm-local/app:")
            for x in (1, 2, 3):
                experiment.add(xm.Job(executable, xm_local.Local(), args={"x": x}))
    assert "1 of 3 work units failed" in str(failure.value) and "exit code 7" in str(failure.value)
    frame = experiment.to_dataframe()
    assert list(frame["_status"]) == ["completed", "completed", "failed"]
    assert frame.loc[frame.x == 2, "square"].item() == 4
    assert frame.loc[frame.x == 2, "experiment"].item() == str(experiment.experiment_id)
    assert frame.loc[frame.x == 3, "_exit_code"].item() == 7
    job_dir = os.path.dirname(experiment.work_units[2].launched_jobs[0].logs)
    with open(os.path.join(job_dir, "stdout.log")) as log:
        assert log.read() == "stdout of 2 in /workdir/app\n"
    with open(os.path.join(job_dir, "stderr.log")) as log:
        assert log.read() == "stderr of 2\n"
    assert _containers(engine, experiment.experiment_id) == []  # Removed after their exit.


def test_packaging_twice_builds_once(engine, app):
    spec = _python(app, engine.python_image)
    with xm_local.create_experiment("cache") as experiment:
        first = _package(experiment, spec)
        second = _package(experiment, spec)
    assert first.image_id == second.image_id and first.image == second.image
    (app / "main.py").write_text(APP + "\n# changed\n")
    with xm_local.create_experiment("cache") as experiment:
        third = _package(experiment, spec)
    assert third.image != first.image


def test_cancel_stops_and_removes_the_container(engine, app):
    with xm_local.create_experiment("cancel") as experiment:
        executable = _package(experiment, _python(app, engine.python_image))
        unit = experiment.add(xm.Job(executable, xm_local.Local(), args={"x": 1, "sleep": 60})).result()
        deadline = time.monotonic() + 60
        while not [c for c in _containers(engine, experiment.experiment_id) if c.status == "running"]:
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.05)
        unit.stop()
    assert unit.get_status().is_cancelled
    assert list(experiment.to_dataframe()["_status"]) == ["cancelled"]
    assert _containers(engine, experiment.experiment_id) == []


def test_docker_options_volume_network_and_extra(engine, app, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    options = DockerOptions(volumes={str(shared): "/shared"}, network="none", extra={"hostname": "xm-test-host"})
    with xm_local.create_experiment("options") as experiment:
        executable = _package(experiment, _python(app, engine.python_image))
        experiment.add(
            xm.Job(
                executable, xm_local.Local(docker_options=options), args={"x": 5, "write": "/shared/out", "hostname": 1}
            )
        )
    assert (shared / "out").read_text() == "written by 5"
    assert experiment.work_units[1].results["square"] == 25
    with open(experiment.work_units[1].launched_jobs[0].logs.replace("stderr.log", "stdout.log")) as log:
        assert "hostname xm-test-host" in log.read()  # extra= reached containers.create.


def test_dockerfile_and_container_tarball_specs_run(engine, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {engine.python_image}\nRUN echo baked > /baked.txt\n"
        'ENTRYPOINT ["sh", "-c", "cat /baked.txt; echo args: \\"$@\\"; '
        'echo \'{\\"ok\\": 1}\' > $XM_RESULTS_PATH", "sh"]\n'
    )
    built = images.ensure_image(xm.Dockerfile(path=str(context)), launch_dir=str(tmp_path), client=engine.client)
    tarball = tmp_path / "image.tar"
    with open(tarball, "wb") as handle:
        for chunk in engine.client.images.get(built.image_id).save():
            handle.write(chunk)
    with xm_local.create_experiment("specs") as experiment:
        from_dockerfile = _package(experiment, xm.Dockerfile(path=str(context)))
        from_tar = _package(experiment, xm.Container(image_path=str(tarball)))
        assert from_tar.image_id == from_dockerfile.image_id == built.image_id
        experiment.add(xm.Job(from_dockerfile, xm_local.Local(), args=["a b", "c"]))
        experiment.add(xm.Job(from_tar, xm_local.Local(), args=["d"]))
    for unit_id, expected in ((1, "args: a b c"), (2, "args: d")):
        unit = experiment.work_units[unit_id]
        assert unit.results == {"ok": 1}
        with open(unit.launched_jobs[0].logs.replace("stderr.log", "stdout.log")) as log:
            assert log.read().splitlines() == ["baked", expected]


def test_missing_base_image_fails_packaging_with_a_clear_error(engine, app):
    with xm_local.create_experiment("missing") as experiment:
        with pytest.raises(images.ImageNotFoundError) as failure:
            _package(experiment, _python(app, "localhost/not-there:1"))
    message = str(failure.value)
    assert "'localhost/not-there:1'" in message and "could not be pulled" in message and "Fix:" in message


def test_job_whose_image_vanished_fails_with_the_reason(engine, app):
    with pytest.raises(xm.ExperimentFailedError, match="could not start"):
        with xm_local.create_experiment("vanished") as experiment:
            executable = _package(experiment, _python(app, engine.python_image))
            executable.image_id = "sha256:" + "0" * 64
            executable.image = "xm-local/gone:0"
            experiment.add(xm.Job(executable, xm_local.Local(), args={"x": 1}))
    with open(experiment.work_units[1].launched_jobs[0].logs) as log:
        assert "not in the Docker engine" in log.read()


# ---- no engine needed ------------------------------------------------------------------------------
def test_docker_options_reject_bad_values():
    with pytest.raises(ValueError, match="ports"):
        DockerOptions(ports={"http": 80})
    with pytest.raises(ValueError, match="volumes.*relative/dir.*absolute"):
        DockerOptions(volumes={"relative/dir": "/data"})
    with pytest.raises(ValueError, match="container path"):
        DockerOptions(volumes={"/tmp": "data"})
    with pytest.raises(ValueError, match="gpus"):
        DockerOptions(gpus=0)
    with pytest.raises(TypeError, match="docker_options"):
        xm_local.Local(docker_options={"ports": {}})


def test_create_kwargs_maps_options_gpus_and_the_job_folder(tmp_path):
    executable = container_jobs.ContainerExecutable(name="x", image="xm-local/x:1", image_id="sha256:abc")
    options = DockerOptions(ports={8080: 18080, "53/udp": ("127.0.0.1", 1053)}, network="host", gpus=2)
    kwargs = container_jobs.create_kwargs(
        executable, xm_local.Local(docker_options=options), ("--a=1",), {"K": "V"}, str(tmp_path), {"l": "1"}
    )
    assert kwargs["image"] == "sha256:abc" and kwargs["command"] == ["--a=1"] and kwargs["environment"] == {"K": "V"}
    assert kwargs["volumes"] == {str(tmp_path): {"bind": str(tmp_path), "mode": "rw"}}
    assert kwargs["ports"] == {"8080": 18080, "53/udp": ("127.0.0.1", 1053)}
    assert kwargs["network_mode"] == "host" and kwargs["init"] is True
    [request] = kwargs["device_requests"]
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]
    from_requirements = container_jobs.create_kwargs(
        executable, xm_local.Local(requirements=xm.JobRequirements(local_gpu=1)), (), {}, str(tmp_path), {}
    )
    assert from_requirements["device_requests"][0]["Count"] == 1
    assert "device_requests" not in container_jobs.create_kwargs(
        executable, xm_local.Local(), (), {}, str(tmp_path), {}
    )


def test_results_env_points_into_the_mounted_job_folder(tmp_path):
    env = {"XM_RESULTS_PATH": str(tmp_path / "results.json")}
    executable = container_jobs.ContainerExecutable(name="x", image="i", image_id="sha256:1")
    kwargs = container_jobs.create_kwargs(executable, xm_local.Local(), (), env, str(tmp_path), {})
    mounted = [host for host, bind in kwargs["volumes"].items() if bind["bind"] == host]
    assert os.path.dirname(kwargs["environment"]["XM_RESULTS_PATH"]) in mounted
    json.dumps(kwargs["environment"])  # Plain data: recorded as the job's env.


def test_a_handle_refreshes_and_cancels_from_another_backend(engine, app, tmp_path):
    import queue

    from xmanager.executors.api import BackendSettings, JobLaunch, UnitLaunch
    from xmanager.executors.local.backend import LocalBackend
    from xmanager.xm.status import Status

    ref = images.ensure_image(_python(app, engine.python_image), launch_dir="/")
    executable = container_jobs.ContainerExecutable(name="app", image=ref.tag, image_id=ref.image_id)
    job = JobLaunch(
        "app",
        executable,
        xm_local.Local(),
        ("--x=1", "--sleep=60"),
        {},
        {"XM_EXPERIMENT_ID": "77"},
        str(tmp_path / "job"),
    )
    updates = queue.SimpleQueue()
    launcher = LocalBackend(updates.put, BackendSettings(max_parallel=1))
    launcher.launch([UnitLaunch(77, 1, (job,))])
    running = updates.get(timeout=60)
    assert running.status is Status.RUNNING and running.handle.data["container"]
    handle = running.handle
    other = LocalBackend(lambda update: None, BackendSettings())  # As another process would, from the stored handle.
    [status] = other.refresh([handle])
    assert status.status is Status.RUNNING
    other.cancel([handle])
    final = updates.get(timeout=60)
    assert final.status is Status.FAILED and final.message == "killed by SIGTERM"
    [status] = other.refresh([handle])
    assert status.status is Status.FAILED and "gone" in status.message
    assert _containers(engine, 77) == []
    launcher.close()
    other.close()


def test_xmanager_cancel_from_another_process_stops_a_container_unit(engine, app, tmp_path):
    import subprocess
    import sys

    launcher = tmp_path / "launch.py"
    launcher.write_text(
        "from xmanager import xm, xm_local\n"
        "with xm_local.create_experiment('cli cancel') as e:\n"
        f"    [exe] = e.package([xm.python_container(xm_local.Local.Spec(), xm.ModuleName('main'), {str(app)!r},"
        f" base_image={engine.python_image!r})])\n"
        "    e.add(xm.Job(exe, xm_local.Local(), args={'x': 1, 'sleep': 60}))\n"
        "    print(e.experiment_id, flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(launcher)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        experiment_id = int(process.stdout.readline())
        deadline = time.monotonic() + 60
        while not [c for c in _containers(engine, experiment_id) if c.status == "running"]:
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.05)
        experiment = xm_local.get_experiment(experiment_id)
        while not any(job.handle for job in experiment._store.jobs(experiment_id)):  # The handle is recorded.
            assert time.monotonic() < deadline, "no handle recorded"
            time.sleep(0.05)
        xmanager = os.path.join(os.path.dirname(sys.executable), "xmanager")
        result = subprocess.run([xmanager, "cancel", str(experiment_id)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        process.wait(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert [u.status for u in xm_local.get_experiment(experiment_id)._store.units(experiment_id)] == ["cancelled"]
    assert _containers(engine, experiment_id) == []


def test_bad_extra_option_fails_the_job_naming_it(engine, app):
    options = DockerOptions(extra={"no_such_option": 1})
    with pytest.raises(xm.ExperimentFailedError, match="could not create the container.*no_such_option"):
        with xm_local.create_experiment("bad extra") as experiment:
            executable = _package(experiment, _python(app, engine.python_image))
            experiment.add(xm.Job(executable, xm_local.Local(docker_options=options), args={"x": 1}))


def test_stream_output_echoes_prefixed_lines(engine, app, capsys):
    with xm_local.create_experiment("stream") as experiment:
        executable = _package(experiment, _python(app, engine.python_image))
        experiment.add(xm.Job(executable, xm_local.Local(experimental_stream_output=True), args={"x": 4}))
    assert "[1/app] stdout of 4 in /workdir/app\n" in capsys.readouterr().out
    with open(experiment.work_units[1].launched_jobs[0].logs.replace("stderr.log", "stdout.log")) as log:
        assert log.read() == "stdout of 4 in /workdir/app\n"  # The log itself has no prefix.


def test_xmanagers_gcs_mount_and_interactive_options(tmp_path, monkeypatch):
    executable = container_jobs.ContainerExecutable(name="x", image="xm-local/x:1", image_id="sha256:abc")

    def kwargs(options):
        executor = xm_local.Local(docker_options=options)
        return container_jobs.create_kwargs(executable, executor, (), {}, str(tmp_path / "job"), {})

    monkeypatch.setenv("HOME", str(tmp_path))
    assert "tty" not in kwargs(DockerOptions()) and str(tmp_path / "gcs") not in kwargs(DockerOptions())["volumes"]
    (tmp_path / "gcs").mkdir()
    assert kwargs(DockerOptions())["volumes"][str(tmp_path / "gcs")] == {"bind": "/gcs", "mode": "rw"}
    assert str(tmp_path / "gcs") not in kwargs(DockerOptions(mount_gcs_path=False))["volumes"]
    interactive = kwargs(DockerOptions(ports=None, volumes=None, interactive=True))
    assert interactive["tty"] is True and interactive["stdin_open"] is True
