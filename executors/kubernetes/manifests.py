"""Pure functions from a job to its ``batch/v1`` Job manifest (a plain dict, as the API takes it).

Nothing here talks to a cluster. Requirements map to container resources; accelerators to
an extended resource, node selectors and tolerations (see :func:`placement`). The job's
command runs under a small ``/bin/sh`` wrapper that prints the results file as the log's
last line (:data:`RESULTS_MARKER`), so the control plane reads results through the API.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from xmanager.xm.resources import GpuType, JobRequirements, ResourceType, replica_count, requested, resource_key

if TYPE_CHECKING:
    from xmanager.executors.kubernetes.executor import Kubernetes

GKE = "GOOGLE_KUBERNETES_ENGINE"
GENERIC = "GENERIC"
CLOUD_PROVIDERS = (GKE, GENERIC)

MANAGED_BY = "app.kubernetes.io/managed-by"
EXPERIMENT_LABEL = "xmanager.io/experiment-id"
WORK_UNIT_LABEL = "xmanager.io/work-unit-id"
JOB_LABEL = "xmanager.io/job"
#: Annotation holding a random token per created Job: a 409 AlreadyExists whose Job carries our token
#: means an earlier attempt of the same create succeeded (its answer was lost), not a foreign Job.
CREATE_TOKEN = "xmanager.io/create-token"
#: The Cloud TPU runtime a GKE pod asks for (Kubernetes(tpu_capability=...)).
TPU_VERSION_ANNOTATION = "tf-version.cloud-tpus.google.com"
CONTAINER = "job"

RESULTS_DIR = "/xm"
RESULTS_PATH = f"{RESULTS_DIR}/results.json"
RESULTS_MARKER = "XM_RESULTS_JSON: "
#: Runs the job's argv ("$@"), then prints the results file (one JSON line) after a marker, keeping the exit code.
WRAPPER = (
    '"$@"; code=$?; if [ -s "$XM_RESULTS_PATH" ]; then printf \'\\n' + RESULTS_MARKER + '\'; '
    'tr -d \'\\n\' < "$XM_RESULTS_PATH"; printf \'\\n\'; fi; exit $code'
)

#: GKE's ``cloud.google.com/gke-accelerator`` values.
GKE_GPUS = {
    ResourceType.P4: "nvidia-tesla-p4",
    ResourceType.T4: "nvidia-tesla-t4",
    ResourceType.P100: "nvidia-tesla-p100",
    ResourceType.V100: "nvidia-tesla-v100",
    ResourceType.A100: "nvidia-tesla-a100",
    ResourceType.A100_80GIB: "nvidia-a100-80gb",
    ResourceType.L4_24TH: "nvidia-l4",
    ResourceType.H100: "nvidia-h100-80gb",
    ResourceType.H200: "nvidia-h200-141gb",
    ResourceType.B200: "nvidia-b200",
}
#: GKE's ``cloud.google.com/gke-tpu-accelerator`` values (TPU VMs; v2/v3 nodes are not offered in GKE).
GKE_TPUS = {
    ResourceType.TPU_V4: "tpu-v4-podslice",
    ResourceType.TPU_V5E: "tpu-v5-lite-podslice",
    ResourceType.TPU_V5P: "tpu-v5p-slice",
    ResourceType.TPU_V6E: "tpu-v6e-slice",
}
GPU_RESOURCE = "nvidia.com/gpu"
TPU_RESOURCE = "google.com/tpu"

_NOT_LABEL = re.compile(r"[^a-z0-9.-]+")
_TOPOLOGY = re.compile(r"^\d+x\d+(x\d+)?$")


class PlacementError(ValueError):
    """The target cluster cannot provide what the job requests (e.g. an accelerator)."""


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label (lower case, ``[a-z0-9-]``, alphanumeric ends); a hash keeps long ones unique."""
    clean = _NOT_LABEL.sub("-", text.lower()).replace(".", "-").strip("-") or "job"
    if len(clean) > limit:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        clean = clean[: limit - 9].rstrip("-") + "-" + digest
    return clean


