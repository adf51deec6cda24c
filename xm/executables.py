"""Executable specs: what to run, independent of where.

Executor plugins say which of these they can package; an unsupported pair is an error
that lists the supported ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import attrs
from xmanager.xm.job_blocks import ExecutableSpec


def name_from_path(path: str) -> str:
    """A job name from a path: its basename with non-word characters replaced by ``_``."""
    base = path.rstrip("/").rsplit("/", 1)[-1] or path
    return re.sub(r"\W", "_", base)


def _tuple_of_str(value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@attrs.frozen
class Binary(ExecutableSpec):
    """A prebuilt executable file. Packaging checks that it exists and is executable."""

    path: str = attrs.field(converter=str)
    dependencies: tuple[Any, ...] = attrs.field(default=(), converter=tuple)

    @property
    def name(self) -> str:
        return name_from_path(self.path)


@attrs.frozen
class ModuleName:
    """A Python module run as ``python -m module_name`` (a PythonContainer entrypoint)."""

    module_name: str


@attrs.frozen
class CommandList(ExecutableSpec):
    """Shell command lines run in order; the job's args are appended to the last as ``"$@"``.

    The lines are the user's own shell code. The job's args are passed to the shell as
    positional parameters, never spliced into the text, so they arrive literally.
    """

    commands: tuple[str, ...] = attrs.field(converter=_tuple_of_str)

    @commands.validator
    def _check(self, _attribute: Any, value: tuple[str, ...]) -> None:
        if not value:
            raise ValueError("CommandList needs at least one command")

    @property
    def name(self) -> str:
        return name_from_path(self.commands[0].split()[0]) if self.commands[0].split() else "commands"


@attrs.frozen
class PythonContainer(ExecutableSpec):
    """A directory of Python code built into a container image (executors with images)."""

    entrypoint: Union[ModuleName, CommandList]
    path: str = "."
    base_image: Optional[str] = None
    docker_instructions: Optional[tuple[str, ...]] = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )
    use_deep_module: bool = False

    @property
    def name(self) -> str:
        return name_from_path(self.path if self.path not in (".", "") else "python_container")


@attrs.frozen
class Container(ExecutableSpec):
    """A prebuilt image: a local ``.tar`` file or a registry reference."""

    image_path: str

    @property
    def name(self) -> str:
        return name_from_path(self.image_path)


@attrs.frozen
class Dockerfile(ExecutableSpec):
    """``docker build`` of a context directory, optionally with a named Dockerfile."""

    path: str = "."
    dockerfile: Optional[str] = None

    @property
    def name(self) -> str:
        return name_from_path(self.path if self.path not in (".", "") else "dockerfile")


@attrs.frozen
class BazelBinary(ExecutableSpec):
    """A Bazel target producing a self-contained binary."""

    label: str
    dependencies: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    bazel_args: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def name(self) -> str:
        return name_from_path(self.label)


@attrs.frozen
class BazelContainer(ExecutableSpec):
    """A Bazel target producing a ``.tar`` image."""

    label: str
    bazel_args: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def name(self) -> str:
        return name_from_path(self.label)


@attrs.frozen
class PythonCallable(ExecutableSpec):
    """A picklable Python function, called in a worker process with the job's args as kwargs.

    The function's returned mapping (if any) becomes the unit's result. Positional job
    args are not allowed: every argument must be named.
    """

    function: Callable[..., Any]
    name_override: Optional[str] = attrs.field(default=None, alias="name")

    def __attrs_post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"PythonCallable needs a callable, got {type(self.function).__name__}")

    @property
    def name(self) -> str:
        if self.name_override:
            return self.name_override
        return name_from_path(getattr(self.function, "__name__", "function"))
