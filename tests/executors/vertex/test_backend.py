"""The Vertex executor end to end: the real GAPIC client against the local JobService over TLS."""

import os
import re
import subprocess
import sys

import pytest
from vertex_servicer import PROJECT, write_key_file
from xmanager import xm, xm_local
from xmanager.executors.api import ServiceUnavailableError
from xmanager.executors.vertex.backend import GET_LIMIT, VertexError
from xmanager.executors.vertex.client import VertexConfigError

pytestmark = pytest.mark.integration

IMAGE = "us-docker.pkg.dev/xm-test/repo/trainer:1"
XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")


def _package(experiment, image=IMAGE, **kwargs):
    [executable] = experiment.package([xm.container(xm_local.Vertex.Spec(), image, **kwargs)])
    return executable


def _statuses(experiment):
    experiment._store.writer.flush()
    return {unit.work_unit_id: unit.status for unit in experiment._store.units(experiment.experiment_id)}


def test_units_become_custom_jobs_and_are_followed(vertex):
    with xm_local.create_experiment("vertex") as experiment:
        executable = _package(experiment, args={"epochs": 3}, env_vars={"MODE": "train"})
        executor = xm_local.Vertex(requirements=xm.JobRequirements(t4=2, cpu=6), labels={"team": "ml"})
        for lr in (0.1, 0.01):
            experiment.add(xm.Job(executable, executor, args={"lr": lr}))
    assert vertex.methods() == ["ListCustomJobs", "CreateCustomJob", "CreateCustomJob"]
    [first] = [job for job in vertex.created() if job.labels["xm-work-unit"] == "1"]  # Creates run concurrently.
    [pool] = first.job_spec.worker_pool_specs
    assert pool.machine_spec.machine_type == "n1-standard-8"
    assert pool.machine_spec.accelerator_type.name == "NVIDIA_TESLA_T4" and pool.machine_spec.accelerator_count == 2
    assert pool.replica_count == 1
    assert pool.container_spec.image_uri == IMAGE
    assert list(pool.container_spec.args) == ["--epochs=3", "--lr=0.1"]
    env = {item.name: item.value for item in pool.container_spec.env}
    assert env["MODE"] == "train" and env["XM_WORK_UNIT_ID"] == "1" and env["XM_EXPERIMENT_ID"] == str(
        experiment.experiment_id)
    labels = dict(first.labels)
    token = labels.pop("xm-create-token")
    assert re.fullmatch("[0-9a-f]{16}", token)
    assert labels == {"team": "ml", "xm-experiment": str(experiment.experiment_id), "xm-work-unit": "1"}
    # The launch script has left; the units run on.
    assert set(_statuses(experiment).values()) == {"pending"}

    names = sorted(vertex.jobs)
    vertex.set_state(names[0], "JOB_STATE_RUNNING")
    experiment.refresh()
    assert _statuses(experiment) == {1: "running", 2: "pending"}

    vertex.set_state(names[0], "JOB_STATE_SUCCEEDED")
    error_text = "The replica workerpool0-0 exited with a non-zero status of 1."
    vertex.set_state(names[1], "JOB_STATE_FAILED", error=error_text)
    with pytest.raises(xm.ExperimentFailedError) as error:
        experiment.wait_until_complete()
    assert "non-zero status of 1" in str(error.value)
    assert _statuses(experiment) == {1: "completed", 2: "failed"}
    [failed] = [u for u in experiment._store.units(experiment.experiment_id) if u.status == "failed"]
    job_id = names[1].rsplit("/", 1)[1]
    url = f"https://console.cloud.google.com/vertex-ai/locations/us-central1/training/{job_id}?project={PROJECT}"
    assert url in failed.message


def test_job_group_is_one_custom_job_with_worker_pools(vertex):
    with xm_local.create_experiment("vertex-group") as experiment:
        executable = _package(experiment)
        experiment.add(xm.JobGroup(
            chief=xm.Job(executable, xm_local.Vertex(requirements=xm.JobRequirements(cpu=4)), args={"role": "chief"}),
            workers=xm.Job(executable, xm_local.Vertex(requirements=xm.JobRequirements(a100=1, replicas=3)),
                           args={"role": "worker"}),
        ))
    [job] = vertex.created()
    chief, workers = job.job_spec.worker_pool_specs
    assert (chief.machine_spec.machine_type, chief.replica_count, list(chief.container_spec.args)) == (
        "n1-standard-4", 1, ["--role=chief"])
    assert (workers.machine_spec.machine_type, workers.replica_count, list(workers.container_spec.args)) == (
        "a2-highgpu-1g", 3, ["--role=worker"])
    [name] = vertex.jobs
    vertex.set_state(name, "JOB_STATE_SUCCEEDED")
    experiment.wait_until_complete()
    assert _statuses(experiment) == {1: "completed"}
    assert vertex.methods().count("GetCustomJob") == 1  # Both jobs of the unit share one CustomJob: one query.


