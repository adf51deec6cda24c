"""The Vertex backend at scale: concurrent creates, retries without duplicates, paginated refresh.

These drive ``VertexBackend`` directly (real GAPIC client, local TLS JobService) so handles
can be checked one by one; the servicer injects status codes, latency and page caps.
"""

import grpc
import pytest
from xmanager.executors.api import BackendSettings, JobLaunch, UnitLaunch
from xmanager.executors.vertex import retry
from xmanager.executors.vertex.backend import TOKEN_LABEL, VertexBackend, VertexError
from xmanager.executors.vertex.executor import DEFAULT_CONCURRENT_CREATES, Vertex, VertexExecutable
from xmanager.xm.status import Status

pytestmark = pytest.mark.integration

IMAGE = "us-docker.pkg.dev/xm-test/repo/trainer:1"
EXPERIMENT = 42


def _units(tmp_path, count, **executor):
    vertex_executor = Vertex(**executor)
    executable = VertexExecutable(name="train", image_uri=IMAGE)
    return [
        UnitLaunch(EXPERIMENT, unit, (JobLaunch("train", executable, vertex_executor, (f"--unit={unit}",), {}, {},
                                                str(tmp_path / f"unit-{unit}")),))
        for unit in range(1, count + 1)
    ]


@pytest.fixture
def backend():
    opened = VertexBackend(lambda update: None, BackendSettings())
    yield opened
    opened.close()


def _unit_of(job):
    return int(job.labels["xm-work-unit"])


def test_max_concurrent_creates_is_checked():
    assert Vertex().max_concurrent_creates == DEFAULT_CONCURRENT_CREATES == 8
    for bad in (0, -1, 65, 2.5, True, "8"):
        with pytest.raises(ValueError, match=r"Vertex\(max_concurrent_creates="):
            Vertex(max_concurrent_creates=bad)


def test_creates_run_concurrently_up_to_the_limit_and_handles_keep_input_order(vertex, backend, tmp_path):
    vertex.latency["CreateCustomJob"] = 0.05
    handles = backend.launch(_units(tmp_path, 24, max_concurrent_creates=4))
    assert 1 < vertex.max_in_flight_creates <= 4
    assert len(vertex.jobs) == 24 and vertex.methods().count("CreateCustomJob") == 24
    assert [h.work_unit_id for h in handles] == list(range(1, 25))
    for handle in handles:  # Each handle names the CustomJob of its own unit.
        job = vertex.jobs[handle.data["name"]]
        assert _unit_of(job) == handle.work_unit_id
        assert list(job.job_spec.worker_pool_specs[0].container_spec.args) == [f"--unit={handle.work_unit_id}"]
    assert len({vertex.jobs[h.data["name"]].labels[TOKEN_LABEL] for h in handles}) == 24


def test_a_limit_of_one_creates_one_after_another(vertex, backend, tmp_path):
    vertex.latency["CreateCustomJob"] = 0.02
    handles = backend.launch(_units(tmp_path, 4, max_concurrent_creates=1))
    assert vertex.max_in_flight_creates == 1
    assert [_unit_of(job) for job in vertex.created()] == [1, 2, 3, 4]
    assert [h.work_unit_id for h in handles] == [1, 2, 3, 4]


def test_a_failure_among_concurrent_creates_undoes_the_whole_launch(vertex, backend, tmp_path):
    vertex.latency["CreateCustomJob"] = 0.05  # Unit 10 fails at once; the creates around it are in flight.
    vertex.fail_units["10"] = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(VertexError) as error:
        backend.launch(_units(tmp_path, 30, max_concurrent_creates=4))
    text = str(error.value)
    assert "creating the CustomJob of work unit 10" in text and "INVALID_ARGUMENT" in text
    # No create starts after the failure: at most the 3 others already in flight follow unit 10.
    sent = [_unit_of(job) for job in vertex.created()]
    assert 10 in sent and len(sent) <= 13 and max(sent) <= 13
    assert vertex.jobs and {job.state.name for job in vertex.jobs.values()} == {"JOB_STATE_CANCELLED"}
    assert f"cancelled the {len(vertex.jobs)} CustomJob(s)" in text
    assert all(name in text for name in vertex.jobs)


def test_quota_errors_are_retried_with_backoff(vertex, backend, tmp_path, retry_waits):
    vertex.fail("CreateCustomJob", grpc.StatusCode.RESOURCE_EXHAUSTED, times=3)
    vertex.fail("ListCustomJobs", grpc.StatusCode.UNAVAILABLE)  # The preflight, once.
    handles = backend.launch(_units(tmp_path, 2, max_concurrent_creates=1))
    assert len(handles) == 2 and len(vertex.jobs) == 2
    assert vertex.methods().count("CreateCustomJob") == 5
    assert vertex.methods().count("ListCustomJobs") == 2  # No look-up: a refused create made nothing.
    policy = retry.DEFAULT_POLICY
    creates = retry_waits[1:]  # The first wait is the preflight's.
    assert len(creates) == 3
    for attempt, wait in enumerate(creates, start=1):
        assert policy.first_delay * 2 ** (attempt - 1) * 0.5 <= wait <= min(policy.max_delay,
                                                                           policy.first_delay * 2 ** (attempt - 1))


