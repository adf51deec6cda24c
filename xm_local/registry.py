"""Finds executor plugins through the ``xmanager.executors`` entry-point group.

A plugin is loaded only when something needs it: the executor of a job, the spec of a
packaging request, a name stored with a job, or a name of ``xm_local`` it exports. The
registry is the only place that knows which executors exist: a new executor is its folder
plus one entry point.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from xmanager.executors.api import ExecutorPlugin

GROUP = "xmanager.executors"


@functools.lru_cache(maxsize=1)
def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=GROUP)}


@functools.cache
def plugin(name: str) -> ExecutorPlugin[Any]:
    """The plugin registered as ``name``; a clear error lists the registered ones."""
    entry = _entry_points().get(name)
    if entry is None:
        known = ", ".join(sorted(_entry_points())) or "none"
        raise LookupError(f"no executor plugin named {name!r} (registered: {known}); is its package installed?")
    loaded = entry.load()
    if not isinstance(loaded, ExecutorPlugin):
        raise TypeError(f"entry point {name!r} in {GROUP} is not an ExecutorPlugin: {loaded!r}")
    if loaded.name != name:  # Jobs are stored with plugin.name and found again under it.
        raise TypeError(f"entry point {name!r} in {GROUP} names a plugin called {loaded.name!r}")
    return loaded


def all_plugins() -> list[ExecutorPlugin[Any]]:
    return [plugin(name) for name in sorted(_entry_points())]


@functools.cache
def export(name: str) -> object:
    """What an installed plugin exports as ``name`` (``xm_local.Slurm``, ``xm_local.DockerOptions``).

    Plugins whose entry-point name begins the snake-case name (``VectorEngineSpec`` ->
    ``vector_engine``) are asked first, so naming one executor loads no other plugin.
    """
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    for candidate in sorted(_entry_points(), key=lambda entry: not snake.startswith(entry)):
        exports = plugin(candidate).exports
        if name in exports:
            return exports[name]
    raise LookupError(f"no installed executor plugin exports {name!r}")


def export_names() -> list[str]:
    """Every name the installed plugins export (loads them all)."""
    return sorted({name for candidate in all_plugins() for name in candidate.exports})


def _owner(cls: type, attribute: str) -> ExecutorPlugin[Any]:
    # The plugin whose module defines the class is tried first, so others stay unloaded.
    candidates = sorted(_entry_points().items(), key=lambda kv: not cls.__module__.startswith(kv[1].module))
    for name, _ in candidates:
        candidate = plugin(name)
        if issubclass(cls, getattr(candidate, attribute)):
            return candidate
    raise LookupError(f"no installed executor plugin handles {cls.__module__}.{cls.__qualname__}")


@functools.cache
def for_executor(executor_type: type) -> ExecutorPlugin[Any]:
    return _owner(executor_type, "executor_type")


@functools.cache
def for_spec(spec_type: type) -> ExecutorPlugin[Any]:
    return _owner(spec_type, "spec_type")


def supported_pairs() -> list[str]:
    """Every (executable spec, executor spec) pair the installed plugins package."""
    return [
        f"{executable.__name__} on {p.spec_type.__name__}"
        for p in all_plugins()
        for executable in p.supported_executables
    ]
