"""Job groups for distributed TensorFlow: ``MultiWorkerMirroredStrategy`` and ``ParameterServerStrategy``.

Each job gets a ``TF_CONFIG`` naming every task by its in-cluster address
(:func:`addressing.k8s_pod_domain`), which is known before launch. Only Kubernetes
executors give jobs such addresses; other executors raise ``NotImplementedError``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from xmanager import xm, xm_local
from xmanager.contrib import addressing


def _generator(build: Callable[[Any, Any], xm.JobGroup]) -> Callable[..., Awaitable[Any]]:
    """A job generator for ``experiment.add(generator, args=hparams)`` that adds ``build(work_unit, hparams)``."""

    async def job_group_generator(work_unit: Any, **hparams: Any) -> Any:
        return work_unit.add(build(work_unit, hparams))

    return job_group_generator


def _tf_config(cluster: dict[str, list[str]], task_type: str, index: int) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


@attrs.define
class MultiWorkerMirroredStrategyBuilder:
    """``num_workers`` identical workers named ``<worker_name>-<i>``, each told the others' addresses."""

    experiment: xm.Experiment
    worker_executable: xm.Executable
    worker_executor: xm.Executor
    worker_name: str = "worker"
    num_workers: int = 1

    def create_job_group(self, work_unit: xm.WorkUnit, hparams: xm.UserArgs) -> xm.JobGroup:
        if isinstance(self.worker_executor, xm_local.Kubernetes):
            return self.create_kubernetes_job_group(work_unit, hparams)
        raise NotImplementedError(
            f"MultiWorkerMirroredStrategy needs Kubernetes executors, got {type(self.worker_executor).__name__}"
        )

    def gen_job_group(self) -> Callable[..., Awaitable[Any]]:
        """A generator to pass to ``experiment.add`` (with the hyperparameters as its args)."""
        return _generator(self.create_job_group)

    def create_kubernetes_job_group(self, work_unit: xm.WorkUnit, hparams: xm.UserArgs) -> xm.JobGroup:
        names = [f"{self.worker_name}-{i}" for i in range(self.num_workers)]
        experiment_id = self.experiment.experiment_id
        addresses = [addressing.k8s_pod_domain(name, experiment_id, work_unit.work_unit_id) for name in names]
        cluster = {"worker": addresses}
        jobs: dict[str, xm.JobType] = {
            name: xm.Job(
                executable=self.worker_executable,
                executor=self.worker_executor,
                args=hparams,
                env_vars=_tf_config(cluster, "worker", index),
            )
            for index, name in enumerate(names)
        }
        group = xm.JobGroup()  # Not JobGroup(**jobs): a job may be named "constraints".
        group.jobs = jobs
        return group


@attrs.define
class ParameterServerStrategyBuilder:
    """A chief, ``num_workers`` workers and ``num_ps`` parameter servers, each told every address."""

    experiment: xm.Experiment
    chief_executable: xm.Executable
    chief_executor: xm.Executor
    worker_executable: xm.Executable
    worker_executor: xm.Executor
    ps_executable: xm.Executable
    ps_executor: xm.Executor
    chief_name: str = "chief"
    worker_name: str = "worker"
    ps_name: str = "ps"
    num_workers: int = 1
    num_ps: int = 1

    def create_job_group(self, work_unit: xm.WorkUnit, hparams: xm.UserArgs) -> xm.JobGroup:
        if isinstance(self.worker_executor, xm_local.Kubernetes):
            return self.create_kubernetes_job_group(work_unit, hparams)
        raise NotImplementedError(
            f"ParameterServerStrategy needs Kubernetes executors, got {type(self.worker_executor).__name__}"
        )

    def gen_job_group(self) -> Callable[..., Awaitable[Any]]:
        """A generator to pass to ``experiment.add`` (with the hyperparameters as its args)."""
        return _generator(self.create_job_group)

    def create_kubernetes_job_group(self, work_unit: xm.WorkUnit, hparams: xm.UserArgs) -> xm.JobGroup:
        for role, executor in (("chief", self.chief_executor), ("worker", self.worker_executor),
                               ("ps", self.ps_executor)):
            if not isinstance(executor, xm_local.Kubernetes):
                raise NotImplementedError(f"ParameterServerStrategy: the {role} executor must be Kubernetes")

        def address(name: str) -> str:
            return addressing.k8s_pod_domain(name, self.experiment.experiment_id, work_unit.work_unit_id)

        workers = [f"{self.worker_name}-{i}" for i in range(self.num_workers)]
        servers = [f"{self.ps_name}-{i}" for i in range(self.num_ps)]
        cluster = {
            "chief": [address(self.chief_name)],
            "worker": [address(name) for name in workers],
            "ps": [address(name) for name in servers],
        }
        jobs: dict[str, xm.JobType] = {
            self.chief_name: xm.Job(
                executable=self.chief_executable,
                executor=self.chief_executor,
                env_vars=_tf_config(cluster, "chief", 0),
            )
        }
        for index, name in enumerate(servers):
            jobs[name] = xm.Job(executable=self.ps_executable, executor=self.ps_executor, args=hparams,
                                env_vars=_tf_config(cluster, "ps", index))
        for index, name in enumerate(workers):
            jobs[name] = xm.Job(executable=self.worker_executable, executor=self.worker_executor, args=hparams,
                                env_vars=_tf_config(cluster, "worker", index))
        group = xm.JobGroup()  # Not JobGroup(**jobs): a job may be named "constraints".
        group.jobs = jobs
        return group
