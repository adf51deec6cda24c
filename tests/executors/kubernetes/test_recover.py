"""``recover``: the Jobs of a launcher that died before storing their handles are found again (the same
handles ``launch`` returned, from one label-selector list); jobs never sent answer None at once; a Job a
dead launcher's create still had in flight is found by the second look after the grace period, and a Job
never created answers None after it."""

import pytest
from xmanager.executors.api import BackendSettings, JobLaunch, JobRef, UnitLaunch
from xmanager.executors.kubernetes import backend as backend_module
from xmanager.executors.kubernetes import manifests
from xmanager.executors.kubernetes.executor import Kubernetes, KubernetesImage, plugin

IMAGE = "127.0.0.1:5000/xm/job:1"
EXPERIMENT = 11


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
def open_backend(kubeconfig):
    opened = []

    def open_one():
        opened.append(plugin.open(lambda update: None, BackendSettings()))
        return opened[-1]

    yield open_one
    for backend in opened:
        backend.close()


def _work_dir(tmp_path, unit, job):
    return str(tmp_path / "experiment" / str(unit) / job)


def _units(tmp_path, units, jobs=("job",)):
    executor = Kubernetes(cloud_provider="GENERIC")
    image = KubernetesImage(name="job", image=IMAGE)
    return [UnitLaunch(EXPERIMENT, unit, tuple(JobLaunch(job, image, executor, (f"--unit={unit}",), {}, {},
                                                         _work_dir(tmp_path, unit, job)) for job in jobs))
            for unit in units]


def _refs(tmp_path, pairs):
    return [JobRef(EXPERIMENT, unit, job, _work_dir(tmp_path, unit, job)) for unit, job in pairs]


def _job_lists(server):
    return [call for call in server.calls("GET", "jobs") if "labelSelector" in call[2]]


def test_another_backend_rebuilds_the_handles_launch_returned_from_one_list(open_backend, api_server, tmp_path,
                                                                          waits):
    handles = open_backend().launch(_units(tmp_path, [1, 2, 3], jobs=("train", "eval")))
    lists_before = len(_job_lists(api_server))
    pairs = [(3, "eval"), (1, "train"), (2, "eval"), (1, "eval"), (9, "train"), (2, "missing")]
    recovered = open_backend().recover(_refs(tmp_path, pairs))
    by_ids = {(h.work_unit_id, h.job_name): h for h in handles}
    assert recovered == [by_ids.get(pair) for pair in pairs]
    assert recovered[-2:] == [None, None]  # Never sent: no record of them.
    assert waits[0] == []  # Every recorded Job was found: no second look.
    [selector] = [call[2]["labelSelector"][0] for call in _job_lists(api_server)[lists_before:]]
    assert f"{manifests.EXPERIMENT_LABEL} in ({EXPERIMENT})" in selector
    assert f"{manifests.WORK_UNIT_LABEL} in (1,2,3)" in selector


def test_jobs_never_sent_answer_none_without_asking_the_cluster(open_backend, api_server, tmp_path, waits):
    recovered = open_backend().recover(_refs(tmp_path, [(1, "job"), (2, "job")]))
    assert recovered == [None, None]
    assert _job_lists(api_server) == [] and waits[0] == []


def test_a_create_in_flight_when_the_launcher_died_is_found_by_the_second_look(open_backend, api_server, tmp_path,
                                                                              waits, monkeypatch):
    launcher = open_backend()
    held = []  # The creates the launcher "had in flight": recorded, not yet stored by the server.
    create_all = backend_module.KubernetesBackend._create_all
    monkeypatch.setattr(launcher, "_create_all", lambda planned, limit: held.append((planned, limit)))
    handles = launcher.launch(_units(tmp_path, [1, 2]))
    assert api_server.job_names() == []
    waits[1].append(lambda: create_all(launcher, *held.pop()) if held else None)  # They land during the grace.
    recovered = open_backend().recover(_refs(tmp_path, [(1, "job"), (2, "job")]))
    assert recovered == handles
    assert waits[0] == [backend_module.RECOVER_GRACE]
    assert sorted(api_server.job_names()) == sorted(h.data["name"] for h in handles)


def test_a_recorded_job_never_created_answers_none_after_the_grace(open_backend, api_server, tmp_path, waits,
                                                                  monkeypatch):
    launcher = open_backend()
    monkeypatch.setattr(launcher, "_create_all", lambda planned, limit: None)  # Killed before any create.
    launcher.launch(_units(tmp_path, [1]))
    created = open_backend().launch(_units(tmp_path, [2]))
    recovered = open_backend().recover(_refs(tmp_path, [(1, "job"), (2, "job")]))
    assert recovered == [None, created[0]]
    assert waits[0] == [backend_module.RECOVER_GRACE]  # One wait, then a last look.
    assert len(_job_lists(api_server)) == 2


def test_many_units_are_found_by_the_experiment_label_alone(open_backend, api_server, tmp_path, waits, monkeypatch):
    monkeypatch.setattr(backend_module, "_SELECTOR_UNITS", 2)  # Instead of a sweep's thousands of units.
    handles = open_backend().launch(_units(tmp_path, [1, 2, 3]))
    lists_before = len(_job_lists(api_server))
    assert open_backend().recover(_refs(tmp_path, [(1, "job"), (2, "job"), (3, "job")])) == handles
    [selector] = [call[2]["labelSelector"][0] for call in _job_lists(api_server)[lists_before:]]
    assert manifests.WORK_UNIT_LABEL not in selector and waits[0] == []
