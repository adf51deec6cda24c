"""What an array task runs on a compute node: its units' jobs, then an exit record per job.

``python -m xmanager.executors.slurm.task MANIFEST INDEX`` reads line ``INDEX`` of the
manifest (JSON lines, found through ``MANIFEST.idx``, a table of byte offsets) and runs
the units it lists, one after the other. A unit's jobs (a JobGroup) start together
and, if one fails, the others are stopped. Each job runs without a shell, its argv as
given, stdout/stderr to files in its folder, ``XM_RESULTS_PATH`` pointing at its
``results.json``. When it ends, ``exit.json`` records its exit code, host and times:
the launcher reads that file (over the shared filesystem) instead of asking Slurm.
When Slurm stops the task (time limit, ``scancel``, preemption), no record is written,
so Slurm's own state (TIMEOUT, CANCELLED, ...) is what the launcher reports.

Stopping does not rely on the jobs' good will nor on Slurm's ``KillWait`` (30 s by default):
the runner is a child subreaper, so what a job leaves behind (a grandchild that moved to a
session of its own, its parent gone) stays below it, and on SIGTERM every process below it
gets SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`. The same sweep runs when a unit ends,
so a job's background processes end with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from xmanager.executors import proctable

_OFFSET = struct.Struct("<Q")
_stop_requested = False
#: Seconds between SIGTERM and SIGKILL for the processes of a stopped task.
STOP_GRACE_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36
#: A file in the manifest's folder: the batch's launcher died before it recorded the submission, and
#: another process found no Slurm job for it (``SlurmBackend.recover``); its units were failed there,
#: so a task that ``sbatch`` still queued runs nothing and only records why.
VOID = "void"
VOID_MESSAGE = "launcher died: not run, its launcher died before it recorded this batch's submission"


def read_task(manifest: str, index: int) -> list[dict[str, Any]]:
    with open(manifest + ".idx", "rb") as table:
        table.seek(index * _OFFSET.size)
        start, end = struct.unpack("<QQ", table.read(2 * _OFFSET.size))
    with open(manifest, "rb") as handle:
        handle.seek(start)
        return json.loads(handle.read(end - start))


def write_manifest(manifest: str, tasks: list[list[dict[str, Any]]]) -> None:
    """Writes the tasks (each a list of units) as JSON lines plus the offsets table."""
    offsets = [0]
    lines = []
    for task in tasks:
        line = (json.dumps(task, separators=(",", ":")) + "\n").encode()
        lines.append(line)
        offsets.append(offsets[-1] + len(line))
    with open(manifest, "wb") as handle:
        handle.write(b"".join(lines))
    with open(manifest + ".idx", "wb") as handle:
        handle.write(b"".join(_OFFSET.pack(offset) for offset in offsets))


def _record(work_dir: str, **fields: Any) -> None:
    temporary = os.path.join(work_dir, "exit.json.tmp")
    with open(temporary, "w") as handle:
        json.dump(fields, handle)
    os.replace(temporary, os.path.join(work_dir, "exit.json"))


def _start(job: dict[str, Any]) -> subprocess.Popen[bytes]:
    work_dir = job["work_dir"]
    os.makedirs(work_dir, exist_ok=True)
    for stale in ("exit.json", "results.json"):  # A requeued or resumed unit starts afresh.
        try:
            os.remove(os.path.join(work_dir, stale))
        except FileNotFoundError:
            pass
    if "function" in job:  # A Python callable: what xmanager.executors.slurm.call reads.
        with open(os.path.join(work_dir, "call.json"), "w") as handle:
            json.dump({"function": job["function"], "kwargs": job["kwargs"]}, handle)
    env = {**os.environ, **job["env"], "XM_RESULTS_PATH": os.path.join(work_dir, "results.json")}
    with open(os.path.join(work_dir, "stdout.log"), "ab") as out, open(os.path.join(work_dir, "stderr.log"), "ab") as err:
        return subprocess.Popen(job["argv"], env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=work_dir, start_new_session=True)


def run_unit(unit: dict[str, Any]) -> None:
    jobs = unit["jobs"]
    host = socket.gethostname()
    started = time.time()
    processes = {}
    for job in jobs:
        try:
            processes[job["job_name"]] = _start(job)
        except OSError as error:
            _record(job["work_dir"], exit_code=127, message=f"cannot start {job['argv'][0]!r}: {error}",
                    host=host, started=started, ended=time.time())
    pending = dict(processes)
    failed = False
    while pending:
        for name, process in list(pending.items()):
            code = process.poll()
            if code is None:
                continue
            del pending[name]
            job = next(job for job in jobs if job["job_name"] == name)
            if code < 0 and _stopping_soon():
                continue  # Slurm is stopping the task (time limit, scancel): its state tells why.
            message = "" if code == 0 else (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
            _record(job["work_dir"], exit_code=code, message=message, host=host, started=started, ended=time.time())
            if code != 0 and not failed:
                failed = True
                for other in pending.values():  # A JobGroup fails as a whole.
                    _terminate(other)
        if _stop_requested and pending:
            stop_descendants(list(pending.values()))
        time.sleep(0.05 if pending else 0)
    stop_descendants(list(processes.values()))  # What the unit's jobs left running ends with it.


def _stopping_soon(grace: float = 2.0) -> bool:
    """A job died by a signal: was it Slurm stopping the whole task? Slurm signals the task
    runner and the job together, in no fixed order, so wait a moment for ours."""
    deadline = time.monotonic() + grace
    while not _stop_requested and time.monotonic() < deadline:
        time.sleep(0.05)
    return _stop_requested


def _terminate(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def become_subreaper() -> bool:
    """Orphans below this process are re-parented to it rather than to init (Linux only)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(jobs: Sequence[subprocess.Popen[bytes]] = ()) -> list[int]:
    """Live processes below this one. Zombies that are ours but not a job's (orphans re-parented
    here) are reaped; a job's exit status is its ``Popen``'s to collect."""
    table = proctable.children()
    me, job_pids = os.getpid(), {process.pid for process in jobs}
    for pid, _, state in table.get(me, ()):
        if state == b"Z" and pid not in job_pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    found: list[int] = []
    todo = [me]
    while todo:
        for pid, _, state in table.get(todo.pop(), ()):
            if state != b"Z":
                found.append(pid)
                todo.append(pid)
    return found


