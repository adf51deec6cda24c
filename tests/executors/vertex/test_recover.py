"""``recover``: the CustomJobs of a launcher that died before storing their handles are found again (the
same handles ``launch`` returned, a JobGroup's worker pools included, from one filtered list); jobs never
sent answer None at once; a create a dead launcher still had in flight is found by the second look after
the grace period, and a CustomJob never created answers None after it."""

import pytest
from xmanager.executors.api import BackendSettings, JobLaunch, JobRef, UnitLaunch
from xmanager.executors.vertex import backend as backend_module
from xmanager.executors.vertex.backend import EXPERIMENT_LABEL, VertexBackend
from xmanager.executors.vertex.executor import Vertex, VertexExecutable

pytestmark = pytest.mark.integration

IMAGE = "us-docker.pkg.dev/xm-test/repo/trainer:1"
EXPERIMENT = 43


@pytest.fixture
def waits(monkeypatch):
    """``(seconds, actions)``: the grace waits of ``recover``, recorded instead of slept, and what runs during one."""
    seconds, actions = [], []

    def sleep(duration):
        seconds.append(duration)
        for action in actions:
            action()

    monkeypatch.setattr(backend_module, "_sleep", sleep)
    return seconds, actions


@pytest.fixture
def open_backend():
    opened = []

    def open_one():
        opened.append(VertexBackend(lambda update: None, BackendSettings()))
        return opened[-1]

    yield open_one
    for backend in opened:
        backend.close()


def _work_dir(tmp_path, unit, job):
    return str(tmp_path / "experiment" / str(unit) / job)


def _units(tmp_path, units, jobs=("train",)):
    executor = Vertex()
    executable = VertexExecutable(name="train", image_uri=IMAGE)
    return [UnitLaunch(EXPERIMENT, unit, tuple(JobLaunch(job, executable, executor, (f"--unit={unit}",), {}, {},
                                                         _work_dir(tmp_path, unit, job)) for job in jobs))
            for unit in units]


def _refs(tmp_path, pairs):
    return [JobRef(EXPERIMENT, unit, job, _work_dir(tmp_path, unit, job)) for unit, job in pairs]


def _lists(vertex):
    return [request for method, request, _ in vertex.calls if method == "ListCustomJobs" and request.filter]


def test_another_backend_rebuilds_the_handles_launch_returned_from_one_list(vertex, open_backend, tmp_path, waits):
    handles = open_backend().launch(_units(tmp_path, [1, 2, 3], jobs=("train", "eval")))
    assert {h.data["pool"] for h in handles} == {0, 1}  # A JobGroup: one CustomJob, a worker pool per job.
    lists_before = len(_lists(vertex))
    pairs = [(3, "eval"), (1, "train"), (2, "eval"), (1, "eval"), (9, "train"), (2, "missing")]
    recovered = open_backend().recover(_refs(tmp_path, pairs))
    by_ids = {(h.work_unit_id, h.job_name): h for h in handles}
    assert recovered == [by_ids.get(pair) for pair in pairs]
    assert recovered[-2:] == [None, None]  # Never sent: no record of them.
    assert waits[0] == []  # Every recorded job was found: no second look.
    [request] = _lists(vertex)[lists_before:]
    assert request.filter == f'labels.{EXPERIMENT_LABEL}="{EXPERIMENT}"'


def test_jobs_never_sent_answer_none_without_asking_vertex(vertex, open_backend, tmp_path, waits):
    assert open_backend().recover(_refs(tmp_path, [(1, "train"), (2, "train")])) == [None, None]
    assert vertex.calls == [] and waits[0] == []


def test_a_create_in_flight_when_the_launcher_died_is_found_by_the_second_look(vertex, open_backend, tmp_path,
                                                                              waits, monkeypatch):
    launcher = open_backend()
    held = []  # The creates the launcher "had in flight": recorded, not yet stored by the server.
    create_all = VertexBackend._create_all
    monkeypatch.setattr(launcher, "_create_all", lambda planned, limit: held.append((planned, limit)) or [])
    launcher.launch(_units(tmp_path, [1, 2]))
    assert vertex.jobs == {}
    landed = []
    waits[1].append(lambda: landed.extend(create_all(launcher, *held.pop())) if held else None)
    recovered = open_backend().recover(_refs(tmp_path, [(1, "train"), (2, "train")]))
    assert waits[0] == [backend_module.RECOVER_GRACE]
    assert [handle.data["name"] for handle in recovered] == [job.name for job in landed]
    assert sorted(vertex.jobs) == sorted(job.name for job in landed)


def test_a_recorded_job_never_created_answers_none_after_the_grace(vertex, open_backend, tmp_path, waits,
                                                                  monkeypatch):
    launcher = open_backend()
    monkeypatch.setattr(launcher, "_create_all", lambda planned, limit: [])  # Killed before any create.
    launcher.launch(_units(tmp_path, [1]))
    created = open_backend().launch(_units(tmp_path, [2]))
    recovered = open_backend().recover(_refs(tmp_path, [(1, "train"), (2, "train")]))
    assert recovered == [None, created[0]]
    assert waits[0] == [backend_module.RECOVER_GRACE]  # One wait, then a last look.
