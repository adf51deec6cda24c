"""A TensorBoard server as an auxiliary job of an experiment, on any executor that runs containers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from xmanager import xm


class TensorboardProvider:
    """The container spec and the args of a TensorBoard job."""

    DEFAULT_TENSORBOARD_PORT = 6006

    @staticmethod
    def get_tensorboard_packageable(timeout_secs: int) -> xm.PythonContainer:
        """A ``tensorflow/tensorflow`` container running TensorBoard for ``timeout_secs`` (0: no limit)."""
        if timeout_secs < 0:
            raise RuntimeError(f"timeout_secs must be >= 0, got {timeout_secs}")
        return xm.PythonContainer(
            base_image="tensorflow/tensorflow",
            entrypoint=xm.CommandList([f"timeout {timeout_secs}s tensorboard"]),
        )

    @staticmethod
    def get_tensorboard_job_args(
        log_dir: str,
        port: Optional[int] = None,
        additional_args: Optional[Mapping[str, Any]] = None,
    ) -> Mapping[str, Any]:
        """TensorBoard's flags: the log dir, the port, all interfaces (so a local container is reachable).

        ``load_fast`` is off by default (it fails with GKE Workload Identity); ``additional_args``
        override any of these.
        """
        args: dict[str, Any] = {
            "logdir": log_dir,
            "port": port or TensorboardProvider.DEFAULT_TENSORBOARD_PORT,
            "host": "0.0.0.0",
            "load_fast": "false",
        }
        args.update(additional_args or {})
        return args


def add_tensorboard(
    experiment: xm.Experiment,
    logdir: str,
    executor: xm.Executor,
    timeout_secs: int = 60 * 60 * 24,
    args: Optional[Mapping[str, Any]] = None,
) -> None:
    """Packages TensorBoard for ``executor`` and adds it to ``experiment`` as an auxiliary unit named ``tensorboard``."""
    provider = TensorboardProvider
    spec = provider.get_tensorboard_packageable(timeout_secs=timeout_secs)
    [executable] = experiment.package([xm.Packageable(spec, executor.Spec())])
    job = xm.Job(
        executable,
        executor,
        args=provider.get_tensorboard_job_args(logdir, additional_args=args),
        name="tensorboard",
    )
    auxiliary = getattr(xm, "AuxiliaryUnitJob", None)
    experiment.add(auxiliary(job, termination_delay_secs=0) if auxiliary is not None else job)
