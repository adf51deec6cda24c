"""The Slurm executor's user-facing classes and its plugin (see the package docstring)."""

from __future__ import annotations

import re
from typing import ClassVar, Optional

import attrs
from xmanager.executors.api import BackendSettings, ExecutorBackend, ExecutorPlugin, StatusSink
from xmanager.xm.converters import str_tuple
from xmanager.xm.executables import Binary, CommandList, PythonCallable
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable
from xmanager.xm.resources import JobRequirements

# Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2})$")


def _check_time(instance: object, attribute: attrs.Attribute[Optional[str]], value: Optional[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(
            f"Slurm(time={value!r}): not a Slurm time limit; use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
            "D-HH:MM:SS"
        )


def _check_directives(instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
    for directive in value:
        if not isinstance(directive, str) or not directive.startswith("-") or "\n" in directive:
            raise ValueError(f"Slurm(directives=...): {directive!r} is not an sbatch option such as '--constraint=a100'")


@attrs.frozen
class SlurmSpec(ExecutorSpec):
    """Packaging for Slurm: the same checks as for local runs (paths exist, functions pickle)."""


@attrs.frozen(kw_only=True)
class Slurm(Executor):
    """Run as Slurm batch jobs.

    Parameters
    ----------
    requirements:
        ``cpu`` -> ``--cpus-per-task``, ``memory`` (bytes) -> ``--mem``, GPUs and other
        accelerators -> ``--gres=gpu[:type]:N``.
    partition, time, account, qos:
        ``--partition``, ``--time`` (Slurm's formats, e.g. ``"2:00:00"`` or ``"1-12"``),
        ``--account``, ``--qos``.
    gres:
        Extra generic resources, passed as given (e.g. ``"nvme:1"``).
    directives:
        More sbatch options, each one string (``"--constraint=a100"``).
    setup:
        Shell lines run before each task (``module load ...``, ``source venv/bin/activate``).
    python:
        The interpreter on the nodes that runs our task runner (default: this one).
    cluster:
        ``None`` runs sbatch/squeue/... here; ``"user@login-node"`` runs them over SSH.
    ssh_options:
        Options for that ``ssh`` (``("-p", "2222")``, ``("-F", "~/.ssh/cluster_config")``).
    array_parallelism:
        At most this many tasks of an array run at once (``--array=...%N``).
    psets_per_task:
        Units packed into one array task, run one after the other.
    max_array_size:
        Tasks per array; default: the cluster's ``MaxArraySize`` minus one.
    requeue_limit:
        Times a unit's job is requeued after ``NODE_FAIL`` or ``PREEMPTED``.
    """

    Spec: ClassVar[type[SlurmSpec]] = SlurmSpec

    # JobRequirements is unhashable, as in XManager: executors hash by their other fields.
    requirements: JobRequirements = attrs.field(factory=JobRequirements, hash=False)
    partition: Optional[str] = None
    time: Optional[str] = attrs.field(default=None, validator=_check_time)
    account: Optional[str] = None
    qos: Optional[str] = None
    gres: Optional[str] = None
    directives: tuple[str, ...] = attrs.field(default=(), converter=str_tuple, validator=_check_directives)
    setup: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    python: Optional[str] = None
    cluster: Optional[str] = None
    ssh_options: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    array_parallelism: Optional[int] = None
    psets_per_task: int = attrs.field(default=1)
    max_array_size: Optional[int] = None
    requeue_limit: int = 0

    @psets_per_task.validator
    def _check_packing(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Slurm(psets_per_task={value!r}): must be a positive int")


class SlurmPlugin(ExecutorPlugin[Slurm]):
    name = "slurm"
    executor_type = Slurm
    spec_type = SlurmSpec
    supported_executables = (Binary, CommandList, PythonCallable)
    detached = True
    exports = {"Slurm": Slurm, "SlurmSpec": SlurmSpec}

    def package(self, packageable: Packageable) -> Executable:
        from xmanager.executors.packaging import package

        return package(packageable)

    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend[Slurm]:
        from xmanager.executors.slurm.backend import SlurmBackend

        return SlurmBackend(sink, settings)


plugin = SlurmPlugin()

__all__ = ["Slurm", "SlurmPlugin", "SlurmSpec", "plugin"]
