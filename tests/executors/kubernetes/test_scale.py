"""The Kubernetes backend under load, against the fake API server with the real client: Job creates run
concurrently up to the limit (handles in input order, all-or-nothing kept), 429/5xx answers are retried
with backoff honouring Retry-After up to a cap, a 409 after a lost answer creates no duplicate, and Job and
pod lists are read page by page."""

import logging

import pytest
from xmanager import xm, xm_local
from xmanager.executors.api import BackendSettings, JobLaunch, UnitLaunch
from xmanager.executors.kubernetes import backend as backend_module
from xmanager.executors.kubernetes import manifests, retry
from xmanager.executors.kubernetes.config import KubernetesError
from xmanager.executors.kubernetes.executor import Kubernetes, KubernetesImage, plugin
from xmanager.xm.status import Status

IMAGE = "127.0.0.1:5000/xm/job:1"


@pytest.fixture
def waits(monkeypatch):
    """The backoff waits the retries asked for, recorded instead of slept."""
    recorded = []
    monkeypatch.setattr(retry, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def backend(kubeconfig):
    opened = plugin.open(lambda update: None, BackendSettings())
    yield opened
    opened.close()


def _units(tmp_path, count, executor=None, experiment_id=7):
    executor = executor or Kubernetes(cloud_provider="GENERIC")
    image = KubernetesImage(name="job", image=IMAGE)
    return [UnitLaunch(experiment_id, unit, (JobLaunch("job", image, executor, (f"--unit={unit}",), {}, {},
                                                       str(tmp_path / str(unit))),))
            for unit in range(1, count + 1)]


def _real_creates(server):
    return [call for call in server.calls("POST", "jobs") if "dryRun" not in call[2]]


def test_creates_run_concurrently_up_to_the_limit_and_handles_keep_the_input_order(backend, api_server, tmp_path,
                                                                                  caplog):
    api_server.latency = 0.05
    units = _units(tmp_path, 24, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=6))
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        handles = backend.launch(units)
    assert 1 < api_server.max_in_flight_creates <= 6
    assert "Connection pool is full" not in caplog.text  # The shared client's pool is sized to the concurrency.
    assert [handle.work_unit_id for handle in handles] == list(range(1, 25))
    for handle in handles:  # Each handle names the Job made for its own unit.
        job = api_server.job(handle.data["name"])
        assert job["metadata"]["labels"][manifests.WORK_UNIT_LABEL] == str(handle.work_unit_id)
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [f"--unit={handle.work_unit_id}"]
    assert len(api_server.job_names()) == 24
    assert [("dryRun" in call[2]) for call in api_server.calls("POST", "jobs")].count(True) == 1


def test_one_create_at_a_time_when_asked(backend, api_server, tmp_path):
    api_server.latency = 0.02
    backend.launch(_units(tmp_path, 6, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1)))
    assert api_server.max_in_flight_creates == 1 and len(api_server.job_names()) == 6


def test_the_default_concurrency_through_xm_local(kubeconfig, api_server):
    api_server.latency = 0.05
    assert Kubernetes().max_concurrent_creates == 8
    with xm_local.create_experiment("k8s concurrent") as experiment:
        [executable] = experiment.package([xm.container(executor_spec=xm_local.Kubernetes.Spec(), image_path=IMAGE)])
        experiment.add_sweep(xm.Job(executable, xm_local.Kubernetes(cloud_provider="GENERIC")),
                             xm.pgrid([xm.plist("a", range(20))]))
    assert 1 < api_server.max_in_flight_creates <= 8
    assert len(api_server.job_names()) == 20
    experiment.refresh()
    assert set(experiment.to_dataframe()["_status"]) == {"pending"}


@pytest.mark.parametrize("value", [0, -1, 257, "8", True, 2.0])
def test_a_bad_concurrency_limit_is_refused_naming_the_argument(value):
    with pytest.raises(ValueError, match=r"Kubernetes\(max_concurrent_creates="):
        Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=value)


def test_the_pool_grows_with_a_larger_limit(backend, api_server, tmp_path):
    backend.launch(_units(tmp_path, 2, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=20)))
    [connection] = backend._connections.values()
    assert connection.pool_size == 20
    assert connection.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 20


