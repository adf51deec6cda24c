"""The one seam between the control plane and every executor.

An executor plugin lives in ``executors/<name>/`` and exposes an :class:`ExecutorPlugin`
object under the entry-point group ``xmanager.executors``. The control plane
(``xm_local``) uses nothing else from the folder.

A plugin packages executable specs it supports, and opens an :class:`ExecutorBackend`
per experiment. The backend takes *batches* of units (so a scheduler can submit an
array), reports statuses through a sink, and accepts handles -- plain JSON data kept in
the store -- so another process can cancel, poll or read logs later.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Optional

import attrs
from xmanager.xm.job_blocks import Executable, ExecutableSpec, Executor, ExecutorSpec, Packageable
from xmanager.xm.resources import JobRequirements
from xmanager.xm.status import Status


class LaunchError(RuntimeError):
    """A launch cannot go on; the message says what failed and how to fix it.

    ``xmanager launch`` prints these as one line, without a traceback: they are about the
    machine or its services, not about the launch script's code.
    """


class ServiceUnavailableError(LaunchError):
    """A service an executor needs is not here: a Docker engine, cloud credentials, a cluster, a build tool."""


@attrs.frozen
class JobLaunch:
    """One job to start.

    ``args`` is the rendered argv tail (packaging args merged with the job's);
    ``kwargs`` the same keywords with their Python values, for function executables;
    ``env`` the job's own variables (the executor adds its base environment).
    """

    job_name: str
    executable: Executable
    executor: Executor
    args: tuple[str, ...]
    kwargs: Mapping[str, Any]
    env: Mapping[str, str]
    work_dir: str


@attrs.frozen
class UnitLaunch:
    """The jobs of one work unit; ``gang`` means they start together (a JobGroup)."""

    experiment_id: int
    work_unit_id: int
    jobs: tuple[JobLaunch, ...]
    gang: bool = False


@attrs.frozen
class Handle:
    """Where a launched job can be found again. ``data`` must be JSON-serialisable."""

    executor: str
    experiment_id: int
    work_unit_id: int
    job_name: str
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"executor": self.executor, "data": dict(self.data)}


@attrs.frozen
class StatusUpdate:
    """A job's new status, as an executor reports it."""

    experiment_id: int
    work_unit_id: int
    job_name: str
    status: Status
    at: float = attrs.field(factory=time.time)
    message: str = ""
    exit_code: Optional[int] = None
    host: Optional[str] = None
    handle: Optional[Handle] = None
    results: Optional[Mapping[str, Any]] = None


StatusSink = Callable[[StatusUpdate], None]


@attrs.frozen
class LogFiles:
    """Where a job's output is, for executors that write it to files."""

    stdout: Optional[str] = None
    stderr: Optional[str] = None


@attrs.frozen
class BackendSettings:
    """Settings the control plane passes when it opens a backend."""

    max_parallel: Optional[int] = None


class ExecutorBackend(abc.ABC):
    """An executor as one experiment uses it: launch, poll, cancel, read logs."""

    #: True when the backend calls the sink itself; otherwise the control plane polls refresh().
    pushes_updates: ClassVar[bool] = False
    #: True when jobs run on without this process (a cluster queue): leaving an experiment's
    #: ``with`` block does not wait for them; ``wait_until_complete()`` polls them.
    detached: ClassVar[bool] = False

    @abc.abstractmethod
    def launch(self, units: Sequence[UnitLaunch]) -> list[Handle]:
        """Starts (or queues) every job of every unit; returns one handle per job, in order."""

    @abc.abstractmethod
    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        """Current statuses of ``handles``, in one batched query where the executor allows."""

    @abc.abstractmethod
    def cancel(self, handles: Sequence[Handle]) -> None:
        """Stops the jobs; they end as cancelled."""

    @abc.abstractmethod
    def logs(self, handle: Handle) -> LogFiles:
        """Where the job's output can be read."""

    def close(self) -> None:  # noqa: B027 - optional hook.
        """Releases what the backend holds (threads, connections). Jobs are left as they are."""


class ExecutorPlugin(abc.ABC):
    """What an executor folder registers: its user-facing classes, packaging, backend."""

    name: ClassVar[str]
    executor_type: ClassVar[type[Executor]]
    spec_type: ClassVar[type[ExecutorSpec]]
    supported_executables: ClassVar[tuple[type[ExecutableSpec], ...]]

    @abc.abstractmethod
    def package(self, packageable: Packageable) -> Executable:
        """Validates and prepares one executable; errors name what is wrong (e.g. the path)."""

    @abc.abstractmethod
    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend:
        """A backend for one experiment; statuses go to ``sink``."""

    def requirements_of(self, executor: Executor) -> JobRequirements:
        return getattr(executor, "requirements", None) or JobRequirements()
