"""The Slurm backend: units become array tasks, statuses come from a few batched queries.

``launch`` groups the units of a batch by executor settings, packs
``psets_per_task`` units per array task, and submits one ``sbatch --array`` per
``max_array_size`` tasks. Each group is first checked with ``sbatch --test-only``, so a
bad partition, account, time or resource request is reported (with Slurm's message and
the units it concerns) before anything is queued. What a task runs is a JSON manifest
(:mod:`.task`), never text pasted into the batch script, so argument values with spaces,
quotes, ``$``, backticks or newlines reach the job as they are.

Each array is named after its batch (``xm-<experiment>-<batch>``), and its folder
(``<experiment folder>/slurm/<batch>``) holds ``batch.json`` (its units by task, where it
was submitted) before ``sbatch`` runs, and the job id (``job_id``) once it returned or a
task started. So
``recover`` rebuilds the handles of a launcher that died before storing them: from
``job_id``, else by the array's name in ``squeue``/``sacct``/the job completion file. A batch
found nowhere is marked ``void`` (then looked for once more): a task of it that a dead
launcher's ``sbatch`` still queued runs nothing (:mod:`.task`), so its units fail once, as
"launcher died", and a resume runs them exactly once.

``refresh`` first reads the jobs' ``exit.json`` records (shared filesystem), then asks
``squeue`` once about every job still open, then ``sacct`` (with accounting) or the job
completion file (without) about jobs Slurm no longer queues.

A JobGroup runs as one allocation (``--ntasks`` = its jobs): each job is an ``srun``
step (``--exact``) started together by the task runner. We chose steps over
heterogeneous jobs because steps work on every cluster and share one queue wait; the
cost is one resource shape (the largest job's CPUs and memory) for all of the group.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Optional

import attrs
from xmanager.executors.api import (
    BackendSettings,
    ExecutorBackend,
    Handle,
    JobLaunch,
    JobRef,
    LogFiles,
    StatusSink,
    StatusUpdate,
    UnitLaunch,
)
from xmanager.executors.slurm.cluster import Cluster, SlurmError, TaskState
from xmanager.executors.slurm.executor import Slurm
from xmanager.executors.slurm.task import VOID, write_manifest
from xmanager.xm.resources import ResourceType, requested, resource_key
from xmanager.xm.status import Status

#: GPU gres type names that differ from the requirement's name (sites call an L4 "l4").
_GRES_NAMES = {ResourceType.L4_24TH: "l4"}

#: Slurm job states -> ours. Anything else (CONFIGURING, SUSPENDED, ...) counts as running.
STATES: dict[str, Status] = {
    "PENDING": Status.PENDING,
    "REQUEUED": Status.PENDING,
    "REQUEUE_HOLD": Status.PENDING,
    "REQUEUE_FED": Status.PENDING,
    "RESV_DEL_HOLD": Status.PENDING,
    "CONFIGURING": Status.RUNNING,
    "RUNNING": Status.RUNNING,
    "COMPLETING": Status.RUNNING,
    "RESIZING": Status.RUNNING,
    "SIGNALING": Status.RUNNING,
    "STAGE_OUT": Status.RUNNING,
    "SUSPENDED": Status.RUNNING,
    "STOPPED": Status.RUNNING,
    "COMPLETED": Status.COMPLETED,
    "CANCELLED": Status.CANCELLED,
    "REVOKED": Status.CANCELLED,
    "DEADLINE": Status.FAILED,
    "FAILED": Status.FAILED,
    "BOOT_FAIL": Status.FAILED,
    "NODE_FAIL": Status.FAILED,
    "OUT_OF_MEMORY": Status.FAILED,
    "PREEMPTED": Status.FAILED,
    "SPECIAL_EXIT": Status.FAILED,
    "TIMEOUT": Status.FAILED,
}
#: Final states after which a job may be requeued (``requeue_limit``).
RETRYABLE = {"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"}


def _python(executor: Slurm) -> str:
    return executor.python or sys.executable


def _mem_mb(amount: float) -> int:
    return max(1, math.ceil(amount / 2**20))


def directives(executor: Slurm, ntasks: int) -> list[str]:
    """The ``#SBATCH`` options of one job's allocation (without the array)."""
    options = []
    requirements = executor.requirements
    for flag, value in (
        ("--partition", executor.partition or requirements.location),
        ("--time", executor.time),
        ("--account", executor.account),
        ("--qos", executor.qos),
    ):
        if value:
            options.append(f"{flag}={value}")
    cpus = requested(requirements, ResourceType.CPU)
    if cpus:
        options.append(f"--cpus-per-task={math.ceil(cpus)}")
    memory = requested(requirements, ResourceType.MEMORY)
    if memory:
        options.append(f"--mem-per-cpu={_mem_mb(memory / max(1, math.ceil(cpus or 1)))}M")
    gres = []
    accelerator = requirements.accelerator
    if accelerator is not None:
        count = math.ceil(requested(requirements, accelerator))
        kind = "" if accelerator is ResourceType.LOCAL_GPU else f"{_GRES_NAMES.get(accelerator, resource_key(accelerator))}:"
        gres.append(f"gpu:{kind}{count}")
    if executor.gres:
        gres.append(executor.gres)
    if gres:
        options.append(f"--gres={','.join(gres)}")
    if ntasks > 1:
        options.append(f"--ntasks={ntasks}")
    options.append("--requeue" if executor.requeue_limit else "--no-requeue")
    options.extend(executor.directives)
    return options


