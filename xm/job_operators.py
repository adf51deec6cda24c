"""Operations on job structures: copying, naming, applying ``add`` args, flattening, constraint cliques.

``add(job, args)`` semantics (XManager's): for a ``Job``, ``args`` is ``{'args': ...,
'env_vars': ...}``; for a ``JobGroup``, a mapping from member name to that member's args.
As a shorthand (ours), a ``Job`` also takes its arguments directly
(``add(job, args={'lr': 0.1})``), which is how sweeps are usually written.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, TypeVar

import attrs
from xmanager.xm.args import merge_args
from xmanager.xm.job_blocks import (
    Constraint,
    Executable,
    Executor,
    Job,
    JobGroup,
    JobType,
    _check_env_names,
    is_job_generator,
)

_JOB_ARG_KEYS = frozenset({"args", "env_vars"})


#: Any job type, kept through a copy (XManager's JobTypeVar is constrained, so it rejects a union such as
#: ``Job | JobGroup``).
_AnyJob = TypeVar("_AnyJob", bound=JobType)


def shallow_copy_job_type(job_type: _AnyJob) -> _AnyJob:
    """A copy of the job structure (groups and jobs), sharing executables, executors and generators.

    Generators (anything callable) are returned as they are; anything else is copied with ``copy.copy``.
    """
    if is_job_generator(job_type):
        return job_type
    if isinstance(job_type, JobGroup):
        group = copy.copy(job_type)
        group.jobs = {key: shallow_copy_job_type(member) for key, member in job_type.jobs.items()}
        return group
    return copy.copy(job_type)


def populate_job_names(job_type: JobType) -> None:
    """Names every unnamed job in place: its key path in groups (``outer_inner``), else its executable's name."""

    def visit(item: Any, path: tuple[str, ...]) -> None:
        if isinstance(item, Job):
            if not item.name:
                item.name = "_".join(path) if path else item.executable.name
        elif isinstance(item, JobGroup):
            for key, member in item.jobs.items():
                visit(member, (*path, key))

    visit(job_type, ())


def apply_args(job_type: JobType, args: Mapping[str, Any]) -> None:
    """Applies ``add``-style ``args`` in place (on a copy made by :func:`shallow_copy_job_type`).

    A Job takes ``{'args': ..., 'env_vars': ...}`` (merged over its own); a JobGroup takes a
    mapping from member name to the member's args. Raises ValueError for any other key.
    Generators and job configs take their args as call arguments, not here.
    """
    if isinstance(job_type, Job):
        unknown = set(args) - _JOB_ARG_KEYS
        if unknown:
            raise ValueError(f"xm.Job takes args {sorted(_JOB_ARG_KEYS)}, not {sorted(map(str, unknown))}")
        if "args" in args:
            job_type.args = merge_args(job_type.args, args["args"])
        if "env_vars" in args:
            job_type.env_vars = {**job_type.env_vars, **args["env_vars"]}
    elif isinstance(job_type, JobGroup) and args:
        unknown = set(args) - set(job_type.jobs)
        if unknown:
            raise ValueError(
                f"args name {', '.join(map(repr, sorted(map(str, unknown))))}, which are not members of the "
                f"xm.JobGroup (members: {', '.join(job_type.jobs)})"
            )
        for key, member in job_type.jobs.items():
            apply_args(member, args.get(key, {}))


def normalize_args(job_type: JobType, args: Any) -> Any:
    """``add`` args in XManager's shape, with our shorthand for a Job's own arguments expanded.

    For a Job, a mapping with keys other than ``args``/``env_vars``, a list or an
    ``xm.SequentialArgs`` are its arguments: ``{'lr': 0.1}`` -> ``{'args': {'lr': 0.1}}``.
    """
    if args is None:
        return None
    if isinstance(job_type, Job):
        if isinstance(args, Mapping) and set(args) <= _JOB_ARG_KEYS:
            return args
        return {"args": args}
    if isinstance(job_type, JobGroup):
        if not isinstance(args, Mapping):
            raise TypeError(f"args for an xm.JobGroup map member names to their args, got {type(args).__name__}")
        return {key: normalize_args(job_type.jobs[key], value) if key in job_type.jobs else value for key, value in args.items()}
    return args


def _unsupported(job_type: Any) -> TypeError:
    return TypeError(f"Unsupported job_type: {job_type!r}")


def collect_jobs_by_filter(job_group: JobGroup, predicate: Callable[[Job], bool]) -> list[Job]:
    """The jobs of ``job_group`` (nested groups flattened, in order) for which ``predicate`` holds.

    Raises TypeError for a member that is neither a Job nor a JobGroup.
    """
    found: list[Job] = []

    def visit(item: Any) -> None:
        if isinstance(item, Job):
            if predicate(item):
                found.append(item)
        elif isinstance(item, JobGroup):
            for member in item.jobs.values():
                visit(member)
        else:
            raise _unsupported(item)

    visit(job_group)
    return found