def stop_descendants(jobs: Sequence[subprocess.Popen[bytes]], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM (once) to every process below this one, SIGKILL to those still there after ``grace``."""
    deadline = time.monotonic() + grace
    termed: set[int] = set()
    while True:
        for process in jobs:
            process.poll()
        alive = descendants(jobs)
        if not alive:
            return
        now = time.monotonic()
        if now > deadline + grace:
            return  # Unkillable (uninterruptible sleep): Slurm's own clean-up has the last word.
        for pid in alive:
            if now < deadline and pid in termed:
                continue
            termed.add(pid)
            try:
                os.kill(pid, signal.SIGTERM if now < deadline else signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _note_job_id(folder: str, index: int) -> None:
    """The array's job id in its batch folder (``job_id``), as the launcher writes it after ``sbatch``:
    a batch that started a task can be found again even if its launcher died before writing it."""
    job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    path = os.path.join(folder, "job_id")
    if not job_id or os.path.exists(path):
        return
    temporary = f"{path}.{index}.tmp"
    try:
        with open(temporary, "w") as handle:
            handle.write(job_id)
        os.replace(temporary, path)
    except OSError:
        pass  # Only a shortcut: the array is found by its name too.


def _on_signal(signum: int, frame: Any) -> None:
    global _stop_requested
    _stop_requested = True


def main(argv: list[str]) -> int:
    manifest, index = argv[0], int(argv[1])
    signal.signal(signal.SIGTERM, _on_signal)  # scancel / time limit: stop the jobs, keep no record.
    become_subreaper()
    folder = os.path.dirname(manifest)
    _note_job_id(folder, index)
    if os.path.exists(os.path.join(folder, VOID)):
        for unit in read_task(manifest, index):
            for job in unit["jobs"]:
                os.makedirs(job["work_dir"], exist_ok=True)
                _record(job["work_dir"], exit_code=None, message=VOID_MESSAGE, host=socket.gethostname(),
                        ended=time.time())
        return 0
    for unit in read_task(manifest, index):
        if _stop_requested:
            break
        run_unit(unit)
    stop_descendants([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