def test_refresh_of_many_jobs_is_one_list_call(vertex):
    with xm_local.create_experiment("vertex-many") as experiment:
        executable = _package(experiment)
        for i in range(GET_LIMIT + 3):
            experiment.add(xm.Job(executable, xm_local.Vertex(), args={"i": i}))
    vertex.set_all("JOB_STATE_RUNNING")
    vertex.calls.clear()
    experiment.refresh()
    assert vertex.methods() == ["ListCustomJobs"]
    request = vertex.calls[0][1]
    assert request.filter == f'labels.xm-experiment="{experiment.experiment_id}"'
    assert "state" in request.read_mask.paths and "labels" not in request.read_mask.paths
    assert set(_statuses(experiment).values()) == {"running"}


def test_cancel_stops_the_custom_jobs(vertex):
    with xm_local.create_experiment("vertex-cancel") as experiment:
        executable = _package(experiment)
        for i in range(2):
            experiment.add(xm.Job(executable, xm_local.Vertex(), args={"i": i}))
    experiment.cancel()
    assert vertex.methods().count("CancelCustomJob") == 2
    assert {job.state.name for job in vertex.jobs.values()} == {"JOB_STATE_CANCELLED"}
    assert set(_statuses(experiment).values()) == {"cancelled"}


def test_another_process_shows_cancels_and_reads_logs(vertex):
    with xm_local.create_experiment("vertex-cli") as experiment:
        executable = _package(experiment)
        for i in range(2):
            experiment.add(xm.Job(executable, xm_local.Vertex(), args={"i": i}))
    names = sorted(vertex.jobs)
    vertex.set_state(names[0], "JOB_STATE_RUNNING")
    vertex.set_state(names[1], "JOB_STATE_FAILED", error="out of memory")

    def run(*args):
        return subprocess.run([XMANAGER, *args], capture_output=True, text=True, env=os.environ, timeout=120)

    shown = run("show", str(experiment.experiment_id))
    assert shown.returncode == 0, shown.stderr
    job_id = names[1].rsplit("/", 1)[1]
    assert "1 failed, 1 running" in shown.stdout
    assert f"training/{job_id}?project={PROJECT}" in shown.stdout and "out of memory" in shown.stdout
    links = shown.stdout.split("links:\n", 1)[1]  # Every unit's console page, the running one too.
    assert all(f"training/{name.rsplit('/', 1)[1]}?project={PROJECT}" in links for name in names)

    logs = run("logs", str(experiment.experiment_id), "2", "--stream", "stdout")
    assert logs.returncode == 0, logs.stderr
    assert names[1] in logs.stdout and f"training/{job_id}" in logs.stdout
    assert "JOB_STATE_PENDING" in logs.stdout and "JOB_STATE_FAILED out of memory" in logs.stdout

    cancelled = run("cancel", str(experiment.experiment_id))
    assert cancelled.returncode == 0, cancelled.stderr
    assert vertex.jobs[names[0]].state.name == "JOB_STATE_CANCELLED"
    assert vertex.jobs[names[1]].state.name == "JOB_STATE_FAILED"


def _launch_one(requirements=None, **executor):
    with xm_local.create_experiment("vertex-bad") as experiment:
        executable = _package(experiment)
        experiment.add(xm.Job(executable, xm_local.Vertex(requirements=requirements or xm.JobRequirements(),
                                                           **executor)))
    return experiment


def test_unreachable_api_server_is_reported_before_submitting(vertex, monkeypatch):
    monkeypatch.setenv("XM_VERTEX_API_ENDPOINT", "localhost:1")
    with pytest.raises(VertexConfigError) as error:
        _launch_one()
    assert "cannot reach Vertex AI at localhost:1" in str(error.value)
    assert "XM_VERTEX_API_ENDPOINT" in str(error.value)
    assert vertex.calls == []


