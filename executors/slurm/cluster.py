"""Talking to a Slurm cluster: its commands, here or on a login node over SSH.

Every query covers many jobs at once (one ``squeue`` for a whole experiment). Slurm's
own error text is kept in :class:`SlurmError`. Finished jobs are found with ``sacct``
when the cluster has accounting, else in the job completion file (``JobCompLoc``,
read through the shared filesystem).
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from typing import Optional

import attrs

PACKAGE_HINT = "install the Slurm client commands (Debian/Ubuntu: apt-get install slurm-client, or slurm-wlm)"


class SlurmError(RuntimeError):
    """A Slurm command failed; the message is Slurm's own."""


@attrs.frozen
class TaskState:
    """A job's or array task's state as Slurm reports it."""

    state: str
    reason: str = ""
    exit_code: Optional[int] = None


@attrs.define
class Cluster:
    """Slurm's commands on this machine (``host=None``) or on ``host`` over SSH (``ssh_options``
    such as ``("-F", "ssh_config")`` or ``("-p", "2222")`` go before the host)."""

    host: Optional[str] = None
    ssh_options: tuple[str, ...] = ()

    def run(self, command: Sequence[str], *, input: Optional[str] = None, check: bool = True) -> str:
        argv = self._argv(list(command))
        try:
            result = subprocess.run(argv, input=input, capture_output=True, text=True)
        except FileNotFoundError as error:
            raise SlurmError(f"{argv[0]} not found: {error}; {PACKAGE_HINT}") from None
        if check and result.returncode != 0:
            text = (result.stderr or result.stdout).strip()
            raise SlurmError(f"{argv[0]} failed (exit {result.returncode}): {text}")
        return result.stdout

    # ---- configuration ----------------------------------------------------------------------
    @functools.cached_property
    def config(self) -> dict[str, str]:
        """``scontrol show config`` as a dict."""
        values = {}
        for line in self.run(["scontrol", "show", "config"]).splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
        return values

    @property
    def max_array_size(self) -> int:
        return int(self.config.get("MaxArraySize", "1001"))

    @property
    def has_accounting(self) -> bool:
        return "none" not in self.config.get("AccountingStorageType", "accounting_storage/none")

    @property
    def jobcomp_file(self) -> Optional[str]:
        if self.config.get("JobCompType", "") != "jobcomp/filetxt":
            return None
        return self.config.get("JobCompLoc") or None

    # ---- jobs -------------------------------------------------------------------------------
    def submit(self, script: str, *, test_only: bool = False) -> str:
        """Submits a batch script (on stdin); returns the job id (``--test-only``: Slurm's answer)."""
        if test_only:
            try:
                result = subprocess.run(
                    self._argv(["sbatch", "--test-only"]), input=script, capture_output=True, text=True
                )
            except FileNotFoundError as error:
                raise SlurmError(f"cannot run sbatch: {error}; {PACKAGE_HINT}") from None
            if result.returncode != 0:
                raise SlurmError((result.stderr or result.stdout).strip())
            return result.stderr.strip()
        return self.run(["sbatch", "--parsable"], input=script).strip().split(";")[0]

    def _argv(self, command: list[str]) -> list[str]:
        if self.host:
            return ["ssh", "-o", "BatchMode=yes", *self.ssh_options, self.host, shlex.join(command)]
        if shutil.which(command[0]) is None:
            raise SlurmError(f"{command[0]} not found on PATH; {PACKAGE_HINT}")
        return command

    def queue(self, job_ids: Iterable[str]) -> dict[str, TaskState]:
        """States of the jobs' tasks Slurm still holds, one ``squeue`` call (``123`` and ``123_4`` keys)."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        text = self.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"], check=False)
        states = {}
        for line in text.splitlines():
            task, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            if task:
                states[task.strip()] = TaskState(state.strip(), "" if reason in ("None", "") else reason.strip())
        return states

    def finished(self, job_ids: Iterable[str]) -> dict[str, TaskState]:
        """Final states of jobs Slurm no longer queues: ``sacct``, else the job completion file."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        if self.has_accounting:
            return self._sacct(ids)
        path = self.jobcomp_file
        return _read_jobcomp(path, set(ids)) if path else {}

    def _sacct(self, ids: list[str]) -> dict[str, TaskState]:
        text = self.run(
            ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "--format=JobID,State,ExitCode,Reason"], check=False
        )
        states = {}
        for line in text.splitlines():
            parts = line.split("|")
            if len(parts) >= 3:
                code = parts[2].split(":")[0]
                reason = parts[3] if len(parts) > 3 and parts[3] != "None" else ""
                state = TaskState(parts[1].split()[0], reason, int(code) if code.isdigit() else None)
                for key in expand(parts[0]):
                    states[key] = state
        return states

    def named(self, names: Iterable[str], since: float) -> dict[str, str]:
        """The job ids of jobs with these names (``--job-name``) submitted after ``since`` (a Unix
        time), whether Slurm still queues them or they ended: ``squeue``, then ``sacct`` (with
        accounting) or the job completion file for the names it did not find."""
        wanted = set(names)
        if not wanted:
            return {}
        found: dict[str, str] = {}
        text = self.run(["squeue", "-h", "-t", "all", "-n", ",".join(sorted(wanted)), "-o", "%j|%F"], check=False)
        for line in text.splitlines():
            name, _, job = line.strip().partition("|")
            if name in wanted and job.strip().isdigit():
                found[name] = job.strip()
        rest = wanted - found.keys()
        if rest and self.has_accounting:
            start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 86400))  # Any clock skew.
            text = self.run(["sacct", "-X", "-n", "-P", "-S", start, "-E", "now", "--name", ",".join(sorted(rest)),
                             "--format=JobName,JobID"], check=False)
            for line in text.splitlines():
                name, _, job = line.partition("|")
                if name in rest:
                    found.setdefault(name, job.split("_")[0].split(".")[0])
        elif rest and self.jobcomp_file:
            found.update(_named_in_jobcomp(self.jobcomp_file, rest))
        return found

    def cancel(self, ids: Iterable[str]) -> None:
        """Cancels jobs or array tasks (``123``, ``123_4``): the pending ones first, so that no CPU a
        cancelled running task frees starts a task that is being cancelled too."""
        ids = sorted(set(ids))
        if not ids:
            return
        # Not ``scancel --state=PENDING 12_3``: with a state filter scancel cancels the whole array 12.
        queued = self.queue({job.split("_")[0] for job in ids})
        pending = [job for job in ids if job in queued and queued[job].state == "PENDING"]
        for batch in (pending, [job for job in ids if job not in pending]):
            if batch:
                self.run(["scancel", *batch], check=False)

    def requeue(self, ids: Iterable[str]) -> None:
        ids = sorted(set(ids))
        if ids:
            self.run(["scontrol", "requeue", ",".join(ids)], check=False)


