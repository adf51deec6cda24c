"""The local backend under faults: starts that raise, units refused right before they start, process
trees stopped whole, and what a job whose launcher died left behind. Real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from xmanager.executors.api import BackendSettings, Handle, JobLaunch, StatusUpdate, UnitLaunch
from xmanager.executors.local import Local, processes
from xmanager.executors.local.backend import LAUNCHER_DIED, RESULTS, STDOUT, WORKER_RECORD, LocalBackend
from xmanager.executors.packaging import LocalExecutable
from xmanager.xm.status import Status

TIMEOUT_S = 30


class Sink:
    def __init__(self) -> None:
        self.updates: list[StatusUpdate] = []
        self._ended = threading.Condition()

    def __call__(self, update: StatusUpdate) -> None:
        with self._ended:
            self.updates.append(update)
            self._ended.notify_all()

    def wait_ended(self, count: int) -> dict[int, StatusUpdate]:
        with self._ended:
            assert self._ended.wait_for(
                lambda: sum(update.status.is_terminal for update in self.updates) >= count, TIMEOUT_S
            ), self.updates
            return {update.work_unit_id: update for update in self.updates if update.status.is_terminal}


def _unit(tmp_path, unit_id: int, command: list[str], args: tuple[str, ...] = (), env=None) -> UnitLaunch[Local]:
    executable = LocalExecutable(name="job", command=tuple(command))
    job = JobLaunch("job", executable, Local(experimental_stream_output=False), args, {}, env or {},
                    str(tmp_path / "jobs" / str(unit_id) / "job"))
    return UnitLaunch(1, unit_id, (job,))


def test_a_start_that_raises_fails_its_unit_and_the_units_behind_it_run(tmp_path):
    sink = Sink()
    backend = LocalBackend(sink, BackendSettings(max_parallel=1))
    try:
        backend.launch([
            _unit(tmp_path, 1, ["/bin/echo"], ("a\0b",)),  # Popen raises ValueError: embedded null byte.
            _unit(tmp_path, 2, ["/bin/true"], env={"BAD": "x\0"}),
            _unit(tmp_path, 3, ["/bin/true"]),
        ])
        ended = sink.wait_ended(3)
    finally:
        backend.close()
    assert ended[1].status is Status.FAILED and "null byte" in ended[1].message
    assert ended[2].status is Status.FAILED and "null byte" in ended[2].message
    assert ended[3].status is Status.COMPLETED
    stderr = tmp_path / "jobs" / "1" / "job" / "stderr.log"
    assert "could not start: ValueError" in stderr.read_text()


def test_a_unit_refused_by_may_start_is_cancelled_without_starting(tmp_path):
    sink = Sink()
    asked = []

    def may_start(experiment_id: int, work_unit_id: int):
        asked.append(work_unit_id)
        return "cancelled by someone else" if work_unit_id == 1 else None

    backend = LocalBackend(sink, BackendSettings(max_parallel=1, may_start=may_start))
    try:
        backend.launch([_unit(tmp_path, 1, ["/bin/true"]), _unit(tmp_path, 2, ["/bin/true"])])
        ended = sink.wait_ended(2)
    finally:
        backend.close()
    assert (ended[1].status, ended[1].message) == (Status.CANCELLED, "cancelled by someone else")
    assert ended[2].status is Status.COMPLETED
    assert asked == [1, 2]
    assert not (tmp_path / "jobs" / "1").exists()  # Never started: not even its folder.
    assert not any(update.status is Status.RUNNING for update in sink.updates if update.work_unit_id == 1)


def _tree_script(tmp_path, marker: str) -> str:
    """A job that ignores SIGTERM and has a child that left its session (``os.setsid()``)."""
    path = tmp_path / "tree.sh"
    path.write_text(
        "#!/bin/sh\n"
        "trap '' TERM\n"
        f"{sys.executable} -c 'import os, time; os.setsid(); open(\"{tmp_path}/child\", \"w\").write(str(os.getpid())); "
        f"time.sleep(60)' {marker} &\n"
        "sleep 60\n"
    )
    path.chmod(0o755)
    return str(path)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_terminate_stops_the_whole_tree_with_sigkill_after_the_grace(tmp_path):
    job = subprocess.Popen([_tree_script(tmp_path, "xmtreetest")], start_new_session=True)
    try:
        child_file = tmp_path / "child"
        deadline = time.monotonic() + TIMEOUT_S
        while not (child_file.exists() and child_file.read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child = int(child_file.read_text())
        assert os.getsid(child) == child != job.pid  # It left the job's session and group.
        assert (child, processes.start_ticks(child)) in processes.descendants(job.pid, processes.start_ticks(job.pid))
        started = time.monotonic()
        processes.terminate(job.pid, processes.start_ticks(job.pid), grace=0.5)
        assert time.monotonic() - started >= 0.5  # SIGTERM was ignored: SIGKILL came after the grace.
        assert job.wait(timeout=TIMEOUT_S) == -9
        deadline = time.monotonic() + TIMEOUT_S
        while processes.is_alive(child, None) and not processes._is_zombie(child):
            assert time.monotonic() < deadline, "the setsid child survived"
            time.sleep(0.02)
    finally:
        job.kill()
        job.wait()


def test_descendants_of_a_recycled_pid_are_none():
    assert processes.descendants(os.getpid(), (processes.start_ticks(os.getpid()) or 0) + 1) == []


def _handle(work_dir, **data) -> Handle:
    return Handle("local", 1, 1, "job", {"work_dir": str(work_dir), **data})


def test_refresh_after_the_launcher_died(tmp_path):
    """What a job left says how it ended: exit record, live process, results file, or nothing."""
    backend = LocalBackend(Sink(), BackendSettings())
    never = tmp_path / "never"
    never.mkdir()
    [queued] = backend.refresh([_handle(never)])
    assert queued.status is Status.PENDING

    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "exit.json").write_text(json.dumps({"outcome": "ok", "results": {"x": 1}}))
    [done] = backend.refresh([_handle(finished, pid=2**22 + 7, ticks=1)])
    assert (done.status, dict(done.results or {})) == (Status.COMPLETED, {"x": 1})

    reported = tmp_path / "reported"
    reported.mkdir()
    (reported / STDOUT).write_text("")
    (reported / RESULTS).write_text(json.dumps({"y": 2}))
    [binary] = backend.refresh([_handle(reported)])
    assert binary.status is Status.COMPLETED and dict(binary.results or {}) == {"y": 2}
    assert "exit code unknown" in binary.message

    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / STDOUT).write_text("")
    (gone / WORKER_RECORD).write_text(json.dumps({"pid": 2**22 + 7, "ticks": 1}))
    [died] = backend.refresh([_handle(gone)])
    assert (died.status, died.message) == (Status.FAILED, LAUNCHER_DIED)

    running = tmp_path / "running"
    running.mkdir()
    (running / STDOUT).write_text("")
    process = subprocess.Popen(["/bin/sleep", "30"], env={**os.environ, "XM_RESULTS_PATH": str(running / RESULTS)})
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:  # Found by its environment, as when its pid was never recorded.
            [alive] = backend.refresh([_handle(running)])
            if alive.status is Status.RUNNING or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert alive.status is Status.RUNNING and alive.handle is not None
        assert alive.handle.data["pid"] == process.pid
    finally:
        process.kill()
        process.wait()


def test_the_control_plane_names_the_backends_reason_for_a_dead_launcher():
    from xmanager.xm_local import ownership

    assert ownership.LAUNCHER_DIED == LAUNCHER_DIED


def test_a_launcher_is_named_by_host_pid_and_start_time():
    from xmanager.xm_local import ownership

    host, pid, ticks = ownership.launcher_id().split(" ")
    assert (int(pid), int(ticks)) == (os.getpid(), processes.start_ticks(os.getpid()))
    assert not ownership.is_gone(ownership.launcher_id())
    assert ownership.is_gone(f"{host} {pid} {int(ticks) + 1}")  # The same pid, another process.
    assert not ownership.is_gone(f"elsewhere {pid} {int(ticks) + 1}")  # Another host: cannot tell.
