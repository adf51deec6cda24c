"""Parameter controllers: an async function that drives an experiment (adds units, waits, adds more).

``@controller(executor=...)`` turns ``async def f(experiment, *args, **kwargs)`` into a
function whose call gives what ``experiment.add`` takes. With ``executor=xm_local.Local()``
the controller runs here, inside the launch, as the body of an auxiliary work unit. XManager
also runs controllers as a remote job (on Kubernetes or Vertex AI) that re-opens the
experiment from a shared database; that needs an image with this launcher installed and a
store both sides reach, so such an executor is refused with a one-line error saying so.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from xmanager import xm, xm_local
from xmanager.executors.api import LaunchError


def _refuse_remote(executor: xm.Executor, name: str) -> None:
    if isinstance(executor, xm_local.Local):
        return
    raise LaunchError(
        f"parameter_controller {name!r}: a controller on {type(executor).__name__} would run as a remote job that "
        "re-opens this experiment's store, which this launcher does not package (it needs the launcher in the "
        "image and a database server both sides reach); use @parameter_controller.controller("
        "executor=xm_local.Local()) to run the controller inside this launch"
    )


def controller(
    *,
    executor: xm.Executor,
    controller_name: str = "parameter_controller",
    controller_env_vars: Optional[dict[str, str]] = None,
    controller_args: Optional[dict[str, Any]] = None,
    package_path: str = ".",
    python_path: Optional[list[str]] = None,
    use_host_db_config: bool = True,
) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Any]]:
    """A decorator: ``f(experiment, *args, **kwargs)`` becomes ``f(*args, **kwargs)`` -> a job generator.

    ``controller_env_vars``, ``controller_args``, ``package_path``, ``python_path`` and
    ``use_host_db_config`` configure XManager's remote controller job; a local controller
    runs in this process and does not need them.
    """
    del controller_env_vars, controller_args, package_path, python_path, use_host_db_config

    def wrap(function: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
        @functools.wraps(function)
        def make_controller(*args: Any, **kwargs: Any) -> Callable[[Any], Awaitable[None]]:
            _refuse_remote(executor, controller_name)

            async def run_controller(work_unit: Any) -> None:
                await function(work_unit.experiment, *args, **kwargs)

            run_controller.__name__ = controller_name
            return run_controller

        return make_controller

    return wrap