def batch_script(executor: Slurm, *, name: str, tasks: int, ntasks: int, manifest: str, log_dir: str) -> str:
    array = f"0-{tasks - 1}" + (f"%{executor.array_parallelism}" if executor.array_parallelism else "")
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --array={array}",
             f"#SBATCH --output={log_dir}/%a.out", "#SBATCH --open-mode=append"]
    lines += [f"#SBATCH {option}" for option in directives(executor, ntasks)]
    lines += list(executor.setup)
    lines.append(
        f'exec {shlex.quote(_python(executor))} -m xmanager.executors.slurm.task {shlex.quote(manifest)} '
        '"$SLURM_ARRAY_TASK_ID"'
    )
    return "\n".join(lines) + "\n"


def _job_entry(
    job: JobLaunch[Slurm], executor: Slurm, gang_size: int, cpus: int, functions: dict[int, str]
) -> dict[str, Any]:
    """What the task runner needs to run one job. Nothing is written per job here: the job's
    folder is made on the node, and a function is pickled once per batch (``functions``)."""
    executable: Any = job.executable
    env = {**job.env, "XM_WORK_DIR": job.work_dir}
    entry: dict[str, Any] = {"job_name": job.job_name, "env": env, "work_dir": job.work_dir}
    if getattr(executable, "function", None) is not None:
        entry["function"] = functions[id(executable)]
        entry["kwargs"] = json.loads(json.dumps(dict(job.kwargs), default=str))
        argv = [_python(executor), "-m", "xmanager.executors.slurm.call", job.work_dir]
        # The function's module must import on the node as it does here (shared filesystem).
        here = [os.path.abspath(entry) for entry in sys.path if entry and os.path.isdir(entry)]
        env["PYTHONPATH"] = os.pathsep.join([*here, *filter(None, [env.get("PYTHONPATH")])])
    else:
        argv = [*executable.command, *job.args]
    if gang_size > 1:
        argv = ["srun", "--ntasks=1", "--nodes=1", f"--cpus-per-task={cpus}", "--exact",
                f"--job-name={job.job_name}", *argv]
    entry["argv"] = argv
    return entry


def _write_functions(units: Sequence[UnitLaunch[Slurm]], folder: str) -> dict[int, str]:
    """Pickled functions of a batch, one file per distinct executable."""
    paths: dict[int, str] = {}
    for unit in units:
        for job in unit.jobs:
            executable: Any = job.executable
            function = getattr(executable, "function", None)
            if function is not None and id(executable) not in paths:
                path = os.path.join(folder, f"function-{len(paths)}.pkl")
                with open(path, "wb") as handle:
                    handle.write(function)
                paths[id(executable)] = path
    return paths