def _read_jobcomp(path: str, ids: set[str]) -> dict[str, TaskState]:
    """Lines of ``jobcomp/filetxt`` (``JobId=.. JobState=.. ExitCode=a:b`` ...) for ``ids``.

    Array tasks appear under their own job ids, with ``ArrayJobId``/``ArrayTaskId`` fields
    on Slurm versions that write them; both spellings are returned. Tasks that never
    started share one record without those fields, returned as ``<job>_*``.
    """
    states: dict[str, TaskState] = {}
    try:
        handle = open(path, errors="replace")  # noqa: SIM115 - closed below.
    except FileNotFoundError:
        return states
    with handle:
        for line in handle:
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            job = fields.get("JobId", "")
            array_job, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
            keys = [job]
            if array_job and task and task not in ("4294967294", "N/A"):
                keys += expand(f"{array_job}_[{task}]")
            elif job in ids:
                keys.append(f"{job}_*")  # The array's tasks that never started (one record for all).
            if not any(key in ids or key.split("_")[0] in ids for key in keys):
                continue
            code = fields.get("ExitCode", "").split(":")[0]
            state = TaskState(fields.get("JobState", "UNKNOWN"), "", int(code) if code.isdigit() else None)
            for key in keys:
                states[key] = state
    return states


def _named_in_jobcomp(path: str, names: set[str]) -> dict[str, str]:
    """Job ids of the ``jobcomp/filetxt`` records whose ``Name=`` is one of ``names`` (an array's
    tasks under its ``ArrayJobId`` where Slurm writes it)."""
    found: dict[str, str] = {}
    try:
        handle = open(path, errors="replace")  # noqa: SIM115 - closed below.
    except FileNotFoundError:
        return found
    with handle:
        for line in handle:
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            name = fields.get("Name")
            if name in names:
                array_job = fields.get("ArrayJobId", "")
                found.setdefault(name, array_job if array_job.isdigit() and array_job != "0" else fields.get("JobId", ""))
    return found


def expand(job: str) -> list[str]:
    """``"12_[0-2,5%4]"`` -> ``["12_0", "12_1", "12_2", "12_5"]`` (array tasks Slurm reports as a range)."""
    base, sep, rest = job.partition("_[")
    if not sep:
        return [job]
    keys = []
    for part in rest.rstrip("]").split("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            keys += [f"{base}_{index}" for index in range(int(first), int(last or first) + 1)]
    return keys
