"""The local executor: runs jobs as processes on this machine.

Supports ``xm.Binary``, ``xm.CommandList`` and ``xm.PythonCallable``. Each job gets a
directory with ``stdout.log``, ``stderr.log`` and ``results.json``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import attrs
from xmanager.executors.api import BackendSettings, ExecutorBackend, ExecutorPlugin, StatusSink
from xmanager.xm.executables import Binary, CommandList, PythonCallable
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable
from xmanager.xm.resources import JobRequirements


@attrs.frozen
class LocalSpec(ExecutorSpec):
    """Packaging for local runs: validation only (paths exist, functions pickle)."""


@attrs.frozen
class Local(Executor):
    """Run on this machine.

    Parameters
    ----------
    requirements:
        ``cpu`` counts against the experiment's concurrency limit (default one slot).
    docker_options:
        Accepted for XManager compatibility; containers run here in a later release.
    experimental_stream_output:
        Also print the job's stdout, each line prefixed with ``[unit/job]``.
    """

    Spec: ClassVar[type[LocalSpec]] = LocalSpec

    requirements: JobRequirements = attrs.field(factory=JobRequirements)
    docker_options: Optional[Any] = None
    experimental_stream_output: bool = False


class LocalPlugin(ExecutorPlugin):
    name = "local"
    executor_type = Local
    spec_type = LocalSpec
    supported_executables = (Binary, CommandList, PythonCallable)

    def package(self, packageable: Packageable) -> Executable:
        from xmanager.executors.packaging import package

        return package(packageable)

    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend:
        from xmanager.executors.local.backend import LocalBackend

        return LocalBackend(sink, settings)


plugin = LocalPlugin()

__all__ = ["Local", "LocalSpec", "plugin"]