class SlurmBackend(ExecutorBackend[Slurm]):

    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        self._sink = sink
        self._clusters: dict[tuple[Optional[str], tuple[str, ...]], Cluster] = {}
        self._requeued: dict[str, int] = {}
        self._lock = threading.Lock()

    def _cluster(self, key: tuple[Optional[str], tuple[str, ...]]) -> Cluster:
        with self._lock:
            cluster = self._clusters.get(key)
            if cluster is None:
                cluster = self._clusters[key] = Cluster(*key)
            return cluster

    # ---- launching ----------------------------------------------------------------------------
    def launch(self, units: Sequence[UnitLaunch[Slurm]]) -> list[Handle]:
        groups: dict[tuple[Slurm, int], list[UnitLaunch[Slurm]]] = {}
        for unit in units:
            groups.setdefault((unit.jobs[0].executor, len(unit.jobs)), []).append(unit)
        plans = [self._plan(executor, ntasks, members) for (executor, ntasks), members in groups.items()]
        for plan in plans:  # Everything is checked before anything is queued.
            plan.check()
        handles: dict[tuple[int, str], Handle] = {}
        for plan in plans:
            handles.update(plan.submit())
        return [handles[(unit.work_unit_id, job.job_name)] for unit in units for job in unit.jobs]

    def _plan(self, executor: Slurm, ntasks: int, units: list[UnitLaunch[Slurm]]) -> _Plan:
        cluster = self._cluster((executor.cluster, executor.ssh_options))
        size = executor.max_array_size or max(1, cluster.max_array_size - 1)
        per_task = executor.psets_per_task
        tasks = [units[i : i + per_task] for i in range(0, len(units), per_task)]
        return _Plan(executor, cluster, ntasks, [tasks[i : i + size] for i in range(0, len(tasks), size)])

    # ---- statuses ------------------------------------------------------------------------------
    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        updates: list[StatusUpdate] = []
        open_handles: list[Handle] = []
        for handle in handles:
            update = _from_exit_record(handle)
            if update is None:
                open_handles.append(handle)
            else:
                updates.append(update)
        by_cluster: dict[tuple[Optional[str], tuple[str, ...]], list[Handle]] = {}
        for handle in open_handles:
            by_cluster.setdefault(_cluster_key(handle), []).append(handle)
        for key, members in by_cluster.items():
            cluster = self._cluster(key)
            jobs = {str(h.data["job_id"]) for h in members}
            queued = cluster.queue(jobs)
            gone = [h for h in members if _task_id(h) not in queued]
            finished = cluster.finished({str(h.data["job_id"]) for h in gone}) if gone else {}
            retry: list[str] = []
            for handle in members:
                task = _task_id(handle)
                state = queued.get(task) or finished.get(task) or finished.get(f"{handle.data['job_id']}_*")
                if state is None:
                    continue
                if state.state in RETRYABLE and self._may_requeue(handle):
                    retry.append(task)
                    state = TaskState("REQUEUED", f"requeued after {state.state}")
                update = _from_slurm_state(handle, state)
                if update is not None and update.status.is_terminal:
                    # The job may have written its record since it was looked for.
                    update = _from_exit_record(handle) or update
                if update is not None:
                    updates.append(update)
            cluster.requeue(retry)
        return updates

    def _may_requeue(self, handle: Handle) -> bool:
        limit = int(handle.data.get("requeue_limit", 0))
        key = _task_id(handle)
        with self._lock:
            done = self._requeued.get(key, 0)
            if done >= limit:
                return False
            self._requeued[key] = done + 1
            return True

    def cancel(self, handles: Sequence[Handle]) -> None:
        by_cluster: dict[tuple[Optional[str], tuple[str, ...]], set[str]] = {}
        for handle in handles:
            by_cluster.setdefault(_cluster_key(handle), set()).add(_task_id(handle))
        for key, ids in by_cluster.items():
            self._cluster(key).cancel(ids)

    def logs(self, handle: Handle) -> LogFiles:
        work_dir = handle.data.get("work_dir", "")
        return LogFiles(os.path.join(work_dir, "stdout.log"), os.path.join(work_dir, "stderr.log"))

    # ---- a launcher that died before it stored its handles ------------------------------------
    def recover(self, jobs: Sequence[JobRef]) -> list[Optional[Handle]]:
        """Handles rebuilt from the batch folders of the jobs' experiments (see the module's doc)."""
        batches: dict[str, dict[int, tuple[_Batch, int]]] = {}
        wanted: dict[str, _Batch] = {}
        for job in jobs:
            root = os.path.dirname(os.path.dirname(job.work_dir))
            if root not in batches:
                batches[root] = _read_batches(root)
            found = batches[root].get(job.work_unit_id)
            if found is not None:
                wanted[found[0].folder] = found[0]
        self._find_job_ids(list(wanted.values()))
        handles: list[Optional[Handle]] = []
        for job in jobs:
            found = batches[os.path.dirname(os.path.dirname(job.work_dir))].get(job.work_unit_id)
            job_id = None if found is None else found[0].job_id
            if found is None or job_id is None or found[0].info.get("experiment_id") != job.experiment_id:
                handles.append(None)
                continue
            batch, index = found
            handles.append(_handle(job.experiment_id, job.work_unit_id, job.job_name, job.work_dir, job_id, index,
                                   batch.info, batch.folder))
        return handles

    def _find_job_ids(self, batches: list[_Batch]) -> None:
        """Sets each batch's job id: its ``job_id`` file, else Slurm's job of its name; a batch found
        nowhere is voided, then looked for once more (its ``sbatch`` may have been in flight)."""
        by_cluster: dict[tuple[Optional[str], tuple[str, ...]], list[_Batch]] = {}
        for batch in batches:
            if batch.job_id is None:
                by_cluster.setdefault((batch.info.get("cluster"), tuple(batch.info.get("ssh_options") or ())),
                                      []).append(batch)
        for key, members in by_cluster.items():
            cluster = self._cluster(key)
            since = min(float(batch.info.get("written", 0.0)) for batch in members)
            missing = members
            for attempt in range(2):
                named = cluster.named([batch.info["name"] for batch in missing], since)
                for batch in missing:
                    batch.job_id = named.get(batch.info["name"])
                missing = [batch for batch in missing if batch.job_id is None]
                if not missing or attempt:
                    break
                for batch in missing:  # From now on a task of it runs nothing, wherever it is queued.
                    with open(os.path.join(batch.folder, VOID), "w") as file:
                        file.write(f"{time.time()}\n")


