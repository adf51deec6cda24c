"""The Kubernetes executor's user-facing classes, its packaging and its plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Optional, Union

import attrs
from xmanager.executors.api import BackendSettings, ExecutorBackend, ExecutorPlugin, StatusSink
from xmanager.executors.kubernetes import manifests
from xmanager.executors.kubernetes.config import ClusterConfig
from xmanager.xm.converters import str_tuple
from xmanager.xm.executables import CommandList, Container, Dockerfile, ModuleName, PythonContainer, command_lines
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable
from xmanager.xm.resources import JobRequirements

_PULL_POLICIES = (None, "Always", "IfNotPresent", "Never")
#: Job creations a launch keeps in flight by default (see ``Kubernetes(max_concurrent_creates=...)``).
DEFAULT_CONCURRENT_CREATES = 8


@attrs.frozen
class KubernetesSpec(ExecutorSpec):
    """Packaging for Kubernetes: images not already in a registry are built and pushed to ``push_image_tag``.

    ``push_image_tag`` is a repository the cluster can pull from, e.g. ``"gcr.io/my-project/xm"``
    or ``"registry.example:5000/team/xm"``; the pushed image is referenced by digest.
    """

    push_image_tag: Optional[str] = None


@attrs.frozen
class TpuCapability:
    """XManager's TPU software request: the Cloud TPU runtime version (e.g. ``"2.12.0"`` or ``"nightly"``)."""

    tpu_runtime_version: str


def _check_tpu_capability(_instance: object, _attribute: object, value: Optional[TpuCapability]) -> None:
    if value is not None and not isinstance(value, TpuCapability):
        raise TypeError(f"Kubernetes(tpu_capability=...) takes xm_local.TpuCapability, got {type(value).__name__}")


@attrs.frozen
class Toleration:
    """A pod toleration (``operator="Exists"`` tolerates any value of ``key``)."""

    key: str
    operator: str = attrs.field(default="Exists", validator=attrs.validators.in_(("Exists", "Equal")))
    value: Optional[str] = None
    effect: Optional[str] = attrs.field(
        default=None, validator=attrs.validators.in_((None, "NoSchedule", "PreferNoSchedule", "NoExecute"))
    )

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


def _pairs(value: Union[Mapping[str, str], tuple[tuple[str, str], ...]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), str(v)) for k, v in items))


def _tolerations(value: Any) -> tuple[Toleration, ...]:
    return tuple(t if isinstance(t, Toleration) else Toleration(**t) for t in value)


