"""The task runner on its own (no Slurm): what a stopped task leaves behind, and what a unit leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from marked_processes import marked
from xmanager.executors.slurm.task import write_manifest

#: Ignores SIGTERM; its child moves to a session of its own and its grandchild outlives it, ignoring SIGTERM too.
STUBBORN = """\
import os, signal, subprocess, sys, time
role = sys.argv[2]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if role == "job":
    open(os.path.join(sys.argv[3], "started"), "w").close()
    subprocess.Popen([sys.executable, __file__, sys.argv[1], "fork", sys.argv[3]])
elif role == "fork":
    os.setsid()
    subprocess.Popen([sys.executable, __file__, sys.argv[1], "child", sys.argv[3]])
    sys.exit(0)
time.sleep(120)
"""


def _runner(tmp_path, role: str) -> tuple[subprocess.Popen[bytes], str, str]:
    program = tmp_path / "stubborn.py"
    program.write_text(STUBBORN)
    marker = f"xm-task-marker-{time.time_ns()}"
    work_dir = str(tmp_path / "work")
    manifest = str(tmp_path / "tasks.jsonl")
    job = {"job_name": "job", "env": {}, "work_dir": work_dir,
           "argv": [sys.executable, str(program), marker, role, str(tmp_path)]}
    write_manifest(manifest, [[{"work_unit_id": 1, "jobs": [job]}]])
    runner = subprocess.Popen([sys.executable, "-m", "xmanager.executors.slurm.task", manifest, "0"])
    return runner, marker, work_dir


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
    return condition()


def test_sigterm_stops_jobs_that_ignore_it_and_their_setsid_descendants(tmp_path):
    runner, marker, work_dir = _runner(tmp_path, "job")
    try:
        assert _wait(lambda: len(marked(marker, environ=False)) == 2 and os.path.exists(tmp_path / "started"), 20), marked(marker, environ=False)
        runner.send_signal(signal.SIGTERM)  # What scancel does first.
        assert runner.wait(timeout=30) == 0
        assert _wait(lambda: not marked(marker, environ=False), 5), f"left running: {marked(marker, environ=False)}"
        assert not os.path.exists(os.path.join(work_dir, "exit.json"))  # Slurm's state says why it stopped.
    finally:
        for pid in marked(marker, environ=False):
            os.kill(pid, signal.SIGKILL)
        if runner.poll() is None:
            runner.kill()


def test_what_a_finished_job_left_running_ends_with_its_unit(tmp_path):
    program = tmp_path / "leaves_a_daemon.py"
    program.write_text(
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(120)', sys.argv[1]])\n"
    )
    marker = f"xm-task-marker-{time.time_ns()}"
    manifest = str(tmp_path / "tasks.jsonl")
    job = {"job_name": "job", "env": {}, "work_dir": str(tmp_path / "work"),
           "argv": [sys.executable, str(program), marker]}
    write_manifest(manifest, [[{"work_unit_id": 1, "jobs": [job]}]])
    try:
        result = subprocess.run([sys.executable, "-m", "xmanager.executors.slurm.task", manifest, "0"], timeout=60)
        assert result.returncode == 0
        assert '"exit_code": 0' in (tmp_path / "work" / "exit.json").read_text()
        assert _wait(lambda: not marked(marker, environ=False), 5), f"left running: {marked(marker, environ=False)}"
    finally:
        for pid in marked(marker, environ=False):
            os.kill(pid, signal.SIGKILL)