class _Plan:
    """The sbatch submissions of one group of units (same executor, same number of jobs)."""

    def __init__(self, executor: Slurm, cluster: Cluster, ntasks: int, chunks: list[list[list[UnitLaunch[Slurm]]]]):
        self.executor = executor
        self.cluster = cluster
        self.ntasks = ntasks
        self.chunks = chunks
        first = chunks[0][0][0]
        self.experiment_id = first.experiment_id
        self.root = os.path.dirname(os.path.dirname(first.jobs[0].work_dir))

    def _script(self, name: str, tasks: int, manifest: str, log_dir: str) -> str:
        return batch_script(self.executor, name=name, tasks=tasks, ntasks=self.ntasks, manifest=manifest,
                            log_dir=log_dir)

    def check(self) -> None:
        script = self._script(f"xm-{self.experiment_id}", len(self.chunks[0]), "/dev/null", self.root)
        try:
            self.cluster.submit(script, test_only=True)
        except SlurmError as error:
            ids = [unit.work_unit_id for chunk in self.chunks for task in chunk for unit in task]
            shown = ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            raise SlurmError(f"Slurm refused work unit(s) {shown}: {error}") from None

    def submit(self) -> dict[tuple[int, str], Handle]:
        handles: dict[tuple[int, str], Handle] = {}
        cpus = max(1, math.ceil(requested(self.executor.requirements, ResourceType.CPU) or 1))
        for chunk in self.chunks:
            batch = uuid.uuid4().hex[:12]
            folder = os.path.join(self.root, "slurm", batch)
            os.makedirs(folder, exist_ok=True)
            manifest = os.path.join(folder, "tasks.jsonl")
            functions = _write_functions([unit for task in chunk for unit in task], folder)
            entries = [
                [{"work_unit_id": unit.work_unit_id,
                  "jobs": [_job_entry(job, self.executor, len(unit.jobs), cpus, functions) for job in unit.jobs]}
                 for unit in task]
                for task in chunk
            ]
            write_manifest(manifest, entries)
            name = f"xm-{self.experiment_id}-{batch}"
            info = {"name": name, "experiment_id": self.experiment_id, "cluster": self.executor.cluster,
                    "ssh_options": list(self.executor.ssh_options), "requeue_limit": self.executor.requeue_limit,
                    "written": time.time(), "tasks": [[unit.work_unit_id for unit in task] for task in chunk]}
            _write_atomically(os.path.join(folder, BATCH_FILE), json.dumps(info))  # Before anything is queued.
            job_id = self.cluster.submit(self._script(name, len(chunk), manifest, folder))
            _write_atomically(os.path.join(folder, JOB_ID_FILE), job_id)
            for index, task in enumerate(chunk):
                for unit in task:
                    for job in unit.jobs:
                        handles[(unit.work_unit_id, job.job_name)] = _handle(
                            unit.experiment_id, unit.work_unit_id, job.job_name, job.work_dir, job_id, index, info,
                            folder)
        return handles