@attrs.frozen
class Kubernetes(Executor):
    """Run as a ``batch/v1`` Job, one per job, labelled with the experiment and work unit ids.

    ``requirements``, ``cloud_provider`` and ``tpu_capability`` may be given by position, as
    in XManager; the rest by name.

    Parameters
    ----------
    requirements:
        ``cpu`` and ``memory`` become container requests (memory also the limit), GPUs
        ``nvidia.com/gpu``, TPUs ``google.com/tpu``, with node selectors and tolerations for
        ``cloud_provider``; ``replicas`` runs an Indexed Job with that many pods.
    cloud_provider:
        ``"GOOGLE_KUBERNETES_ENGINE"`` (GKE accelerator labels) or ``"GENERIC"``.
    tpu_capability:
        XManager's :class:`TpuCapability`: on GKE its ``tpu_runtime_version`` becomes the pod's
        ``tf-version.cloud-tpus.google.com`` annotation.
    tpu_topology:
        The TPU slice topology on GKE (``"2x2x1"``); required with a TPU.
    namespace:
        Default: the kubeconfig context's namespace, in a pod its own, else ``default``.
    node_selector, tolerations, service_account, image_pull_secrets, image_pull_policy:
        Passed to the pod spec.
    backoff_limit, active_deadline_seconds:
        Retries of a failed pod, and a wall-clock limit for the Job.
    cluster:
        How to reach the API server (:class:`ClusterConfig`; default: kubeconfig or in-cluster).
    check_nodes:
        Before creating Jobs that need an accelerator, check that some node carries the
        selected labels (skipped when the account may not list nodes). Turn off for
        clusters that add accelerator nodes on demand.
    max_concurrent_creates:
        How many Job creations a launch keeps in flight at once (default 8); 1 creates them one
        after another. A batch mixing executors uses the smallest value among them. The whole
        batch is still created entirely or not at all.
    """

    Spec: ClassVar[type[KubernetesSpec]] = KubernetesSpec

    # JobRequirements is unhashable, as in XManager: executors hash by their other fields.
    requirements: JobRequirements = attrs.field(factory=JobRequirements, hash=False)
    cloud_provider: str = attrs.field(
        default=manifests.GKE, validator=attrs.validators.in_(manifests.CLOUD_PROVIDERS)
    )
    tpu_capability: Optional[TpuCapability] = attrs.field(default=None, validator=_check_tpu_capability)
    tpu_topology: Optional[str] = attrs.field(default=None, kw_only=True)
    namespace: Optional[str] = attrs.field(default=None, kw_only=True)
    node_selector: tuple[tuple[str, str], ...] = attrs.field(kw_only=True, default=(), converter=_pairs)
    tolerations: tuple[Toleration, ...] = attrs.field(kw_only=True, default=(), converter=_tolerations)
    service_account: Optional[str] = attrs.field(default=None, kw_only=True)
    image_pull_secrets: tuple[str, ...] = attrs.field(kw_only=True, default=(), converter=str_tuple)
    image_pull_policy: Optional[str] = attrs.field(kw_only=True, default=None, validator=attrs.validators.in_(_PULL_POLICIES))
    backoff_limit: int = attrs.field(default=0, kw_only=True)
    active_deadline_seconds: Optional[int] = attrs.field(default=None, kw_only=True)
    cluster: ClusterConfig = attrs.field(kw_only=True, factory=ClusterConfig)
    check_nodes: bool = attrs.field(default=True, kw_only=True)
    max_concurrent_creates: int = attrs.field(default=DEFAULT_CONCURRENT_CREATES, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if (not isinstance(self.max_concurrent_creates, int) or isinstance(self.max_concurrent_creates, bool)
                or not 1 <= self.max_concurrent_creates <= 256):
            raise ValueError(f"Kubernetes(max_concurrent_creates={self.max_concurrent_creates!r}): must be an int "
                             "from 1 to 256")
        if self.namespace is not None and manifests.dns_label(self.namespace) != self.namespace:
            raise ValueError(f"Kubernetes(namespace={self.namespace!r}): not a DNS label (lower case a-z, 0-9, '-')")
        if not isinstance(self.backoff_limit, int) or self.backoff_limit < 0:
            raise ValueError(f"Kubernetes(backoff_limit={self.backoff_limit!r}): must be an int >= 0")
        # Accelerators the target cannot provide fail here, in the launch script.
        manifests.placement(self.requirements, self.cloud_provider, self.tpu_topology, dict(self.node_selector))


@attrs.define(kw_only=True)
class KubernetesImage(Executable):
    """An image in a registry the cluster pulls from, and the command to run (empty: the image's entrypoint)."""

    image: str
    command: tuple[str, ...] = ()


def _command(spec: Any) -> tuple[str, ...]:
    if isinstance(spec, PythonContainer):
        entrypoint = spec.entrypoint
        if isinstance(entrypoint, ModuleName):
            return ("python", "-m", entrypoint.module_name)
        if isinstance(entrypoint, CommandList):
            return ("/bin/sh", "-c", "\n".join(command_lines(entrypoint)) + ' "$@"', spec.name)
    return ()


def package(packageable: Packageable) -> KubernetesImage:
    """Resolves the image the cluster will pull: a registry reference as is; otherwise built and pushed."""
    spec: Any = packageable.executable_spec
    executor_spec: Any = packageable.executor_spec
    common = {"name": spec.name, "args": packageable.args, "env_vars": packageable.env_vars}
    from xmanager.executors.images import build as images  # Imports docker only when it builds or pushes.

    repository = executor_spec.push_image_tag
    if not repository and not images.is_prebuilt_reference(spec):
        from xmanager.executors import gcloud

        repository = gcloud.default_repository(
            spec.name, f"{type(spec).__name__}({spec.name!r}) for Kubernetes without "
            "Kubernetes.Spec(push_image_tag='registry/repository') (its image goes to gcr.io/PROJECT/NAME)",
        )
    image = images.registry_image(
        spec, repository,
        f"{type(spec).__name__}({spec.name!r}) must be pushed to a registry the cluster can pull from: pass "
        "xm_local.Kubernetes.Spec(push_image_tag='registry/repository')",
    )
    return KubernetesImage(image=image, command=_command(spec), **common)


class KubernetesPlugin(ExecutorPlugin[Kubernetes]):
    name = "kubernetes"
    executor_type = Kubernetes
    spec_type = KubernetesSpec
    supported_executables = (Container, PythonContainer, Dockerfile)
    detached = True
    exports = {
        "Kubernetes": Kubernetes, "KubernetesSpec": KubernetesSpec, "ClusterConfig": ClusterConfig,
        "Toleration": Toleration, "TpuCapability": TpuCapability,
    }

    def package(self, packageable: Packageable) -> Executable:
        return package(packageable)

    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend[Kubernetes]:
        from xmanager.executors.kubernetes.backend import KubernetesBackend

        return KubernetesBackend(sink, settings)


plugin = KubernetesPlugin()

__all__ = ["Kubernetes", "KubernetesImage", "KubernetesPlugin", "KubernetesSpec", "Toleration", "TpuCapability", "plugin"]
