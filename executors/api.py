"""The one seam between the control plane and every executor.

An executor plugin lives in ``executors/<name>/`` and exposes an :class:`ExecutorPlugin`
object under the entry-point group ``xmanager.executors``. The control plane
(``xm_local``) uses nothing else from the folder; ``docs/executors.md`` walks through
writing one.

A plugin packages executable specs it supports, and opens an :class:`ExecutorBackend`
per experiment. The backend takes *batches* of units (so a scheduler can submit an
array), reports statuses through a sink, and accepts handles -- plain JSON data kept in
the store -- so another process can cancel, poll or read logs later.

Plugin, backend and launch requests are generic over the plugin's executor class, so a
backend sees ``job.executor`` as its own executor type (``Slurm``, ``Vertex``, ...): the
control plane hands a backend only jobs whose executor its plugin declared.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Optional, TypeVar

import attrs
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable
from xmanager.xm.status import Status

#: The executor class of a plugin (``Local``, ``Slurm``, ...), as its backend receives it.
ExecutorT = TypeVar("ExecutorT", bound=Executor)


class LaunchError(RuntimeError):
    """A launch cannot go on; the message says what failed and how to fix it.

    ``xmanager launch`` prints these as one line, without a traceback: they are about the
    machine or its services, not about the launch script's code.
    """


class ServiceUnavailableError(LaunchError):
    """A service an executor needs is not here: a Docker engine, cloud credentials, a cluster, a build tool."""


@attrs.frozen
class JobLaunch(Generic[ExecutorT]):
    """One job to start.

    ``args`` is the rendered argv tail (packaging args merged with the job's);
    ``kwargs`` the same keywords with their Python values, for function executables;
    ``env`` the job's own variables (the executor adds its base environment).
    """

    job_name: str
    executable: Executable
    executor: ExecutorT
    args: tuple[str, ...]
    kwargs: Mapping[str, Any]
    env: Mapping[str, str]
    work_dir: str


@attrs.frozen
class UnitLaunch(Generic[ExecutorT]):
    """The jobs of one work unit on one executor; several jobs (a JobGroup's) start together."""

    experiment_id: int
    work_unit_id: int
    jobs: tuple[JobLaunch[ExecutorT], ...]


@attrs.frozen
class Handle:
    """Where a launched job can be found again. ``data`` must be JSON-serialisable."""

    executor: str
    experiment_id: int
    work_unit_id: int
    job_name: str
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What the store keeps (``jobs.handle``); the job's ids are the keys of its row."""
        return {"executor": self.executor, "data": dict(self.data)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any], experiment_id: int, work_unit_id: int, job_name: str) -> Handle:
        """The handle :meth:`to_json` stored for the job with these ids."""
        return cls(str(value["executor"]), experiment_id, work_unit_id, job_name, dict(value.get("data") or {}))


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
class JobRef:
    """A job whose launcher died before it stored the job's handle, as :meth:`ExecutorBackend.recover`
    is asked about it: its ids and the ``work_dir`` its :class:`JobLaunch` had
    (``<experiment folder>/<work unit id>/<job name>``)."""

    experiment_id: int
    work_unit_id: int
    job_name: str
    work_dir: str


@attrs.frozen
class LogFiles:
    """Where a job's output is, for executors that write it to files."""

    stdout: Optional[str] = None
    stderr: Optional[str] = None


@attrs.frozen
class BackendSettings:
    """Settings the control plane passes when it opens a backend."""

    max_parallel: Optional[int] = None
    #: Asked by a backend that starts jobs itself, right before it starts a unit's jobs, with the
    #: unit's ``(experiment_id, work_unit_id)``: None to go on, or why the unit must not start (it
    #: was cancelled, maybe by another process); the backend then reports its jobs cancelled with
    #: that message. It must be cheap: it runs once per unit.
    may_start: Optional[Callable[[int, int], Optional[str]]] = None
    #: False: jobs' output goes to their log files only, even where an executor would also print it
    #: (``xmanager -q launch``).
    stream_output: bool = True


class ExecutorBackend(abc.ABC, Generic[ExecutorT]):
    """An executor as one experiment uses it: launch, poll, cancel, read logs.

    A backend may report statuses to its sink as they happen (processes it waits on), or only
    answer :meth:`refresh` (a queue it polls); the control plane polls the units of detached
    plugins (:attr:`ExecutorPlugin.detached`) and waits for the others.
    """

    @abc.abstractmethod
    def launch(self, units: Sequence[UnitLaunch[ExecutorT]]) -> list[Handle]:
        """Starts (or queues) every job of every unit; returns one handle per job, in order."""

    @abc.abstractmethod
    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        """Current statuses of ``handles``, in one batched query where the executor allows."""

    @abc.abstractmethod
    def cancel(self, handles: Sequence[Handle]) -> None:
        """Stops the jobs; they end as cancelled. Handles may come from another process."""

    @abc.abstractmethod
    def logs(self, handle: Handle) -> LogFiles:
        """Where the job's output can be read."""

    def recover(self, jobs: Sequence[JobRef]) -> list[Optional[Handle]]:
        """The handles of jobs this executor received from a launcher that died before it stored them
        (one per job, in order), found from what the executor itself holds; None for a job it never
        received.

        Asked only about jobs whose launcher is gone, and a None is final: the backend makes sure
        that a submission the dead launcher still had in flight never starts that job, so the
        control plane can fail it ("launcher died") and a resume runs it exactly once. The default
        finds nothing; a detached plugin should look (its handles are stored only after ``launch``
        returns, so a launcher killed during a long submission leaves queued jobs without one).
        """
        return [None] * len(jobs)

    def close(self) -> None:  # noqa: B027 - optional hook.
        """Releases what the backend holds (threads, connections). Jobs are left as they are."""


class ExecutorPlugin(abc.ABC, Generic[ExecutorT]):
    """What an executor folder registers: its user-facing classes, packaging, backend."""

    #: The entry-point name, stored with every job (``jobs.executor``) and in its handle.
    name: ClassVar[str]
    executor_type: type[ExecutorT]
    spec_type: type[ExecutorSpec]
    #: Executable spec classes ``package`` takes (XManager's ``CommandList`` is a named tuple, not a spec class).
    supported_executables: tuple[type, ...]
    #: True when jobs run on without the launching process (a cluster queue): leaving an
    #: experiment's ``with`` block does not wait for them, their handles are stored at launch,
    #: and ``wait_until_complete()`` polls :meth:`ExecutorBackend.refresh`.
    detached: ClassVar[bool] = False
    #: Classes ``xmanager.xm_local`` re-exports under these (capitalised) names
    #: (``xm_local.Local``, ``xm_local.DockerOptions``), looked up through the entry-point registry.
    exports: ClassVar[Mapping[str, object]] = {}

    @abc.abstractmethod
    def package(self, packageable: Packageable) -> Executable:
        """Validates and prepares one executable; errors name what is wrong (e.g. the path)."""

    @abc.abstractmethod
    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend[ExecutorT]:
        """A backend for one experiment; statuses go to ``sink``."""
