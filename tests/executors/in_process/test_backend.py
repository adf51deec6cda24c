"""The in-process backend on its own: statuses and results through its sink, cancel, JobGroups, refresh."""

from __future__ import annotations

import os
import threading
import time

import pytest
from xmanager.executors.api import BackendSettings, Handle, JobLaunch, StatusUpdate, UnitLaunch
from xmanager.executors.in_process import FunctionExecutable, InProcess, plugin
from xmanager.xm.status import Status


class Sink:
    """Collects the backend's updates; ``wait`` returns the update a job reached ``status`` with."""

    def __init__(self) -> None:
        self.updates: list[StatusUpdate] = []
        self._cv = threading.Condition()

    def __call__(self, update: StatusUpdate) -> None:
        with self._cv:
            self.updates.append(update)
            self._cv.notify_all()

    def wait(self, unit: int, job: str, status: Status) -> StatusUpdate:
        deadline = time.monotonic() + 30  # A hang guard, not a timing assertion.
        with self._cv:
            while True:
                for update in self.updates:
                    if (update.work_unit_id, update.job_name, update.status) == (unit, job, status):
                        return update
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"unit {unit} job {job} never became {status}: {self.updates}"
                self._cv.wait(remaining)

    def of(self, unit: int) -> list[Status]:
        with self._cv:
            return [update.status for update in self.updates if update.work_unit_id == unit]


def _unit(unit_id, function, tmp_path, name="job", **kwargs):
    executable = FunctionExecutable(name=name, function=function)
    job = JobLaunch(name, executable, InProcess(), (), kwargs, {}, str(tmp_path / str(unit_id) / name))
    return UnitLaunch(7, unit_id, (job,))


@pytest.fixture
def opened():
    backends = []

    def open_backend(max_parallel=None):
        sink = Sink()
        backend = plugin.open(sink, BackendSettings(max_parallel=max_parallel))
        backends.append(backend)
        return backend, sink

    yield open_backend
    for backend in backends:
        backend.close()


def test_the_returned_dict_is_the_results(opened, tmp_path):
    backend, sink = opened()
    [handle] = backend.launch([_unit(1, lambda x: {"square": x * x}, tmp_path, x=3)])
    assert handle == Handle("in_process", 7, 1, "job", {"work_dir": str(tmp_path / "1" / "job")})
    done = sink.wait(1, "job", Status.COMPLETED)
    assert done.results == {"square": 9} and sink.of(1) == [Status.RUNNING, Status.COMPLETED]
    assert sink.updates[0].handle == handle


def test_a_raising_function_fails_its_unit_with_the_traceback_in_its_log(opened, tmp_path):
    def boom():
        raise ValueError("boom")

    backend, sink = opened()
    [handle] = backend.launch([_unit(1, boom, tmp_path)])
    assert sink.wait(1, "job", Status.FAILED).message == "ValueError: boom"
    log = backend.logs(handle).stderr
    with open(log) as file:
        assert "Traceback" in file.read() and log == os.path.join(handle.data["work_dir"], "stderr.log")


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        (lambda: 3, {}, "TypeError: the function returned int; return a dict of results or None"),
        (lambda: {"x": object()}, {}, "TypeError: Object of type object is not JSON serializable"),
        (lambda **kw: None, {"0": "positional"}, "TypeError: a PythonCallable takes keyword args only"),
    ],
)
def test_results_that_cannot_be_stored_fail_the_unit(opened, tmp_path, function, kwargs, message):
    backend, sink = opened()
    backend.launch([_unit(1, function, tmp_path, **kwargs)])
    assert sink.wait(1, "job", Status.FAILED).message.startswith(message)


def test_cancel_drops_queued_units_and_records_running_ones_when_they_return(opened, tmp_path):
    gate = threading.Event()
    backend, sink = opened(max_parallel=1)
    running, queued = backend.launch([
        _unit(1, lambda: gate.wait(30) and {"ran": True}, tmp_path),
        _unit(2, lambda: {"ran": True}, tmp_path),
    ])
    sink.wait(1, "job", Status.RUNNING)
    backend.cancel([running, queued])
    assert sink.wait(2, "job", Status.CANCELLED).message == "cancelled before it started"
    gate.set()
    ended = sink.wait(1, "job", Status.CANCELLED)
    assert ended.results is None and sink.of(1) == [Status.RUNNING, Status.CANCELLED]
    assert sink.of(2) == [Status.CANCELLED]  # It never ran.


def test_the_jobs_of_a_unit_run_together(opened, tmp_path):
    meeting = threading.Barrier(2, timeout=30)  # Breaks (failing both jobs) if one ran after the other.
    jobs = tuple(
        JobLaunch(name, FunctionExecutable(name=name, function=lambda: {"met": meeting.wait() >= 0}), InProcess(),
                  (), {}, {}, str(tmp_path / name))
        for name in ("a", "b")
    )
    backend, sink = opened(max_parallel=1)
    backend.launch([UnitLaunch(7, 1, jobs)])
    assert sink.wait(1, "a", Status.COMPLETED).results == {"met": True}
    assert sink.wait(1, "b", Status.COMPLETED).results == {"met": True}


def test_refresh_knows_only_the_jobs_of_this_process(opened, tmp_path):
    backend, sink = opened()
    [mine] = backend.launch([_unit(1, lambda: None, tmp_path)])
    sink.wait(1, "job", Status.COMPLETED)
    elsewhere = Handle("in_process", 7, 2, "job", {"work_dir": str(tmp_path)})
    [known, unknown] = backend.refresh([mine, elsewhere])
    assert known.status is Status.COMPLETED
    assert unknown.status is Status.FAILED and "not known to this process" in unknown.message
    backend.cancel([elsewhere])  # Out of reach: nothing happens, nothing is reported.
    assert sink.of(2) == []
