"""The Kubernetes executor end to end through xm_local, against the fake API server with the real client:
batches, labels, one list call per refresh, results and logs from the pod log, job groups created
all-or-nothing, cancel with propagation, and errors reported before anything is created."""

import json
import os
import socket
import subprocess
import sys

import kubernetes_validate
import pytest
from xmanager import xm, xm_local
from xmanager.executors.api import ServiceUnavailableError
from xmanager.executors.kubernetes import manifests
from xmanager.executors.kubernetes.config import KubernetesError

IMAGE = "127.0.0.1:5000/xm/job:1"
XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")


def _executable(experiment, image=IMAGE):
    [executable] = experiment.package([xm.container(executor_spec=xm_local.Kubernetes.Spec(), image_path=image)])
    return executable


def _log(results=None, text="training...\n"):
    return text + (f"{manifests.RESULTS_MARKER}{json.dumps(results)}\n" if results is not None else "")


def _list_calls(server, kind="jobs"):
    return [call for call in server.calls("GET", kind) if "labelSelector" in call[2]]


def test_a_sweep_becomes_labelled_jobs_and_one_list_call_follows_them(kubeconfig, api_server):
    with xm_local.create_experiment("k8s sweep") as experiment:
        executable = _executable(experiment)
        executor = xm_local.Kubernetes(cloud_provider="GENERIC", requirements=xm.JobRequirements(cpu=1, ram=xm.GiB))
        experiment.add_sweep(xm.Job(executable, executor), xm.pgrid([xm.plist("a", range(3))]))
    eid = experiment.experiment_id
    posts = api_server.calls("POST", "jobs")
    assert [("dryRun" in call[2]) for call in posts] == [True, False, False, False]  # One check, then 3 creates.
    assert api_server.calls("GET", "pods") == []  # Just-created Jobs have no log to fetch yet.
    names = api_server.job_names()
    assert len(names) == 3
    by_unit = {}
    for name in names:
        job = api_server.job(name)
        kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=False)
        labels = job["metadata"]["labels"]
        assert labels["xmanager.io/experiment-id"] == str(eid)
        by_unit[int(labels["xmanager.io/work-unit-id"])] = job
    assert sorted(by_unit) == [1, 2, 3]
    container = by_unit[2]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE and "command" not in container  # A plain image keeps its entrypoint.
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["XM_EXPERIMENT_ID"] == str(eid) and env["XM_WORK_UNIT_ID"] == "2"
    assert sorted(job["spec"]["template"]["spec"]["containers"][0]["args"][0] for job in by_unit.values()) == [
        "--a=0", "--a=1", "--a=2"]

    before = len(_list_calls(api_server))
    experiment.refresh()
    assert len(_list_calls(api_server)) == before + 1  # Three Jobs, one list call.
    assert set(experiment.to_dataframe()["_status"]) == {"pending"}

    for unit, job in by_unit.items():
        api_server.start_job(job["metadata"]["name"], node=f"node-{unit}")
    experiment.refresh()
    assert set(experiment.to_dataframe()["_status"]) == {"running"}

    api_server.finish_job(by_unit[1]["metadata"]["name"], log=_log({"loss": 0.25}))
    api_server.finish_job(by_unit[2]["metadata"]["name"], log=_log({"loss": 0.5}))
    api_server.finish_job(by_unit[3]["metadata"]["name"], exit_code=2, log="Traceback: boom\n")
    with pytest.raises(xm.ExperimentFailedError, match="1 of 3 work units failed"):
        experiment.wait_until_complete()
    frame = experiment.to_dataframe().sort_values("a")
    assert frame["_status"].tolist() == ["completed", "completed", "failed"]
    assert frame["loss"].tolist()[:2] == [0.25, 0.5]
    assert frame["_exit_code"].tolist()[2] == 2
    failed = experiment.work_units[3]
    assert "BackoffLimitExceeded" in failed.get_status().message
    work_dir = os.path.join(experiment._jobs_root, "3", next(iter(failed.jobs)))
    with open(os.path.join(work_dir, "pod.log")) as log:
        assert log.read() == "Traceback: boom\n"


