"""Factories for ``Packageable``: ``xm.binary(executor_spec=..., path=...)`` and friends.

Each takes the executor spec first and keyword-only ``args`` / ``env_vars``, as in
XManager.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Collection, Mapping
from typing import Any, Optional, Union

from xmanager.xm import executables
from xmanager.xm.args import UserArgs
from xmanager.xm.job_blocks import ExecutorSpec, Packageable

#: The default ``env_vars``: an empty read-only mapping (XManager's is an empty immutabledict).
_NO_ENV_VARS: Mapping[str, Any] = types.MappingProxyType({})


def _packageable(spec: Any, executor_spec: ExecutorSpec, args: Optional[UserArgs], env_vars: Mapping[str, Any]) -> Packageable:
    return Packageable(executable_spec=spec, executor_spec=executor_spec, args=args, env_vars=env_vars)


def binary(
    executor_spec: ExecutorSpec,
    path: str,
    dependencies: Collection[executables.BinaryDependency] = (),
    *,
    args: Optional[UserArgs] = None,
    env_vars: Mapping[str, Any] = _NO_ENV_VARS,
) -> Packageable:
    """A prebuilt binary at ``path``."""
    return _packageable(executables.Binary(path=path, dependencies=dependencies), executor_spec, args, env_vars)


def bazel_binary(
    executor_spec: ExecutorSpec,
    label: str,
    dependencies: Collection[executables.BinaryDependency] = (),
    bazel_args: Collection[str] = (),
    *,
    args: Optional[UserArgs] = None,
    env_vars: Mapping[str, Any] = _NO_ENV_VARS,
) -> Packageable:
    """A Bazel target built into a self-contained binary (``bazel build`` at packaging)."""
    spec = executables.BazelBinary(label=label, dependencies=dependencies, bazel_args=bazel_args)
    return _packageable(spec, executor_spec, args, env_vars)


def bazel_container(
    executor_spec: ExecutorSpec,
    label: str,
    bazel_args: Collection[str] = (),
    *,
    args: Optional[UserArgs] = None,
    env_vars: Mapping[str, Any] = _NO_ENV_VARS,
) -> Packageable:
    """A Bazel target built into a ``.tar`` image."""
    return _packageable(executables.BazelContainer(label=label, bazel_args=bazel_args), executor_spec, args, env_vars)


def command_list(
    executor_spec: ExecutorSpec,
    commands: Union[list[str], tuple[str, ...]],
    *,
    args: Optional[UserArgs] = None,
    env_vars: Optional[Mapping[str, Any]] = None,
) -> Packageable:
    """Shell command lines, with the job's args passed to the last one as ``"$@"``."""
    return _packageable(executables.CommandList(commands), executor_spec, args, env_vars or {})


def python_callable(
    executor_spec: ExecutorSpec,
    function: Callable[..., Any],
    *,
    name: Optional[str] = None,
    args: Optional[UserArgs] = None,
    env_vars: Optional[Mapping[str, Any]] = None,
) -> Packageable:
    """A Python function called with the job's args as keyword arguments."""
    return _packageable(executables.PythonCallable(function, name=name), executor_spec, args, env_vars or {})


def python_container(
    executor_spec: ExecutorSpec,
    entrypoint: Union[executables.ModuleName, executables.CommandList],
    path: str = ".",
    base_image: Optional[str] = None,
    docker_instructions: Optional[list[str]] = None,
    use_deep_module: bool = False,
    *,
    args: Optional[UserArgs] = None,
    env_vars: Mapping[str, Any] = _NO_ENV_VARS,
) -> Packageable:
    """A directory of Python code built into an image."""
    spec = executables.PythonContainer(
        entrypoint=entrypoint, path=path, base_image=base_image,
        docker_instructions=docker_instructions, use_deep_module=use_deep_module,
    )
    return _packageable(spec, executor_spec, args, env_vars)


def container(
    executor_spec: ExecutorSpec,
    image_path: str,
    *,
    args: Optional[UserArgs] = None,
    env_vars: Mapping[str, Any] = _NO_ENV_VARS,
) -> Packageable:
    """A prebuilt image (a ``.tar`` file or a registry reference)."""
    return _packageable(executables.Container(image_path), executor_spec, args, env_vars)


def dockerfile_container(
    executor_spec: ExecutorSpec,
    path: str = ".",
    dockerfile: Optional[str] = None,
    *,
    args: Optional[UserArgs] = None,
    env_vars: Mapping[str, Any] = _NO_ENV_VARS,
) -> Packageable:
    """``docker build`` of ``path`` with an optional Dockerfile name."""
    return _packageable(executables.Dockerfile(path, dockerfile), executor_spec, args, env_vars)


def ve_kernel(
    executor_spec: ExecutorSpec,
    entry: str,
    args: Union[tuple[str, ...], list[str], str],
    sources: Optional[Mapping[str, str]] = None,
    *,
    library: Optional[str] = None,
    language: str = "c",
    ret_type: str = "int",
    ve_flags: Optional[str] = None,
    host_flags: Optional[str] = None,
    libs: tuple[str, ...] = (),
    name: Optional[str] = None,
) -> Packageable:
    """A VE kernel: ``entry`` in ``sources`` (or a prebuilt ``library``), parameters as ``"name: type"``.

    Unlike the other factories, ``args`` here declares the kernel's parameters; a job's
    values for them are given as ``xm.Job(..., args={...})`` or through ``add``/``add_sweep``.
    """
    spec = executables.VeKernel(
        entry=entry, args=args, sources=sources, library=library, language=language, ret_type=ret_type,
        ve_flags=ve_flags, host_flags=host_flags, libs=libs, name=name,
    )
    return _packageable(spec, executor_spec, None, _NO_ENV_VARS)