def test_a_failed_create_mid_batch_deletes_every_job_the_concurrent_launch_created(backend, api_server, tmp_path):
    api_server.latency = 0.02
    api_server.fail_create_number, api_server.fail_create_status = 10, 403  # Quota used up at the 10th create.
    units = _units(tmp_path, 40, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=8))
    message = r"work unit \d+, job 'job': .*exceeded quota.*deleted the (\d+) Job"
    with pytest.raises(KubernetesError, match=message) as caught:
        backend.launch(units)
    assert api_server.job_names() == []  # Nothing is left behind.
    assert api_server.creates < 40  # No new create started after the failure.
    created = api_server.creates - 1  # Every create but the refused one succeeded ...
    assert f"deleted the {created} Job(s)" in str(caught.value)  # ... and was deleted again.
    assert len(api_server.deletions) == created  # The refused one (surely not stored) needs no delete.
    assert {policy for _, _, policy in api_server.deletions} == {"Background"}


def test_throttling_429_is_retried_after_the_servers_retry_after(backend, api_server, tmp_path, waits):
    api_server.inject("POST", "jobs", 429, times=2, retry_after="2")
    handles = backend.launch(_units(tmp_path, 3, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1)))
    assert waits == [2.0, 2.0]
    assert sorted(handle.data["name"] for handle in handles) == api_server.job_names()
    assert len(_real_creates(api_server)) == 5  # 3 creates + 2 throttled attempts.


def test_a_503_on_list_and_log_is_retried_with_backoff(backend, api_server, tmp_path, waits):
    [handle] = backend.launch(_units(tmp_path, 1))
    api_server.finish_job(handle.data["name"], log=f"done\n{manifests.RESULTS_MARKER}{{\"loss\": 1.5}}\n")
    api_server.inject("GET", "jobs", 503)
    api_server.inject("GET", "pods", 504)
    api_server.inject("GET", "log", 500)
    [update] = backend.refresh([handle])
    assert update.status is Status.COMPLETED and update.results == {"loss": 1.5}
    assert len(waits) == 3
    policy = retry.DEFAULT_POLICY
    assert all(policy.first_delay * 0.5 <= wait <= policy.first_delay for wait in waits)  # First backoff step.


def test_other_client_errors_are_not_retried(backend, api_server, tmp_path, waits):
    api_server.inject("POST", "jobs", 422)
    with pytest.raises(KubernetesError, match="422"):
        backend.launch(_units(tmp_path, 2, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1)))
    assert waits == [] and len(_real_creates(api_server)) == 1 and api_server.job_names() == []


def test_persistent_throttling_gives_up_after_the_cap_with_a_clear_error(backend, api_server, tmp_path, waits,
                                                                       monkeypatch):
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.RetryPolicy(max_attempts=8, max_total_wait=5))
    fault = api_server.inject("POST", "jobs", 429, times=1000, retry_after="2")
    with pytest.raises(KubernetesError, match=r"job 'job': could not create Job .* kept answering 429 Too Many "
                                              r"Requests.*gave up after 3 attempts and 4.0 s of waiting") as caught:
        backend.launch(_units(tmp_path, 1))
    assert "at most 8 attempts or 5 s" in str(caught.value)
    assert waits == [2.0, 2.0] and fault.hits == 3  # A third wait of 2 s would pass the 5 s cap.
    assert api_server.job_names() == []


def test_attempts_are_capped_even_when_the_server_says_retry_at_once(backend, api_server, tmp_path, waits):
    fault = api_server.inject("GET", "jobs", 503, times=1000, retry_after="0")
    [handle] = backend.launch(_units(tmp_path, 1))
    with pytest.raises(KubernetesError, match=r"could not list Jobs in namespace default: .*503.*gave up after 8 "
                                              r"attempts"):
        backend.refresh([handle])
    assert fault.hits == retry.DEFAULT_POLICY.max_attempts == 8


def test_a_create_whose_answer_was_lost_is_not_created_twice(backend, api_server, tmp_path, waits):
    api_server.inject("POST", "jobs", 503, after=True)  # The first create is stored, but answered 503.
    handles = backend.launch(_units(tmp_path, 3, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1)))
    assert len(waits) == 1
    assert len(_real_creates(api_server)) == 4  # The retry was answered 409 AlreadyExists ...
    assert api_server.calls("GET", handles[0].data["name"])  # ... so the Job was read: it carries our token.
    assert api_server.job_names() == sorted(handle.data["name"] for handle in handles)  # No duplicate.
    assert len(api_server.deletions) == 0