def job_name(experiment_id: int, work_unit_id: int, name: str, suffix: str) -> str:
    """The Job's name: ``xm-<experiment>-<unit>-<job>-<suffix>``, at most 63 characters (pods label it)."""
    head = f"xm-{experiment_id}-{work_unit_id}-"
    tail = f"-{suffix}"
    return head + dns_label(name, 63 - len(head) - len(tail)) + tail


def labels(experiment_id: int, work_unit_id: int, name: str) -> dict[str, str]:
    """Labels on the Job and its pods; ``refresh`` selects by the experiment label."""
    return {
        MANAGED_BY: "xmanager",
        EXPERIMENT_LABEL: str(experiment_id),
        WORK_UNIT_LABEL: str(work_unit_id),
        JOB_LABEL: dns_label(name),
    }


def cpu_quantity(amount: float) -> str:
    """CPUs as a Kubernetes quantity: whole cores as ``"2"``, else millicores (``"500m"``)."""
    if float(amount).is_integer():
        return str(int(amount))
    return f"{math.ceil(amount * 1000)}m"


def _whole(kind: ResourceType, amount: float) -> int:
    if not float(amount).is_integer() or amount < 1:
        raise PlacementError(f"Kubernetes: {resource_key(kind)}={amount} must be a whole number of devices (>= 1)")
    return int(amount)