def test_missing_credentials_say_how_to_log_in(vertex, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    with pytest.raises(VertexConfigError) as error:
        _launch_one()
    text = str(error.value)
    assert "no Google Cloud credentials" in text and "GOOGLE_APPLICATION_CREDENTIALS" in text
    assert "gcloud auth application-default login" in text
    assert vertex.calls == []


def test_refused_credentials_say_how_to_log_in(vertex):
    vertex.reject_credentials = True
    with pytest.raises(VertexConfigError, match="refused the credentials.*gcloud auth application-default login"):
        _launch_one()
    assert vertex.methods() == ["ListCustomJobs"]


def test_missing_project(vertex, monkeypatch, tmp_path):
    folder = tmp_path / "no-project"
    folder.mkdir()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", write_key_file(folder, project=None))
    with pytest.raises(VertexConfigError, match=r"no Google Cloud project.*Vertex\(project=.*GOOGLE_CLOUD_PROJECT"):
        _launch_one()
    assert vertex.calls == []
    # The project can come from the executor or the environment instead.
    _launch_one(project=PROJECT)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    _launch_one()
    assert vertex.methods().count("CreateCustomJob") == 2


def test_unknown_project_is_reported_before_submitting(vertex):
    with pytest.raises(VertexConfigError, match="denied access.*roles/aiplatform.user"):
        _launch_one(project="someone-else")
    assert vertex.methods() == ["ListCustomJobs"]


def test_impossible_accelerator_is_refused_before_anything_is_contacted(vertex):
    with pytest.raises(ValueError, match="offers a100 in counts"):
        _launch_one(requirements=xm.JobRequirements(a100=3))
    assert vertex.calls == []


def test_a_failed_creation_cancels_what_the_launch_created(vertex):
    import grpc

    vertex.fail_units["2"] = grpc.StatusCode.RESOURCE_EXHAUSTED  # Every attempt: the retries give up.
    with pytest.raises(VertexError) as error:
        with xm_local.create_experiment("vertex-quota") as experiment:
            executable = _package(experiment)
            experiment.add_sweep(xm.Job(executable, xm_local.Vertex()), [{"i": i} for i in range(3)])
    assert len(vertex.jobs) == 2  # Units 1 and 3 were created (concurrently), then undone.
    text = str(error.value)
    assert "work unit 2" in text and "Quota exceeded" in text and "cancelled the 2 CustomJob(s)" in text
    for name, job in vertex.jobs.items():
        assert name in text and job.state.name == "JOB_STATE_CANCELLED"
    assert set(_statuses(experiment).values()) == {"failed"}


def test_a_job_deleted_on_vertex_fails_with_a_reason(vertex):
    experiment = _launch_one()
    [name] = vertex.jobs
    del vertex.jobs[name]
    experiment.refresh()
    [unit] = experiment._store.units(experiment.experiment_id)
    assert unit.status == "failed" and "no longer has CustomJob" in unit.message


def test_packaging_needs_a_registry_for_images_built_here(vertex, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")  # No project: no default gcr.io/PROJECT repository.
    with xm_local.create_experiment("vertex-pack") as experiment:
        with pytest.raises(ServiceUnavailableError, match=r"VertexSpec\(push_image_tag=.*Google Cloud project"):
            experiment.package([xm.python_container(xm_local.Vertex.Spec(), xm.ModuleName("train"))])
        with pytest.raises(ServiceUnavailableError, match=r"push_image_tag"):
            experiment.package([xm.container(xm_local.Vertex.Spec(), "./image.tar")])
        with pytest.raises(Exception, match="cannot package Binary for VertexSpec"):
            experiment.package([xm.binary(xm_local.Vertex.Spec(), sys.executable)])


def test_without_a_push_target_images_go_to_the_projects_gcr_repository(vertex, monkeypatch, tmp_path):
    from xmanager.executors.images import build

    script = tmp_path / "trainer" / "launch.py"
    script.parent.mkdir()
    script.write_text("")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(script))
    pushed = []
    monkeypatch.setattr(build, "registry_image", lambda spec, repository, missing: pushed.append(repository) or "img")
    with xm_local.create_experiment("vertex-default-repo") as experiment:
        # path="." is the launch script's folder, which names the image.
        experiment.package([xm.python_container(xm_local.Vertex.Spec(), xm.ModuleName("train"), path=".")])
    assert pushed == [f"gcr.io/{PROJECT}/trainer"]


def test_built_images_are_pushed_to_the_spec_registry_and_run_by_digest(vertex, monkeypatch, tmp_path):
    """The wiring to the image module (its own tests build and push for real; here docker is replaced
    by a recorder, so this checks only which calls Vertex makes and what reaches the CustomJob)."""
    from xmanager.executors.images import build

    calls = []
    ref = object()

    def ensure_image(spec, *, launch_dir, client=None):
        calls.append(("ensure", spec, launch_dir))
        return ref

    def push_image(image, repository, *, client=None):
        calls.append(("push", image, repository))
        return f"{repository}@sha256:{'0' * 64}"

    monkeypatch.setattr(build, "ensure_image", ensure_image)
    monkeypatch.setattr(build, "push_image", push_image)
    (tmp_path / "launch.py").write_text("")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(tmp_path / "launch.py"))
    repository = "us-docker.pkg.dev/xm-test/repo/trainer"
    spec = xm_local.Vertex.Spec(push_image_tag=repository)
    with xm_local.create_experiment("vertex-build") as experiment:
        [executable] = experiment.package([xm.python_container(spec, xm.ModuleName("train"), path="src")])
        experiment.add(xm.Job(executable, xm_local.Vertex()))
    assert [call[0] for call in calls] == ["ensure", "push"]
    assert calls[0][1].path == os.path.realpath(tmp_path / "src")  # Resolved when the spec was built.
    assert calls[0][2] == str(tmp_path) and calls[1] == ("push", ref, repository)
    [job] = vertex.created()
    assert job.job_spec.worker_pool_specs[0].container_spec.image_uri == f"{repository}@sha256:{'0' * 64}"


