"""The in-process executor: calls ``xm.python_callable`` functions in threads of the launching process.

The smallest complete executor plugin, and the example ``docs/executors.md`` walks through:
its job table lives in memory, it reports statuses to the sink as they happen, and a unit's
results are the dict its function returns. It suits trying launch scripts and tests. Jobs
share the launching process, so a job's ``env_vars`` are not applied and a function that is
already running cannot be stopped: ``cancel`` drops queued jobs at once and records a running
one as cancelled when it returns.

This module holds what users name (``xm_local.InProcess``) and the plugin; the backend is in
:mod:`.backend`, imported when an experiment first launches on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from xmanager.executors.api import BackendSettings, ExecutorBackend, ExecutorPlugin, StatusSink
from xmanager.xm.executables import PythonCallable
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable


@attrs.frozen
class InProcessSpec(ExecutorSpec):
    """Packaging for in-process runs: nothing to build; the function is kept as it is."""


@attrs.frozen
class InProcess(Executor):
    """Call the job's function in a thread of the launching process (see the module docstring)."""

    Spec: ClassVar[type[InProcessSpec]] = InProcessSpec


@attrs.define(kw_only=True)
class FunctionExecutable(Executable):
    """A packaged ``xm.python_callable``: the function itself, called with the job's args as keywords."""

    function: Callable[..., Any]


class InProcessPlugin(ExecutorPlugin[InProcess]):
    name = "in_process"
    executor_type = InProcess
    spec_type = InProcessSpec
    supported_executables = (PythonCallable,)
    exports = {"InProcess": InProcess, "InProcessSpec": InProcessSpec}

    def package(self, packageable: Packageable) -> Executable:
        spec = packageable.executable_spec
        assert isinstance(spec, PythonCallable)  # The control plane checks supported_executables first.
        return FunctionExecutable(
            name=spec.name, function=spec.function, args=packageable.args, env_vars=packageable.env_vars
        )

    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend[InProcess]:
        from xmanager.executors.in_process.backend import InProcessBackend

        return InProcessBackend(sink, settings)


plugin = InProcessPlugin()

__all__ = ["FunctionExecutable", "InProcess", "InProcessPlugin", "InProcessSpec", "plugin"]
