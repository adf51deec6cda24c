"""XManager's ``xmanager.xm_local.executors`` module: the executor classes under its names.

``from xmanager.xm_local import executors; executors.Local.Spec()`` works as in XManager. The
classes are ours (see ``xmanager.xm_local``), loaded on first use like there.
"""

from __future__ import annotations

from typing import Any

#: Kubernetes(cloud_provider=...) for Google Kubernetes Engine (GKE accelerator node labels).
GOOGLE_KUBERNETES_ENGINE_CLOUD_PROVIDER = "GOOGLE_KUBERNETES_ENGINE"

_NAMES = (
    "Local", "LocalSpec", "DockerOptions",
    "Vertex", "VertexSpec", "Caip", "CaipSpec", "TensorboardCapability",
    "Kubernetes", "KubernetesSpec", "TpuCapability",
)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'xmanager.xm_local.executors' has no attribute {name!r}")
    from xmanager import xm_local

    value = getattr(xm_local, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [*_NAMES, "GOOGLE_KUBERNETES_ENGINE_CLOUD_PROVIDER"]
