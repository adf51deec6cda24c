"""The building blocks of a launch: what to build, where, and the jobs made from them.

``ExecutableSpec`` (what) + ``ExecutorSpec`` (where to package for) form a
``Packageable``; packaging it gives an ``Executable``. An ``Executable`` and an
``Executor`` (where and how to run, with requirements) form a ``Job``. Jobs are grouped
into a ``JobGroup`` (started together; one failure fails the unit) or produced by an
async job generator.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Optional, Union

import attrs
from xmanager.xm.args import SequentialArgs, UserArgs

_ENV_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _to_args(value: UserArgs | None) -> SequentialArgs:
    return SequentialArgs.from_collection(value)


def _to_env(value: Mapping[str, Any] | None) -> dict[str, str]:
    env = dict(value or {})
    for key, item in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ValueError(
                f"environment variable name {key!r} is invalid: it must match "
                "[a-zA-Z_][a-zA-Z0-9_]*"
            )
        env[key] = str(item)
    return env


class ExecutableSpec(abc.ABC):
    """What to package. Backend-agnostic; an executor plugin decides how to build it."""

    @property
    @abc.abstractmethod
    def name(self) -> str: ...


@attrs.define(kw_only=True)
class Executable:
    """The result of packaging. Executor plugins subclass it with what they need to run.

    ``args`` and ``env_vars`` come from the ``Packageable``; a job's own args are merged
    over them.
    """

    name: str
    args: SequentialArgs = attrs.field(factory=SequentialArgs, converter=_to_args)
    env_vars: dict[str, str] = attrs.field(factory=dict, converter=_to_env)


class ExecutorSpec(abc.ABC):  # noqa: B024 - a marker base, like XManager's.
    """Where an executable is packaged for (e.g. a registry to push an image to)."""


class Executor(abc.ABC):
    """Where and how a job runs (with its requirements).

    Subclasses name their spec class in ``Spec`` so that ``Local.Spec()`` works.
    """

    Spec: ClassVar[Callable[..., ExecutorSpec]]


@attrs.define
class Packageable:
    """A request to package ``executable_spec`` for ``executor_spec``."""

    executable_spec: ExecutableSpec
    executor_spec: ExecutorSpec
    args: SequentialArgs = attrs.field(factory=SequentialArgs, converter=_to_args)
    env_vars: dict[str, str] = attrs.field(factory=dict, converter=_to_env)


@attrs.define
class Job:
    """One process: an executable run by an executor with args and env vars.

    ``name`` defaults to the executable's name, or to the key path inside a JobGroup.
    """

    executable: Executable
    executor: Executor
    name: Optional[str] = None
    args: SequentialArgs = attrs.field(factory=SequentialArgs, converter=_to_args)
    env_vars: dict[str, str] = attrs.field(factory=dict, converter=_to_env)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.executable, Executable):
            raise TypeError(
                "Job.executable must be a packaged Executable (from experiment.package), "
                f"got {type(self.executable).__name__}"
            )
        if not isinstance(self.executor, Executor):
            raise TypeError(f"Job.executor must be an Executor, got {type(self.executor).__name__}")


class Constraint(abc.ABC):  # noqa: B024
    """A scheduling constraint on a JobGroup, such as 'same machine'."""


class JobGroup:
    """Named jobs that start together; if one fails, the work unit fails.

    Example::

        xm.JobGroup(server=xm.Job(server_exe, executor),
                    client=xm.Job(client_exe, executor, args={'port': 8080}))
    """

    def __init__(self, *, constraints: list[Constraint] | None = None, **jobs: JobType) -> None:
        if not jobs:
            raise ValueError("a JobGroup needs at least one job")
        for key, job in jobs.items():
            if not isinstance(job, (Job, JobGroup)):
                raise TypeError(f"JobGroup member {key!r} must be a Job or JobGroup, got {type(job).__name__}")
        self.jobs: dict[str, Job | JobGroup] = jobs
        self.constraints = list(constraints or [])

    def __repr__(self) -> str:
        return f"JobGroup({', '.join(self.jobs)})"


JobGeneratorType = Callable[..., Awaitable[Any]]
JobType = Union[Job, JobGroup, JobGeneratorType]


def get_args_for_all_jobs(job: Job | JobGroup, args: UserArgs) -> dict[str, Any]:
    """Builds the nested ``add`` args mapping that gives the same ``args`` to every job."""
    if isinstance(job, Job):
        return {"args": args}
    return {key: get_args_for_all_jobs(member, args) for key, member in job.jobs.items()}
