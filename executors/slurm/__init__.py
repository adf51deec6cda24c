"""The Slurm executor: jobs run as Slurm batch jobs; a sweep becomes job arrays.

Supports ``xm.Binary``, ``xm.CommandList`` and ``xm.PythonCallable`` on a cluster whose
filesystem is shared with the launching machine (the job folders, the Python
environment and the binaries must be visible from the compute nodes at the same paths).
Units keep running when the launch script exits; ``xmanager show``,
``get_experiment(id).wait_until_complete()`` or ``.refresh()`` pick them up later.
See ``docs/slurm.md``.

The names load lazily, so the task runner that array tasks start on the compute nodes
(:mod:`.task`, stdlib only) does not pay for the launch-side imports.
"""

from __future__ import annotations

from typing import Any

_NAMES = ("Slurm", "SlurmPlugin", "SlurmSpec", "plugin")


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        from xmanager.executors.slurm import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_NAMES)