def test_credentials_that_cannot_be_refreshed_are_not_called_a_network_problem(vertex, monkeypatch, tmp_path):
    import json

    key_file = tmp_path / "user.json"
    key_file.write_text(json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s",
                                    "refresh_token": "r"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    # The token refresh goes to Google's token endpoint; a dead proxy keeps it on this machine.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with pytest.raises(VertexConfigError) as error:
        _launch_one(project=PROJECT)
    assert "credentials do not work" in str(error.value)
    assert "gcloud auth application-default login" in str(error.value)
    assert "CreateCustomJob" not in vertex.methods()


def test_a_poll_that_cannot_reach_the_server_changes_nothing(vertex, capsys):
    from xmanager.executors.api import BackendSettings, Handle
    from xmanager.executors.vertex.backend import VertexBackend

    backend = VertexBackend(lambda update: None, BackendSettings())
    handle = Handle("vertex", 1, 1, "train", {
        "name": f"projects/{PROJECT}/locations/us-central1/customJobs/1", "endpoint": "localhost:1",
        "project": PROJECT, "location": "us-central1", "pool": 0, "console_url": "", "log": None})
    try:
        assert backend.refresh([handle]) == []
    finally:
        backend.close()
    err = capsys.readouterr().err
    assert "statuses not refreshed" in err and "cannot reach Vertex AI at localhost:1" in err


def test_a_job_group_must_stay_in_one_region(vertex):
    with pytest.raises(Exception, match="work unit 1: the jobs of a JobGroup run as one CustomJob"):
        with xm_local.create_experiment("vertex-regions") as experiment:
            executable = _package(experiment)
            experiment.add(xm.JobGroup(
                a=xm.Job(executable, xm_local.Vertex(location="us-central1")),
                b=xm.Job(executable, xm_local.Vertex(requirements=xm.JobRequirements(location="europe-west4"))),
            ))
    assert vertex.calls == []
    assert set(_statuses(experiment).values()) == {"failed"}


def test_the_xm_gcp_service_account_flag_names_the_jobs_account(vertex):
    from absl import flags
    from absl.testing import flagsaver
    from xmanager import xm_flags  # noqa: F401 - defines --xm_gcp_service_account_name.

    with flagsaver.flagsaver(xm_gcp_service_account_name="trainer"):
        flags.FLAGS["xm_gcp_service_account_name"].present = 1
        try:
            _launch_one()
            _launch_one(service_account="own@p.iam.gserviceaccount.com")
        finally:
            flags.FLAGS["xm_gcp_service_account_name"].present = 0
    accounts = sorted(job.job_spec.service_account for job in vertex.jobs.values())
    assert accounts == ["own@p.iam.gserviceaccount.com", f"trainer@{PROJECT}.iam.gserviceaccount.com"]
