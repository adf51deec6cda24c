"""The local executor: runs jobs as processes or Docker containers on this machine.

Supports ``xm.Binary``, ``xm.CommandList`` and ``xm.PythonCallable`` as processes,
``xm.PythonContainer``, ``xm.Container`` and ``xm.Dockerfile`` as containers on the Docker
engine at ``DOCKER_HOST``, and ``xm.BazelBinary`` / ``xm.BazelContainer`` built with Bazel. Each job gets a directory with ``stdout.log``, ``stderr.log``
and ``results.json``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import attrs
from xmanager.executors.api import BackendSettings, ExecutorBackend, ExecutorPlugin, StatusSink
from xmanager.executors.local.containers import CONTAINER_SPECS, DockerOptions
from xmanager.xm.executables import BazelBinary, BazelContainer, Binary, CommandList, PythonCallable
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable
from xmanager.xm.resources import JobRequirements


@attrs.frozen
class LocalSpec(ExecutorSpec):
    """Packaging for local runs: validation only (paths exist, functions pickle)."""


def _docker_options(_instance: Any, _attribute: Any, value: Any) -> None:
    if value is not None and not isinstance(value, DockerOptions):
        raise TypeError(f"Local(docker_options=...) takes xm_local.DockerOptions, got {type(value).__name__}")


@attrs.frozen
class Local(Executor):
    """Run on this machine.

    Parameters
    ----------
    requirements:
        ``cpu`` counts against the experiment's concurrency limit (default one slot).
    docker_options:
        :class:`DockerOptions` for container jobs (ports, volumes, GPUs, network).
    experimental_stream_output:
        Also print the job's stdout, each line prefixed with ``[unit/job]`` (on by default, as
        in XManager; ``False`` keeps it in the log file only).
    """

    Spec: ClassVar[type[LocalSpec]] = LocalSpec

    # JobRequirements is unhashable, as in XManager: executors hash by their other fields.
    requirements: JobRequirements = attrs.field(factory=JobRequirements, hash=False)
    docker_options: Optional[DockerOptions] = attrs.field(default=None, validator=_docker_options)
    experimental_stream_output: bool = True


class LocalPlugin(ExecutorPlugin[Local]):
    name = "local"
    executor_type = Local
    spec_type = LocalSpec
    supported_executables = (Binary, CommandList, PythonCallable, *CONTAINER_SPECS, BazelBinary, BazelContainer)
    exports = {"Local": Local, "LocalSpec": LocalSpec, "DockerOptions": DockerOptions}

    def package(self, packageable: Packageable) -> Executable:
        from xmanager.executors.packaging import launch_dir, package

        if isinstance(packageable.executable_spec, (BazelBinary, BazelContainer)):
            from xmanager.executors.local.bazel import package_bazel

            return package_bazel(packageable, launch_dir())
        if isinstance(packageable.executable_spec, CONTAINER_SPECS):
            from xmanager.executors.local.containers import package_container

            return package_container(packageable)

        return package(packageable)

    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend[Local]:
        from xmanager.executors.local.backend import LocalBackend

        return LocalBackend(sink, settings)


plugin = LocalPlugin()

__all__ = ["DockerOptions", "Local", "LocalSpec", "plugin"]