def test_a_persistent_quota_error_gives_up_with_a_clear_message(vertex, backend, tmp_path, retry_waits):
    vertex.fail_units["1"] = grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(VertexError) as error:
        backend.launch(_units(tmp_path, 1))
    text = str(error.value)
    assert "creating the CustomJob of work unit 1" in text and "RESOURCE_EXHAUSTED" in text
    assert "Quota exceeded" in text and "max_concurrent_creates" in text
    policy = retry.DEFAULT_POLICY
    assert f"gave up after {policy.max_attempts} attempts" in text
    assert vertex.methods().count("CreateCustomJob") == policy.max_attempts and not vertex.jobs
    assert sum(retry_waits) <= policy.max_total_wait


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_create_whose_answer_was_lost_makes_no_duplicate(vertex, backend, tmp_path, code):
    vertex.fail("CreateCustomJob", code, after=True)  # Stored, then the answer lost.
    [handle] = backend.launch(_units(tmp_path, 1))
    [name] = vertex.jobs
    assert handle.data["name"] == name
    assert vertex.methods() == ["ListCustomJobs", "CreateCustomJob", "ListCustomJobs"]
    lookup = vertex.calls[-1][1]
    assert lookup.filter == f'labels.{TOKEN_LABEL}="{vertex.jobs[name].labels[TOKEN_LABEL]}"'


def test_a_create_lost_before_it_was_stored_is_sent_again(vertex, backend, tmp_path):
    vertex.fail("CreateCustomJob", grpc.StatusCode.UNAVAILABLE)  # Refused before storing anything.
    [handle] = backend.launch(_units(tmp_path, 1))
    [name] = vertex.jobs
    assert handle.data["name"] == name
    assert vertex.methods() == ["ListCustomJobs", "CreateCustomJob", "ListCustomJobs", "CreateCustomJob"]
    first, second = vertex.created()
    assert first.labels[TOKEN_LABEL] == second.labels[TOKEN_LABEL]  # The same create, sent again.


def test_a_create_with_an_unknown_outcome_is_found_and_cancelled_on_rollback(vertex, backend, tmp_path):
    vertex.fail("CreateCustomJob", grpc.StatusCode.INTERNAL, after=True)  # Not retried; maybe stored.
    with pytest.raises(VertexError) as error:
        backend.launch(_units(tmp_path, 3, max_concurrent_creates=1))
    [name] = vertex.jobs
    assert vertex.methods().count("CreateCustomJob") == 1  # Units 2 and 3 never started.
    assert vertex.jobs[name].state.name == "JOB_STATE_CANCELLED"
    assert "work unit 1" in str(error.value) and name in str(error.value)


def test_refresh_follows_every_page(vertex, backend, tmp_path):
    handles = backend.launch(_units(tmp_path, 10))
    by_unit = {h.work_unit_id: h.data["name"] for h in handles}
    states = {1: "JOB_STATE_RUNNING", 5: "JOB_STATE_SUCCEEDED", 9: "JOB_STATE_FAILED", 10: "JOB_STATE_CANCELLED"}
    for unit, state in states.items():
        vertex.set_state(by_unit[unit], state)
    vertex.max_page_size = 3
    vertex.calls.clear()
    updates = backend.refresh(handles)
    assert vertex.methods() == ["ListCustomJobs"] * 4  # 10 jobs, 3 a page; no Get for a job on a later page.
    assert [request.page_token for _, request, _ in vertex.calls] == ["", "3", "6", "9"]
    expected = {unit: Status.PENDING for unit in by_unit}
    expected.update({1: Status.RUNNING, 5: Status.COMPLETED, 9: Status.FAILED, 10: Status.CANCELLED})
    assert {u.work_unit_id: u.status for u in updates} == expected


def test_polls_and_cancels_are_retried(vertex, backend, tmp_path):
    handles = backend.launch(_units(tmp_path, 2))
    vertex.fail("GetCustomJob", grpc.StatusCode.RESOURCE_EXHAUSTED)
    vertex.set_state(handles[0].data["name"], "JOB_STATE_RUNNING")
    updates = backend.refresh(handles)
    assert [u.status for u in updates] == [Status.RUNNING, Status.PENDING]
    vertex.fail("CancelCustomJob", grpc.StatusCode.UNAVAILABLE, times=2)
    backend.cancel(handles)
    assert {job.state.name for job in vertex.jobs.values()} == {"JOB_STATE_CANCELLED"}
    assert vertex.methods().count("CancelCustomJob") == 4