def container_resources(requirements: JobRequirements, accelerator_limits: Mapping[str, int]) -> dict[str, Any]:
    """``requests``/``limits`` for CPU, memory (bytes; the limit equals the request), ephemeral storage, devices."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    cpu = requested(requirements, ResourceType.CPU)
    if cpu:
        requests["cpu"] = cpu_quantity(cpu)
    memory = requested(requirements, ResourceType.MEMORY)
    if memory:
        requests["memory"] = limits["memory"] = str(math.ceil(memory))
    storage = requested(requirements, ResourceType.EPHEMERAL_STORAGE)
    if storage:
        requests["ephemeral-storage"] = str(math.ceil(storage))
    for resource, count in accelerator_limits.items():
        limits[resource] = str(count)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def placement(
    requirements: JobRequirements, cloud_provider: str, tpu_topology: Optional[str], node_selector: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, str], list[dict[str, str]]]:
    """Device limits, node selector and tolerations for the requested accelerator.

    Raises :class:`PlacementError` naming the accelerator and the fix when ``cloud_provider``
    cannot provide it, so the error comes before anything is created.
    """
    kind = requirements.accelerator
    if kind is None:
        return {}, dict(node_selector), []
    count = _whole(kind, requested(requirements, kind))
    selector = dict(node_selector)
    name = resource_key(kind)
    if kind is ResourceType.LOCAL_GPU or kind in GpuType:
        if cloud_provider == GKE and kind is not ResourceType.LOCAL_GPU:
            if kind not in GKE_GPUS:
                offered = ", ".join(resource_key(k) for k in GKE_GPUS)
                raise PlacementError(f"Kubernetes: GKE offers no {name} GPUs (GKE GPUs: {offered}, or local_gpu "
                                     "for any GPU)")
            selector.setdefault("cloud.google.com/gke-accelerator", GKE_GPUS[kind])
        elif cloud_provider == GENERIC and kind is not ResourceType.LOCAL_GPU and not node_selector:
            raise PlacementError(
                f"Kubernetes(cloud_provider='GENERIC') cannot pick {name} GPUs by itself: request local_gpu="
                f"{count} for any GPU, or pass node_selector={{...}} with the label your {name} nodes carry"
            )
        toleration = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        return {GPU_RESOURCE: count}, selector, [toleration]
    # TPUs.
    if cloud_provider != GKE:
        raise PlacementError(f"Kubernetes: {name} needs cloud_provider='{GKE}'; a {cloud_provider} cluster "
                             "has no TPUs")
    if kind not in GKE_TPUS:
        offered = ", ".join(resource_key(k) for k in GKE_TPUS)
        raise PlacementError(f"Kubernetes: GKE offers no {name} node pools (GKE TPUs: {offered})")
    if not tpu_topology or not _TOPOLOGY.match(tpu_topology):
        raise PlacementError(f"Kubernetes: {name} on GKE needs tpu_topology, e.g. Kubernetes(tpu_topology='2x2x1'); "
                             f"got {tpu_topology!r}")
    selector.setdefault("cloud.google.com/gke-tpu-accelerator", GKE_TPUS[kind])
    selector.setdefault("cloud.google.com/gke-tpu-topology", tpu_topology)
    toleration = {"key": TPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
    return {TPU_RESOURCE: count}, selector, [toleration]


def _flag_service_account() -> Optional[str]:
    """``--xm_k8s_service_account_name`` when it was given on the command line."""
    from xmanager import xm_flags

    holder = xm_flags.K8S_SERVICE_ACCOUNT_NAME
    return str(xm_flags.value(holder)) if xm_flags.is_present(holder) else None


def job_manifest(
    executor: Kubernetes,
    *,
    name: str,
    namespace: str,
    job_labels: Mapping[str, str],
    image: str,
    command: Sequence[str],
    args: Sequence[str],
    env: Mapping[str, str],
    create_token: Optional[str] = None,
) -> dict[str, Any]:
    """The ``batch/v1`` Job for one job. ``command`` empty keeps the image's entrypoint (no results wrapper).

    ``create_token`` goes into the :data:`CREATE_TOKEN` annotation.
    """
    limits, selector, tolerations = placement(
        executor.requirements, executor.cloud_provider, executor.tpu_topology, dict(executor.node_selector)
    )
    tolerations = tolerations + [toleration.to_json() for toleration in executor.tolerations]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "env": [{"name": key, "value": value} for key, value in {**env, "XM_RESULTS_PATH": RESULTS_PATH}.items()],
        "volumeMounts": [{"name": "xm", "mountPath": RESULTS_DIR}],
    }
    if command:
        container["command"] = ["/bin/sh", "-c", WRAPPER, "xm-job", *command]
    if args:
        container["args"] = list(args)
    resources = container_resources(executor.requirements, limits)
    if resources:
        container["resources"] = resources
    if executor.image_pull_policy:
        container["imagePullPolicy"] = executor.image_pull_policy
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "xm", "emptyDir": {}}],
    }
    if selector:
        pod["nodeSelector"] = selector
    if tolerations:
        pod["tolerations"] = tolerations
    service_account = executor.service_account or _flag_service_account()
    if service_account:
        pod["serviceAccountName"] = service_account
    if executor.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": secret} for secret in executor.image_pull_secrets]
    template_metadata: dict[str, Any] = {"labels": dict(job_labels)}
    if executor.tpu_capability is not None and executor.cloud_provider == GKE:
        template_metadata["annotations"] = {TPU_VERSION_ANNOTATION: executor.tpu_capability.tpu_runtime_version}
    spec: dict[str, Any] = {
        "backoffLimit": executor.backoff_limit,
        "template": {"metadata": template_metadata, "spec": pod},
    }
    replicas = replica_count(executor.requirements)
    if replicas > 1:
        spec.update(parallelism=replicas, completions=replicas, completionMode="Indexed")
    if executor.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = executor.active_deadline_seconds
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(job_labels)}
    if create_token:
        metadata["annotations"] = {CREATE_TOKEN: create_token}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def parse_results(log: str) -> Optional[dict[str, Any]]:
    """The results the wrapper printed (the last marker line of the pod log), or None.

    Raises ``ValueError`` when the marker line holds something other than a JSON object.
    """
    at = log.rfind(RESULTS_MARKER)
    if at < 0:
        return None
    line = log[at + len(RESULTS_MARKER) :].split("\n", 1)[0]
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError(f"the results line holds a {type(value).__name__}, not a JSON object")
    return value
