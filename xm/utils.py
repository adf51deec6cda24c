"""Helpers the launch API shares: argument escapers, sync wrappers for async code, launcher paths.

XManager's ``xm.utils`` names. Nothing here imports asyncio or absl at import time: both load on
first use, so ``from xmanager import xm`` stays cheap.
"""

from __future__ import annotations

import abc
import enum
import functools
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

ReturnT = TypeVar("ReturnT")

_LAUNCH_SCRIPT_ENV = "XM_LAUNCH_SCRIPT"


class SpecialArg(abc.ABC):  # noqa: B024 - a marker base, as in XManager.
    """Base of argument values that an escaper treats specially rather than as plain text."""


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class ShellSafeArg(SpecialArg):
    """An argument passed through unquoted.

    A backend that builds a shell command quotes every other argument; this one is left as
    written, so ``$VAR`` and the like are expanded by that shell. Our local backends hand
    arguments over as argv with no shell: there ``$VAR`` / ``${VAR}`` are expanded from the
    job's environment instead (:func:`env_expanding_escaper`).
    """

    arg: str

    def expand(self, env: Mapping[str, str]) -> str:
        """The argument with ``$VAR`` and ``${VAR}`` replaced from ``env`` (unknown names: empty)."""
        import re

        return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), ""), self.arg)

    def __str__(self) -> str:
        # Formatting it into a larger string would quote it with the rest, silently (XManager's message).
        raise RuntimeError(f"Converting {self!r} to a string would strip the ShellSafe semantics.")


def ARGV_ESCAPER(value: Any) -> str:  # noqa: N802 - XManager's name.
    """One argv token for a backend without a shell: enums by name, ShellSafeArg as written."""
    if isinstance(value, ShellSafeArg):
        return value.arg
    if isinstance(value, enum.Enum):
        return str(value.name)
    return str(value)


def ARG_ESCAPER(value: Any) -> str:  # noqa: N802 - XManager's name.
    """One token of a POSIX shell command: quoted, except for ShellSafeArg."""
    if isinstance(value, ShellSafeArg):
        return value.arg
    return shlex.quote(ARGV_ESCAPER(value))


def env_expanding_escaper(env: Mapping[str, str]) -> Callable[[Any], str]:
    """An argv escaper that expands ShellSafeArg's variables from ``env`` (what the job will see)."""

    def escape(value: Any) -> str:
        if isinstance(value, ShellSafeArg):
            return value.expand(env)
        return ARGV_ESCAPER(value)

    return escape


def trivial_kwargs_joiner(key: str, value: str) -> str:
    """``--name`` and ``value`` as one token ``--name=value``."""
    return f"{key}={value}"


def _loop_is_running() -> bool:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_in_asyncio_loop(f: Callable[..., Awaitable[ReturnT]]) -> Callable[..., ReturnT]:
    """Turns an ``async def`` into a plain function that runs it on a fresh event loop.

    For an async ``main`` or an async test method. Called where a loop already runs (which
    cannot be nested), the coroutine runs on a new loop in a helper thread.
    """

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> ReturnT:
        import asyncio

        def on_new_loop() -> ReturnT:
            loop = asyncio.new_event_loop()
            try:
                return loop.run_until_complete(f(*args, **kwargs))
            finally:
                loop.close()

        if not _loop_is_running():
            return on_new_loop()
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(on_new_loop).result()

    return run


def _launch_script_flag() -> str:
    """``--xm_launch_script`` when absl flags are loaded, defined and parsed; else empty."""
    flags = sys.modules.get("absl.flags")
    if flags is None:
        return ""
    values = flags.FLAGS
    try:
        if "xm_launch_script" not in values or not values.is_parsed():
            return ""
        return values.xm_launch_script or ""
    except Exception:  # An unusual FlagValues state: fall back to the other sources.
        return ""


def find_launch_script_path() -> str:
    """The launch script's absolute path, or '' when there is none.

    From ``--xm_launch_script`` (once flags are parsed), else ``$XM_LAUNCH_SCRIPT`` (set by
    ``xmanager launch``), else ``sys.argv[0]``; a non-``.py`` one (a bundled binary) gives way to
    ``__main__``'s file. The answer is kept for the process while these sources stay the same, so a
    relative ``sys.argv[0]`` still resolves after the script changes its working directory.
    """
    given = _launch_script_flag() or os.environ.get(_LAUNCH_SCRIPT_ENV, "")
    return _launch_script_path(given, sys.argv[0] if sys.argv else "")


@functools.lru_cache
def _launch_script_path(given: str, argv0: str) -> str:
    path = given or argv0
    if not path.endswith(".py"):
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file and os.access(main_file, os.R_OK):
            path = main_file
    return os.path.abspath(path) if path else ""


find_launch_script_path.cache_clear = _launch_script_path.cache_clear  # type: ignore[attr-defined]


def resolve_path_relative_to_launcher(path: str) -> str:
    """``path`` made absolute against the launch script's folder (so ``.`` is that folder).

    An absolute ``path`` is returned unchanged; a relative one becomes a real path (symlinks
    resolved). Raises RuntimeError when no readable launch script is found (a ``python -c`` or an
    interactive session, or a script started by a relative path that changed its working directory).
    """
    if os.path.isabs(path):
        return path
    script = find_launch_script_path()
    if not os.access(script, os.R_OK):
        raise RuntimeError(
            "Unable to determine launch script path. "
            f"The script is not present at {script!r}. "
            "This may happen if launch script changes the working directory."
        )
    folder = os.path.dirname(os.path.realpath(script))
    return os.path.realpath(os.path.join(folder, path))


__all__ = [
    "ARGV_ESCAPER",
    "ARG_ESCAPER",
    "ShellSafeArg",
    "SpecialArg",
    "env_expanding_escaper",
    "find_launch_script_path",
    "resolve_path_relative_to_launcher",
    "run_in_asyncio_loop",
    "trivial_kwargs_joiner",
]