#: What a batch folder holds besides the manifest: the batch (written before ``sbatch``) and its job id (after
#: it returned, or when a task starts: :mod:`.task` writes it too).
BATCH_FILE = "batch.json"
JOB_ID_FILE = "job_id"


@attrs.define
class _Batch:
    """A batch folder as ``recover`` reads it."""

    folder: str
    info: dict[str, Any]
    job_id: Optional[str] = None


def _read_batches(root: str) -> dict[int, tuple[_Batch, int]]:
    """Work unit id -> (its batch, its task index), for every batch submitted under the experiment
    folder ``root`` (a folder without ``batch.json`` never reached ``sbatch``)."""
    found: dict[int, tuple[_Batch, int]] = {}
    try:
        names = os.listdir(os.path.join(root, "slurm"))
    except FileNotFoundError:
        return found
    for name in sorted(names):
        folder = os.path.join(root, "slurm", name)
        try:
            with open(os.path.join(folder, BATCH_FILE)) as file:
                info = json.load(file)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            continue
        batch = _Batch(folder, info)
        try:
            with open(os.path.join(folder, JOB_ID_FILE)) as file:
                batch.job_id = file.read().strip() or None
        except FileNotFoundError:
            pass
        for index, units in enumerate(info.get("tasks") or ()):
            for unit_id in units:
                found[int(unit_id)] = (batch, index)
    return found


def _write_atomically(path: str, text: str) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _handle(
    experiment_id: int, work_unit_id: int, job_name: str, work_dir: str, job_id: str, task: int,
    info: dict[str, Any], folder: str,
) -> Handle:
    """A job's handle: the same whether ``submit`` made it or ``recover`` rebuilt it."""
    return Handle(
        executor="slurm", experiment_id=experiment_id, work_unit_id=work_unit_id, job_name=job_name,
        data={"job_id": job_id, "task": task, "work_dir": work_dir, "cluster": info["cluster"],
              "ssh_options": list(info["ssh_options"]), "slurm_log": os.path.join(folder, f"{task}.out"),
              "requeue_limit": info["requeue_limit"]},
    )


def _cluster_key(handle: Handle) -> tuple[Optional[str], tuple[str, ...]]:
    return handle.data.get("cluster"), tuple(handle.data.get("ssh_options") or ())


def _task_id(handle: Handle) -> str:
    return f"{handle.data['job_id']}_{handle.data['task']}"


def _from_exit_record(handle: Handle) -> Optional[StatusUpdate]:
    work_dir = handle.data.get("work_dir", "")
    try:
        with open(os.path.join(work_dir, "exit.json")) as file:
            record = json.load(file)
    except (FileNotFoundError, ValueError):
        return None
    code = record.get("exit_code")
    results = None
    message = record.get("message") or ""
    status = Status.COMPLETED if code == 0 else Status.FAILED
    try:
        with open(os.path.join(work_dir, "results.json")) as file:
            results = json.load(file)
        if not isinstance(results, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        results = None
    except ValueError as error:
        status, message, results = Status.FAILED, f"results.json is not a JSON object of results: {error}", None
    return StatusUpdate(
        experiment_id=handle.experiment_id, work_unit_id=handle.work_unit_id, job_name=handle.job_name,
        status=status, at=record.get("ended") or record.get("started") or 0.0, message=message,
        exit_code=code, host=record.get("host"), results=results,
    )


def _from_slurm_state(handle: Handle, state: TaskState) -> Optional[StatusUpdate]:
    base = state.state.split()[0].rstrip("+")
    status = STATES.get(base, Status.RUNNING)
    if status is Status.COMPLETED:
        # The task ended but this job left no exit record: it never ran to the end.
        status = Status.FAILED
        message = "Slurm: the task completed but the job left no exit record (see its Slurm log)"
    else:
        message = f"Slurm: {base}" + (f" ({state.reason})" if state.reason else "")
    return StatusUpdate(
        experiment_id=handle.experiment_id, work_unit_id=handle.work_unit_id, job_name=handle.job_name,
        status=status, message=message if status is not Status.RUNNING and status is not Status.PENDING else "",
        exit_code=state.exit_code if status.is_terminal else None,
    )
