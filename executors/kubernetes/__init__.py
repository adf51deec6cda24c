"""The Kubernetes executor: every job becomes a ``batch/v1`` Job in a cluster.

Supports ``xm.Container``, ``xm.PythonContainer`` and ``xm.Dockerfile``. A registry
reference (``xm.Container("gcr.io/p/img:1")``) is used as it is; anything else is built
and pushed to ``KubernetesSpec(push_image_tag=...)`` when it is packaged. Jobs run on
without the launching process; statuses come from one list call per namespace. See
``docs/kubernetes.md``.

Names load lazily: neither ``kubernetes`` nor ``docker`` is imported until needed.
"""

from __future__ import annotations

from typing import Any

_NAMES = ("ClusterConfig", "Kubernetes", "KubernetesImage", "KubernetesPlugin", "KubernetesSpec", "Toleration", "TpuCapability",
          "plugin")


def __getattr__(name: str) -> Any:
    if name == "ClusterConfig":
        from xmanager.executors.kubernetes.config import ClusterConfig

        return ClusterConfig
    if name in _NAMES:
        from xmanager.executors.kubernetes import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_NAMES)
