"""Turning what ``add()`` receives into a flat list of named jobs with their final args.

XManager's ``add(job, args)`` semantics: for a ``Job``, ``args`` is
``{'args': ..., 'env_vars': ...}``; for a ``JobGroup``, a mapping from member name to
that member's args. As a shorthand, a ``Job`` also accepts its arguments directly
(``add(job, args={'lr': 0.1})``), which is how sweeps are usually written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from xmanager.xm.args import merge_args
from xmanager.xm.job_blocks import Job, JobGroup

_JOB_ARG_KEYS = frozenset({"args", "env_vars"})


def _is_xmanager_job_args(args: Any) -> bool:
    return isinstance(args, Mapping) and bool(args) and set(args) <= _JOB_ARG_KEYS


def _apply(job: Job, args: Any, name: str) -> Job:
    if args is None:
        extra_args, extra_env = None, {}
    elif _is_xmanager_job_args(args):
        extra_args, extra_env = args.get("args"), dict(args.get("env_vars") or {})
    else:
        extra_args, extra_env = args, {}
    return attrs.evolve(
        job,
        name=name,
        args=merge_args(job.args, extra_args),
        env_vars={**job.env_vars, **extra_env},
    )


def flatten_jobs(job: Job | JobGroup, args: Any = None, prefix: str = "") -> list[Job]:
    """Copies of every job in ``job`` with names set and ``add`` args applied.

    Names are the key path inside groups joined by ``_``; a lone job keeps its own name
    or takes the executable's. Duplicate names are an error naming them.
    """
    if isinstance(job, Job):
        name = job.name or prefix or job.executable.name
        return [_apply(job, args, name)]
    if args is not None and not isinstance(args, Mapping):
        raise TypeError(f"args for a JobGroup must map member names to their args, got {type(args).__name__}")
    unknown = sorted(set(args or {}) - set(job.jobs))
    if unknown:
        raise ValueError(
            f"args name {', '.join(map(repr, unknown))}, which are not members of the JobGroup "
            f"(members: {', '.join(job.jobs)})"
        )
    jobs: list[Job] = []
    for key, member in job.jobs.items():
        path = f"{prefix}_{key}" if prefix else key
        if isinstance(member, Job) and member.name is None:
            member = attrs.evolve(member, name=path)
        jobs.extend(flatten_jobs(member, (args or {}).get(key), path))
    seen: set[str] = set()
    for item in jobs:
        if item.name in seen:
            raise ValueError(f"two jobs in one work unit are named {item.name!r}; give them distinct names")
        seen.add(item.name)  # type: ignore[arg-type]
    return jobs


def unit_parameters(jobs: list[Job], grouped: bool) -> dict[str, Any]:
    """The parameters that describe a work unit: its jobs' keyword args.

    A lone job's keywords are used as they are; in a group they are prefixed with the
    job name (``server.port``).
    """
    params: dict[str, Any] = {}
    for job in jobs:
        for key, value in job.args.to_dict(kwargs_only=True).items():
            params[f"{job.name}.{key}" if grouped else key] = value
    return params
