"""The local control plane: experiments, the metadata store, and the executors' front door.

``from xmanager import xm_local`` is cheap: names load on first use. ``xm_local.Local``,
``xm_local.Slurm``, ``xm_local.DockerOptions`` ... are the ``exports`` of the executor plugins
registered under the ``xmanager.executors`` entry-point group (:mod:`.registry`). Importing it
defines XManager's ``--xm_*`` flags (``xmanager.xm_flags``), as XManager does, so launch
scripts may read them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xmanager import xm_flags as _xm_flags  # noqa: F401 - defines the --xm_* flags.
from xmanager.xm.version import __version__ as __version__

if TYPE_CHECKING:  # What type checkers see (`X as X`: re-exported); at run time __getattr__ loads each on first use.
    from xmanager.cloud import auth as auth
    from xmanager.executors.in_process import InProcess as InProcess
    from xmanager.executors.in_process import InProcessSpec as InProcessSpec
    from xmanager.executors.kubernetes.config import ClusterConfig as ClusterConfig
    from xmanager.executors.kubernetes.executor import Kubernetes as Kubernetes
    from xmanager.executors.kubernetes.executor import KubernetesSpec as KubernetesSpec
    from xmanager.executors.kubernetes.executor import Toleration as Toleration
    from xmanager.executors.kubernetes.executor import TpuCapability as TpuCapability
    from xmanager.executors.local import Local as Local
    from xmanager.executors.local import LocalSpec as LocalSpec
    from xmanager.executors.local.containers import DockerOptions as DockerOptions
    from xmanager.executors.slurm.executor import Slurm as Slurm
    from xmanager.executors.slurm.executor import SlurmSpec as SlurmSpec
    from xmanager.executors.vector_engine.executor import VectorEngine as VectorEngine
    from xmanager.executors.vector_engine.executor import VectorEngineSpec as VectorEngineSpec
    from xmanager.executors.vertex.executor import TensorboardCapability as TensorboardCapability
    from xmanager.executors.vertex.executor import Vertex as Vertex
    from xmanager.executors.vertex.executor import VertexSpec as VertexSpec
    from xmanager.xm_local.experiment import LocalExperiment as LocalExperiment
    from xmanager.xm_local.experiment import LocalWorkUnit as LocalWorkUnit
    from xmanager.xm_local.experiment import create_experiment as create_experiment
    from xmanager.xm_local.experiment import get_experiment as get_experiment
    from xmanager.xm_local.experiment import list_experiments as list_experiments
    from xmanager.xm_local.store.driver import StoreError as StoreError

    Caip = Vertex  # XManager's names of the Vertex executor.
    CaipSpec = VertexSpec

_EXPERIMENT_NAMES = (
    "create_experiment", "get_experiment", "list_experiments", "LocalExperiment", "LocalWorkUnit",
)
#: Modules re-exported under a short name.
_MODULES = {"auth": "xmanager.cloud.auth"}
_OWN_NAMES = (*_EXPERIMENT_NAMES, *_MODULES, "StoreError")


def __getattr__(name: str) -> Any:
    if name in _EXPERIMENT_NAMES:
        value = getattr(importlib.import_module("xmanager.xm_local.experiment"), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name == "StoreError":
        value = importlib.import_module("xmanager.xm_local.store.driver").StoreError
    elif name == "__all__":  # Executor names are whatever the installed plugins export.
        value = sorted([*_OWN_NAMES, *_registry().export_names()])
    elif name[:1].isupper():  # Plugins export classes; lower-case names are submodules being imported.
        try:
            value = _registry().export(name)
        except LookupError:
            raise AttributeError(f"module 'xmanager.xm_local' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'xmanager.xm_local' has no attribute {name!r}")
    globals()[name] = value
    return value


def _registry() -> Any:
    return importlib.import_module("xmanager.xm_local.registry")


def __dir__() -> list[str]:
    return list(__getattr__("__all__"))