def test_a_409_for_a_job_that_is_not_ours_fails_and_leaves_it_alone(backend, api_server, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_module.secrets, "token_hex", lambda size: "ab" * size)
    name = manifests.job_name(7, 2, "job", "ababab")
    with api_server.lock:
        api_server.jobs[("default", name)] = {"metadata": {"name": name, "namespace": "default", "labels": {}},
                                              "spec": {}, "status": {}}
    units = _units(tmp_path, 3, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1))
    with pytest.raises(KubernetesError, match=rf"work unit 2, job 'job': could not create Job {name} .*already exists "
                                              r"and was not created by this launch.*deleted the 1 Job\(s\)"):
        backend.launch(units)
    assert api_server.job_names() == [name]  # The foreign Job stays; ours (unit 1) was deleted.


def test_a_create_that_keeps_failing_with_5xx_is_rolled_back_even_if_it_was_stored(backend, api_server, tmp_path,
                                                                                  waits, monkeypatch):
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.RetryPolicy(max_attempts=2))
    units = _units(tmp_path, 3, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1))
    backend.launch(units[:1])
    api_server.inject("POST", "jobs", 500, times=1, after=True)  # Stored, answered 500 ...
    api_server.inject("POST", "jobs", 500, times=1)  # ... then the retry fails too: the outcome is unknown.
    with pytest.raises(KubernetesError, match=r"work unit 2, job 'job'.*500.*gave up after 2 attempts.*deleted the 1 "
                                              r"Job\(s\)"):
        backend.launch(units[1:])
    assert len(api_server.job_names()) == 1  # Unit 1 (an earlier launch) only; unit 2's stored Job was deleted.


def test_refresh_reads_every_page_of_jobs_and_pods(backend, api_server, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_module, "LIST_PAGE_SIZE", 2)
    handles = backend.launch(_units(tmp_path, 5))
    updates = backend.refresh(handles)
    assert [update.status for update in updates] == [Status.PENDING] * 5
    pages = [call[2] for call in api_server.calls("GET", "jobs") if "labelSelector" in call[2]]
    assert [page["limit"] for page in pages] == [["2"]] * 3
    assert ["continue" in page for page in pages] == [False, True, True]
    for index, handle in enumerate(handles):
        api_server.finish_job(handle.data["name"], log=f"{manifests.RESULTS_MARKER}{{\"i\": {index}}}\n")
    updates = backend.refresh(handles)
    assert [update.results for update in updates] == [{"i": index} for index in range(5)]  # Pods from 3 pages.
    assert len([call for call in api_server.calls("GET", "pods") if "continue" in call[2]]) == 2


def test_an_expired_continue_token_restarts_the_list_once(backend, api_server, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_module, "LIST_PAGE_SIZE", 2)
    handles = backend.launch(_units(tmp_path, 5))
    api_server.expire_continue = True
    updates = backend.refresh(handles)
    assert [update.status for update in updates] == [Status.PENDING] * 5
    pages = [call[2] for call in api_server.calls("GET", "jobs") if "labelSelector" in call[2]]
    assert ["continue" in page for page in pages] == [False, True, False, True, True]  # 410, then from the start.


def test_cancel_deletes_concurrently_and_retries_throttled_deletes(backend, api_server, tmp_path, waits):
    handles = backend.launch(_units(tmp_path, 10))
    api_server.inject("DELETE", "jobs", 429, times=3, retry_after="1")
    backend.cancel(handles)
    assert api_server.job_names() == [] and waits == [1.0, 1.0, 1.0]
    assert len(api_server.deletions) == 10


def test_a_rollback_that_cannot_delete_a_job_names_it(backend, api_server, tmp_path, waits, monkeypatch):
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.RetryPolicy(max_attempts=2))
    api_server.fail_create_number, api_server.fail_create_status = 3, 403
    api_server.inject("DELETE", "jobs", 503, times=2)  # The first rollback delete fails for good.
    units = _units(tmp_path, 4, Kubernetes(cloud_provider="GENERIC", max_concurrent_creates=1))
    with pytest.raises(KubernetesError) as caught:
        backend.launch(units)
    [left] = api_server.job_names()
    assert "deleted the 1 Job(s) this launch had created; could not delete 1" in str(caught.value)
    assert f"`kubectl delete job -n default {left}`" in str(caught.value)