def test_another_process_reads_logs_and_statuses_through_the_api(kubeconfig, api_server):
    with xm_local.create_experiment("k8s follow") as experiment:
        executable = _executable(experiment)
        experiment.add(xm.Job(executable, xm_local.Kubernetes(cloud_provider="GENERIC"), args={"x": 1}))
    [name] = api_server.job_names()
    api_server.start_job(name)
    api_server.finish_job(name, log=_log({"score": 7}, text="line one\nline two\n"))
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    logs = subprocess.run([XMANAGER, "logs", str(experiment.experiment_id)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert logs.returncode == 0, logs.stderr
    assert "line one\nline two\n" in logs.stdout
    shown = subprocess.run([XMANAGER, "show", str(experiment.experiment_id)], capture_output=True, text=True, env=env,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "completed" in shown.stdout
    again = xm_local.get_experiment(experiment.experiment_id)
    again.wait_until_complete()
    assert again.to_dataframe()["score"].tolist() == [7]


def test_a_job_group_is_created_together_or_not_at_all(kubeconfig, api_server):
    api_server.fail_create_number = 2  # The second real create fails (the dry run does not count) ...
    api_server.fail_create_status = 403  # ... for good: the namespace's quota is used up.
    with pytest.raises(xm.ExperimentFailedError, match="1 of 1 work units failed"):  # Raised when the block ends.
        with xm_local.create_experiment("k8s group") as experiment:
            executable = _executable(experiment)
            executor = xm_local.Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1)  # In order: see below.
            group = xm.JobGroup(server=xm.Job(executable, executor), client=xm.Job(executable, executor))
            with pytest.raises(KubernetesError, match=r"job 'client'.*exceeded quota.*ResourceQuota.*deleted the 1 "
                                                      r"Job\(s\) this launch had created"):
                experiment.add(group)
    assert api_server.job_names() == []
    assert [policy for _, _, policy in api_server.deletions] == ["Background"]
    assert experiment.to_dataframe()["_status"].tolist() == ["failed"]


def test_a_job_group_runs_as_labelled_jobs_of_one_unit(kubeconfig, api_server):
    with xm_local.create_experiment("k8s group ok") as experiment:
        executable = _executable(experiment)
        executor = xm_local.Kubernetes(cloud_provider="GENERIC")
        experiment.add(xm.JobGroup(server=xm.Job(executable, executor), client=xm.Job(executable, executor)))
    jobs = [api_server.job(name) for name in api_server.job_names()]
    assert sorted(job["metadata"]["labels"]["xmanager.io/job"] for job in jobs) == ["client", "server"]
    assert {job["metadata"]["labels"]["xmanager.io/work-unit-id"] for job in jobs} == {"1"}
    for job in jobs:
        api_server.finish_job(job["metadata"]["name"], log="ok\n")
    experiment.wait_until_complete()
    assert experiment.to_dataframe()["_status"].tolist() == ["completed"]


def test_cancel_deletes_jobs_with_foreground_propagation(kubeconfig, api_server):
    with xm_local.create_experiment("k8s cancel") as experiment:
        executable = _executable(experiment)
        job = xm.Job(executable, xm_local.Kubernetes(cloud_provider="GENERIC"))
        experiment.add(job)
        experiment.add(job)
    assert [("dryRun" in call[2]) for call in api_server.calls("POST", "jobs")] == [True, False, False]  # Checked once.
    first = api_server.job_names()[0]
    api_server.start_job(first)
    experiment.cancel()
    assert sorted(policy for _, _, policy in api_server.deletions) == ["Foreground", "Foreground"]
    assert api_server.job_names() == [] and api_server.pods == {}
    assert experiment.to_dataframe()["_status"].tolist() == ["cancelled", "cancelled"]


def test_a_job_deleted_behind_our_back_counts_as_cancelled(kubeconfig, api_server):
    with xm_local.create_experiment("k8s gone") as experiment:
        experiment.add(xm.Job(_executable(experiment), xm_local.Kubernetes(cloud_provider="GENERIC")))
    [name] = api_server.job_names()
    with api_server.lock:
        del api_server.jobs[("default", name)]
    experiment.refresh()
    assert experiment.work_units[1].get_status().status.value == "cancelled"
    assert "deleted" in experiment.work_units[1].get_status().message


def test_pending_jobs_say_why_their_pod_does_not_run(kubeconfig, api_server):
    with xm_local.create_experiment("k8s pending") as experiment:
        executable = _executable(experiment)
        experiment.add(xm.Job(executable, xm_local.Kubernetes(cloud_provider="GENERIC")))
        experiment.add(xm.Job(executable, xm_local.Kubernetes(cloud_provider="GENERIC")))
    first, second = sorted(api_server.job_names(), key=lambda name: api_server.job(name)["metadata"]["labels"][
        "xmanager.io/work-unit-id"])
    api_server.hold_job(first, waiting=("ImagePullBackOff", 'Back-off pulling image "127.0.0.1:5000/xm/job:1"'))
    api_server.hold_job(second, unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    experiment.refresh()
    units = experiment.work_units
    [job_1], [job_2] = units[1].jobs.values(), units[2].jobs.values()
    assert job_1.status.value == "pending" and "ImagePullBackOff (Back-off pulling image" in job_1.message
    assert job_2.status.value == "pending" and "Unschedulable (0/3 nodes are available" in job_2.message
    api_server.start_job(first)
    experiment.refresh()
    assert experiment.work_units[1].get_status().status.value == "running"


def _add_one(**executor):
    with xm_local.create_experiment("k8s bad") as experiment:
        experiment.add(xm.Job(_executable(experiment), xm_local.Kubernetes(**executor)))


def test_an_unreachable_api_server_fails_the_launch_with_one_clear_error(tmp_path, monkeypatch, write_kubeconfig):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KUBECONFIG", write_kubeconfig(tmp_path / "k", f"http://127.0.0.1:{port}"))
    with pytest.raises(KubernetesError, match=rf"cannot reach the Kubernetes API server at http://127.0.0.1:{port}"):
        _add_one(cloud_provider="GENERIC")


def test_missing_credentials_fail_before_any_request(api_server, tmp_path, monkeypatch, write_kubeconfig):
    monkeypatch.setenv("KUBECONFIG", write_kubeconfig(tmp_path / "k", api_server.url, token=None))
    with pytest.raises(KubernetesError, match="has no credentials"):
        _add_one(cloud_provider="GENERIC")
    assert api_server.requests == []


@pytest.mark.parametrize("setup, executor, message", [
    (lambda s: setattr(s, "token", "rotated"), {}, r"401 Unauthorized.*log in again"),
    (lambda s: s.forbidden.add(("create", "jobs")), {}, r"403 Forbidden.*RBAC"),
    (lambda s: None, {"namespace": "missing"}, r'namespaces "missing" not found.*create the namespace'),
])
def test_server_side_refusals_come_from_the_dry_run_before_anything_is_created(kubeconfig, api_server, setup, executor,
                                                                                message):
    setup(api_server)
    with pytest.raises(KubernetesError, match=message):
        _add_one(cloud_provider="GENERIC", **executor)
    assert api_server.creates == 0 and api_server.jobs == {}


def test_accelerators_are_checked_against_the_nodes_first(kubeconfig, api_server):
    executor = {"requirements": xm.JobRequirements(t4=2)}
    with pytest.raises(KubernetesError, match=r"no node .* carries cloud.google.com/gke-accelerator=nvidia-tesla-t4.*"
                                              r"check_nodes=False"):
        _add_one(**executor)
    assert api_server.creates == 0
    api_server.nodes.append({"metadata": {"name": "gpu-1", "labels": {"cloud.google.com/gke-accelerator":
                                                                      "nvidia-tesla-t4"}}})
    _add_one(**executor)
    [name] = api_server.job_names()
    pod = api_server.job(name)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    # An account that may not list nodes skips the check; so does check_nodes=False.
    api_server.nodes.clear()
    api_server.forbidden.add(("list", "nodes"))
    _add_one(**executor)
    api_server.forbidden.clear()
    _add_one(check_nodes=False, **executor)
    assert len(api_server.job_names()) == 3


def test_images_that_are_not_in_a_registry_need_a_push_target(tmp_path, monkeypatch):
    for name in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-key.json"))
    with xm_local.create_experiment("k8s package") as experiment:
        with pytest.raises(ServiceUnavailableError, match=r"push_image_tag='registry/repository'.*Google Cloud project"):
            experiment.package([xm.python_container(executor_spec=xm_local.Kubernetes.Spec(),
                                                    entrypoint=xm.ModuleName("train"), path=str(tmp_path))])
        with pytest.raises(TypeError, match="cannot package Binary for KubernetesSpec"):
            experiment.package([xm.binary(executor_spec=xm_local.Kubernetes.Spec(), path=sys.executable)])


def test_without_a_push_target_images_go_to_the_projects_gcr_repository(tmp_path, monkeypatch):
    from xmanager.executors.images import build

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    pushed = []
    monkeypatch.setattr(build, "registry_image", lambda spec, repository, missing: pushed.append(repository) or "img")
    with xm_local.create_experiment("k8s default repo") as experiment:
        experiment.package([xm.python_container(executor_spec=xm_local.Kubernetes.Spec(),
                                                entrypoint=xm.ModuleName("train"), path=str(tmp_path))])
    assert pushed == [f"gcr.io/my-project/{os.path.basename(tmp_path).lower()}"]


def test_a_server_that_goes_away_fails_refresh_with_a_clear_error(kubeconfig, api_server):
    with xm_local.create_experiment("k8s lost") as experiment:
        experiment.add(xm.Job(_executable(experiment), xm_local.Kubernetes(cloud_provider="GENERIC")))
    api_server.stop()
    with pytest.raises(KubernetesError, match=r"could not list Jobs in namespace default: cannot reach the Kubernetes"):
        experiment.refresh()
    api_server.stop = lambda: None  # Stopped already; the fixture must not wait on it again.
