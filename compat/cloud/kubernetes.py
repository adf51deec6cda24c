"""XManager's ``xmanager.cloud.kubernetes``: the API client and the pod settings an executor implies.

Launching goes through ``xm_local.Kubernetes`` (``executors/kubernetes``); :func:`register`
is kept for scripts that call it and does nothing. ``kubernetes`` is imported only when a
client is made.
"""

from __future__ import annotations

import re
from typing import Any

from xmanager.executors.kubernetes import manifests
from xmanager.executors.kubernetes.config import ClusterConfig, connect


def client(cluster: ClusterConfig | None = None) -> Any:
    """A ``kubernetes`` ``ApiClient`` for the kubeconfig (or in-cluster) credentials; one error when there are none."""
    return connect(cluster or ClusterConfig()).api_client


def convert_to_valid_label(label: str) -> str:
    """``label`` as a Kubernetes label value: 63 characters at most, alphanumerics at both ends, ``-_.`` between."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", label)[:63]
    return text.strip("-_.")


def _requirements_and_placement(executor: Any) -> tuple[dict[str, int], dict[str, str]]:
    limits, selector, _ = manifests.placement(
        executor.requirements, executor.cloud_provider, getattr(executor, "tpu_topology", None),
        dict(getattr(executor, "node_selector", ())),
    )
    return limits, selector


def requirements_from_executor(executor: Any) -> dict[str, Any]:
    """The container's ``resources`` (requests and limits) for ``executor``."""
    limits, _ = _requirements_and_placement(executor)
    return manifests.container_resources(executor.requirements, limits)


def annotations_from_executor(executor: Any) -> dict[str, str]:
    """The pod annotations of ``executor``: the Cloud TPU runtime of its ``tpu_capability`` on GKE."""
    capability = getattr(executor, "tpu_capability", None)
    if capability is None or executor.cloud_provider != manifests.GKE:
        return {}
    return {manifests.TPU_VERSION_ANNOTATION: capability.tpu_runtime_version}


def node_selector_from_executor(executor: Any) -> dict[str, str]:
    """The pod's node selector: accelerator labels for ``cloud_provider`` plus the executor's own."""
    _, selector = _requirements_and_placement(executor)
    return selector


def register() -> None:
    """Kept for scripts that call it: the Kubernetes executor is a plugin, found without registration."""
