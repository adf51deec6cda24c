"""The local control plane: experiments, the metadata store, and the executors' front door.

``from xmanager import xm_local`` is cheap: names load on first use.
``xm_local.Local`` (and other executors) come from their plugins in
``xmanager.executors``. Importing it defines XManager's ``--xm_*`` flags
(``xmanager.xm_flags``), as XManager does, so launch scripts may read them.
"""

from __future__ import annotations

import importlib
from typing import Any

from xmanager import xm_flags as _xm_flags  # noqa: F401 - defines the --xm_* flags.

_EXPERIMENT_NAMES = (
    "create_experiment", "get_experiment", "list_experiments", "LocalExperiment", "LocalWorkUnit",
)
#: Executor classes re-exported here, by the plugin that provides them.
_EXECUTORS = {
    "Local": ("local", "executor_type"), "LocalSpec": ("local", "spec_type"),
    "Slurm": ("slurm", "executor_type"), "SlurmSpec": ("slurm", "spec_type"),
    "Kubernetes": ("kubernetes", "executor_type"), "KubernetesSpec": ("kubernetes", "spec_type"),
    "Vertex": ("vertex", "executor_type"), "VertexSpec": ("vertex", "spec_type"),
    # XManager's older names for Vertex AI (Cloud AI Platform).
    "Caip": ("vertex", "executor_type"), "CaipSpec": ("vertex", "spec_type"),
    "VectorEngine": ("vector_engine", "executor_type"), "VectorEngineSpec": ("vector_engine", "spec_type"),
}
#: Option classes of executors, by the module that defines them.
_EXECUTOR_OPTIONS = {
    "DockerOptions": "xmanager.executors.local",
    "ClusterConfig": "xmanager.executors.kubernetes",
    "Toleration": "xmanager.executors.kubernetes",
    "TpuCapability": "xmanager.executors.kubernetes",
    "TensorboardCapability": "xmanager.executors.vertex",
}
#: Modules re-exported under a short name.
_MODULES = {"auth": "xmanager.cloud.auth"}


def __getattr__(name: str) -> Any:
    if name in _EXPERIMENT_NAMES:
        module = importlib.import_module("xmanager.xm_local.experiment")
        value = getattr(module, name)
    elif name in _EXECUTORS:
        from xmanager.xm_local import registry

        plugin_name, attribute = _EXECUTORS[name]
        value = getattr(registry.plugin(plugin_name), attribute)
    elif name in _EXECUTOR_OPTIONS:
        value = getattr(importlib.import_module(_EXECUTOR_OPTIONS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name == "StoreError":
        value = importlib.import_module("xmanager.xm_local.store.driver").StoreError
    else:
        raise AttributeError(f"module 'xmanager.xm_local' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [*_EXPERIMENT_NAMES, *_EXECUTORS, *_EXECUTOR_OPTIONS, *_MODULES, "StoreError"]
