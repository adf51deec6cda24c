"""The building blocks of a launch: what to build, where, and the jobs made from them.

``ExecutableSpec`` (what) + ``ExecutorSpec`` (where to package for) form a
``Packageable``; packaging it gives an ``Executable``. An ``Executable`` and an
``Executor`` (where and how to run, with requirements) form a ``Job``. Jobs are grouped
into a ``JobGroup`` (started together; one failure fails the unit), produced by an async
job generator, or described by a backend's own ``JobConfig``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Optional, TypeVar, Union

import attrs
from xmanager.xm.args import SequentialArgs, UserArgs, merge_args, print_none_warning
from xmanager.xm.converters import any_dict

_ENV_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _check_env_names(_instance: Any, _attribute: Any, env: Mapping[str, Any]) -> None:
    for key in env:
        if not _ENV_NAME.fullmatch(key):  # A key that is not a string raises TypeError here, as in XManager.
            raise ValueError(f"Environment variables names must conform to [a-zA-Z_][a-zA-Z0-9_]*. Got {key!r}.")


def _sequential_args(value: Optional[UserArgs]) -> SequentialArgs:
    # A function, not SequentialArgs.from_collection: mypy's attrs plugin reads converters that are functions.
    return SequentialArgs.from_collection(value)


def _env_strings(value: Optional[Mapping[str, Any]]) -> dict[str, str]:
    env = dict(value or {})
    _check_env_names(None, None, env)
    return {key: str(item) for key, item in env.items()}


class ExecutableSpec(abc.ABC):
    """What to package. Backend-agnostic; an executor plugin decides how to build it."""

    @property
    @abc.abstractmethod
    def name(self) -> str: ...


# The data classes below are, as XManager's, mutable, compared and ordered by value, unhashable and
# keep a __dict__ (attributes assigned later are neither converted nor validated).
@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class Executable(abc.ABC):  # noqa: B024 - instantiable, as in XManager.
    """The result of packaging. Executor plugins subclass it with what they need to run.

    ``name`` names the jobs made from it by default. ``args`` and ``env_vars`` (ours, keyword-only
    and left out of the repr) come from the ``Packageable``; a job's own args are merged over them.
    """

    name: str
    args: SequentialArgs = attrs.field(
        factory=SequentialArgs, converter=_sequential_args, kw_only=True, repr=False
    )
    env_vars: dict[str, str] = attrs.field(factory=dict, converter=_env_strings, kw_only=True, repr=False)


class ExecutorSpec(abc.ABC):  # noqa: B024 - a marker base, as in XManager.
    """Where an executable is packaged for (e.g. a registry to push an image to)."""


class Executor(abc.ABC):
    """Where and how a job runs (with its requirements).

    Subclasses name their spec class in ``Spec`` (``Spec = LocalSpec``), so that ``Local.Spec()``
    builds one.
    """

    @classmethod
    @abc.abstractmethod
    def Spec(cls) -> ExecutorSpec:  # noqa: N802 - XManager's name.
        raise NotImplementedError

    @classmethod
    async def launch(cls, local_experiment_unit: Any, job_group: JobGroup) -> Sequence[Any]:
        """XManager's hook for executors that launch themselves; ours are launched by their plugin."""
        raise NotImplementedError


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class Packageable:
    """A request to package ``executable_spec`` for ``executor_spec``, with static args and env vars."""

    executable_spec: ExecutableSpec
    executor_spec: ExecutorSpec
    args: SequentialArgs = attrs.field(factory=SequentialArgs, converter=_sequential_args)
    env_vars: dict[str, Any] = attrs.field(factory=dict, converter=any_dict, validator=_check_env_names)


class Constraint(abc.ABC):  # noqa: B024 - a marker base, as in XManager.
    """A scheduling constraint on a JobGroup, such as 'same machine'."""


def _name(value: Optional[str]) -> str:
    return "" if value is None else value


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class Job:
    """One process: an executable run by an executor with args and env vars.

    ``name`` must be unique within its work unit; empty, it becomes the key path inside a
    JobGroup (``outer_inner``), or the executable's name for a lone job.
    """

    executable: Executable
    executor: Executor
    name: str = attrs.field(default="", converter=_name)
    args: SequentialArgs = attrs.field(factory=SequentialArgs, converter=_sequential_args)
    env_vars: dict[str, Any] = attrs.field(factory=dict, converter=any_dict, validator=_check_env_names)


class JobGroup:
    """Named jobs that start together; if one fails, the work unit fails.

    Example::

        xm.JobGroup(server=xm.Job(server_exe, executor),
                    client=xm.Job(client_exe, executor, args={'port': 8080}))

    Groups nest; ``constraints`` (keyword only) apply to the group's jobs.
    """

    jobs: dict[str, JobType]
    constraints: list[Constraint]

    def __init__(self, *, constraints: Optional[Sequence[Constraint]] = None, **jobs: JobType) -> None:
        self.jobs = jobs
        self.constraints = list(constraints) if constraints else []


class JobConfig(abc.ABC):  # noqa: B024 - a marker base, as in XManager.
    """A job described in a backend's own configuration language rather than as Job/JobGroup."""


#: ``async def generator(work_unit, **args)``: adds jobs to the unit it is given.
# XManager's alias allows None; an `async def` is required (core._check_job_type), so it returns an awaitable.
JobGeneratorType = Callable[..., Awaitable[Any]]
JobType = Union[Job, JobGroup, JobGeneratorType, JobConfig]
JobTypeVar = TypeVar("JobTypeVar", Job, JobGroup, JobGeneratorType, JobConfig)


def is_job_generator(job: Any) -> bool:
    """Whether ``job`` is a job generator (anything callable that is not a Job or JobGroup)."""
    return callable(job)


def get_args_for_all_jobs(job: JobType, args: Mapping[str, Any]) -> dict[str, Any]:
    """The nested ``add`` args mapping that gives the same ``args`` to every job of ``job``."""
    if isinstance(job, JobGroup):
        return {key: get_args_for_all_jobs(member, args) for key, member in job.jobs.items()}
    return {"args": dict(args)}


__all__ = [
    "Constraint", "Executable", "ExecutableSpec", "Executor", "ExecutorSpec", "Job", "JobConfig",
    "JobGeneratorType", "JobGroup", "JobType", "JobTypeVar", "Packageable", "SequentialArgs", "UserArgs",
    "get_args_for_all_jobs", "is_job_generator", "merge_args", "print_none_warning",
]