def flatten_jobs(job_group: JobGroup) -> list[Job]:
    """Every job of ``job_group``, nested groups flattened, in order (the jobs themselves, not copies)."""
    return collect_jobs_by_filter(job_group, lambda _: True)


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class ConstraintClique:
    """A constraint of a JobGroup with every job it covers.

    ``jobs`` are the group's jobs, nested ones included; ``size`` counts the group's direct
    members; ``group_name`` names the group and ``parent_group_name`` the nearest enclosing
    group that has constraints of its own.
    """

    constraint: Constraint
    jobs: list[Job]
    group_name: Optional[str] = None
    size: Optional[int] = None
    parent_group_name: Optional[str] = None


def aggregate_constraint_cliques(job_group: JobGroup) -> list[ConstraintClique]:
    """One clique per constraint in ``job_group`` and its nested groups, outer groups first.

    Every group gets a unique name ``jobgroup_<n>_<uuid hex>``, numbered in visiting order. A lone
    Job has no cliques; a member that is neither a Job nor a JobGroup raises TypeError.
    """
    counter = 0

    def visit(item: Any, parent: Optional[str]) -> tuple[list[ConstraintClique], list[Job]]:
        nonlocal counter
        if isinstance(item, Job):
            return [], [item]
        if not isinstance(item, JobGroup):
            raise _unsupported(item)
        name = f"jobgroup_{counter}_{uuid.uuid4().hex}"
        counter += 1
        inner: list[ConstraintClique] = []
        jobs: list[Job] = []
        for member in item.jobs.values():
            cliques, member_jobs = visit(member, name if item.constraints else None)
            inner += cliques
            jobs += member_jobs
        own = [ConstraintClique(constraint, jobs, name, len(item.jobs), parent) for constraint in item.constraints]
        return own + inner, jobs

    cliques, _ = visit(job_group, None)
    return cliques


def get_jobs(job_group: JobGroup) -> dict[str, JobType]:
    """The group's jobs by job name (nested groups flattened; other members by their key).

    Raises ValueError when a job's name is already taken at its own level; a nested group's jobs
    are merged in as they are (a later one with the same name replaces the earlier).
    """
    jobs: dict[str, JobType] = {}

    def put(name: str, job: JobType) -> None:
        if name in jobs:
            raise ValueError(f"{name} is duplicated in the experiment.")
        jobs[name] = job

    for key, member in job_group.jobs.items():
        if isinstance(member, Job):
            put(member.name, member)
        elif isinstance(member, JobGroup):
            jobs.update(get_jobs(member))
        else:
            put(key, member)
    return jobs


def named_jobs(job: Job | JobGroup, args: Any = None) -> list[Job]:
    """What a unit launches for ``add(job, args)``: named copies of every job, args applied, checked.

    Names are the key path inside groups joined by ``_``; a lone job keeps its own name or
    takes the executable's. Args assigned after construction become ``SequentialArgs`` and env
    var values strings. Raises TypeError for members that are not jobs (or jobs without a packaged
    executable) and ValueError for duplicate names or invalid env var names.
    """
    copied = shallow_copy_job_type(job)
    normalized = normalize_args(job, args)
    if normalized is not None:
        apply_args(copied, normalized)
    populate_job_names(copied)
    jobs = [copied] if isinstance(copied, Job) else flatten_jobs(copied)
    seen: set[str] = set()
    for item in jobs:
        _check_launchable(item)
        if item.name in seen:
            raise ValueError(f"two jobs in one work unit are named {item.name!r}; give them distinct names")
        seen.add(item.name)
        item.args = merge_args(item.args)
        item.env_vars = dict(item.env_vars)
        _check_env_names(None, None, item.env_vars)
        item.env_vars = {key: str(value) for key, value in item.env_vars.items()}
    return jobs


def _check_launchable(job: Job) -> None:
    if not isinstance(job.executable, Executable):
        raise TypeError(
            f"job {job.name!r}: Job.executable must be a packaged Executable (from experiment.package), "
            f"got {type(job.executable).__name__}"
        )
    if not isinstance(job.executor, Executor):
        raise TypeError(f"job {job.name!r}: Job.executor must be an Executor, got {type(job.executor).__name__}")


def unit_parameters(jobs: Sequence[Job], grouped: bool) -> dict[str, Any]:
    """The parameters that describe a work unit: its jobs' keyword args.

    A lone job's keywords are used as they are; in a group they are prefixed with the job
    name (``server.port``). A ShellSafeArg value is shown as written.
    """
    from xmanager.xm.utils import ShellSafeArg

    params: dict[str, Any] = {}
    for job in jobs:
        for key, value in job.args.to_dict(kwargs_only=True).items():
            shown = value.arg if isinstance(value, ShellSafeArg) else value
            params[f"{job.name}.{key}" if grouped else key] = shown
    return params


__all__ = [
    "ConstraintClique", "aggregate_constraint_cliques", "apply_args", "collect_jobs_by_filter", "flatten_jobs",
    "get_jobs", "named_jobs", "normalize_args", "populate_job_names", "shallow_copy_job_type", "unit_parameters",
]
