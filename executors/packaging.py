"""Packaging of process executables, shared by executors that run commands on a (shared) filesystem.

Checks are done now, so nothing fails later at run time: a binary exists and is
executable, a Python callable pickles. Used by the local and the Slurm executors.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import attrs
from xmanager.xm.executables import Binary, CommandList, PythonCallable, command_lines
from xmanager.xm.job_blocks import Executable, Packageable

LAUNCH_SCRIPT_ENV = "XM_LAUNCH_SCRIPT"


@attrs.define(kw_only=True)
class LocalExecutable(Executable):
    """A command (argv prefix) to run as a process, or a pickled function to call."""

    command: tuple[str, ...] = ()
    function: Optional[bytes] = None  # cloudpickle of a PythonCallable's function.

    @property
    def is_function(self) -> bool:
        return self.function is not None


def launch_dir() -> str:
    """The launch script's folder (the working directory when no launch script is known)."""
    script = os.environ.get(LAUNCH_SCRIPT_ENV)
    return os.path.dirname(os.path.abspath(script)) if script else os.getcwd()


def resolve_path(path: str) -> str:
    """An absolute path; relative ones resolve against the launch script's folder."""
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(launch_dir(), path))


def package(packageable: Packageable) -> LocalExecutable:
    spec: Any = packageable.executable_spec
    common = {"name": spec.name, "args": packageable.args, "env_vars": packageable.env_vars}
    if isinstance(spec, Binary):
        path = resolve_path(spec.path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"xm.Binary: no file at {path!r} (given as {spec.path!r})")
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(f"xm.Binary: {path!r} is not an executable file")
        return LocalExecutable(command=(path,), **common)
    if isinstance(spec, CommandList):
        script = "\n".join(command_lines(spec)) + ' "$@"'
        return LocalExecutable(command=("bash", "-c", script, spec.name), **common)
    if isinstance(spec, PythonCallable):
        import cloudpickle

        try:
            pickled = cloudpickle.dumps(spec.function)
        except Exception as error:  # Any pickling failure, reported with the function's name.
            raise TypeError(f"xm.PythonCallable: {spec.name!r} cannot be pickled: {error}") from error
        return LocalExecutable(function=pickled, **common)
    raise TypeError(f"cannot package {type(spec).__name__} as a process")  # The router checks first.
