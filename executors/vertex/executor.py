"""The Vertex AI executor's user-facing classes and its plugin (see the package docstring)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Optional, Union

import attrs
from xmanager.executors.api import BackendSettings, ExecutorBackend, ExecutorPlugin, StatusSink
from xmanager.xm.converters import str_dict
from xmanager.xm.executables import Container, Dockerfile, PythonContainer
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable
from xmanager.xm.resources import JobRequirements

_Attribute = Any  # attrs.Attribute, for validators.
_LOCATION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
#: CreateCustomJob calls a launch keeps in flight by default (see ``Vertex(max_concurrent_creates=...)``).
DEFAULT_CONCURRENT_CREATES = 8
MAX_CONCURRENT_CREATES = 64
#: XManager's default bucket (TensorBoard output without a folder of its own).
BUCKET_ENV = "GOOGLE_CLOUD_BUCKET_NAME"


def _check_location(instance: object, attribute: _Attribute, value: Optional[str]) -> None:
    if value is not None and (not isinstance(value, str) or not _LOCATION.match(value)):
        raise ValueError(f"Vertex(location={value!r}): not a Google Cloud region such as 'us-central1'")


def _check_labels(instance: object, attribute: _Attribute, value: Mapping[str, str]) -> None:
    from xmanager.executors.vertex.job_spec import check_labels

    check_labels(value)


def _check_positive(instance: object, attribute: _Attribute, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"Vertex({attribute.name}={value!r}): must be a positive int")


def _check_concurrency(instance: object, attribute: _Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENT_CREATES:
        raise ValueError(f"Vertex(max_concurrent_creates={value!r}): must be an int from 1 to {MAX_CONCURRENT_CREATES}")


def _check_output(instance: object, attribute: _Attribute, value: Optional[str]) -> None:
    if value is not None and not str(value).startswith("gs://"):
        raise ValueError(f"Vertex(base_output_directory={value!r}): must be a Cloud Storage URI (gs://bucket/path)")


def _check_tensorboard(instance: object, attribute: _Attribute, value: Union[str, TensorboardCapability, None]) -> None:
    if value is not None and not isinstance(value, (str, TensorboardCapability)):
        raise TypeError(f"Vertex(tensorboard=...) takes a resource name or xm_local.TensorboardCapability, "
                        f"got {type(value).__name__}")


@attrs.frozen
class TensorboardCapability:
    """XManager's way to attach a Vertex TensorBoard: its resource ``name`` and the ``gs://`` output folder."""

    name: str
    base_output_directory: Optional[str] = None


@attrs.frozen
class VertexSpec(ExecutorSpec):
    """Packaging for Vertex AI.

    ``push_image_tag`` is the registry repository images built here are pushed to (e.g.
    ``"us-docker.pkg.dev/my-project/my-repo/trainer"``). A ``Container`` whose
    ``image_path`` already is a registry reference is used as it is and needs none.
    """

    push_image_tag: Optional[str] = None


@attrs.frozen
class Vertex(Executor):
    """Run as a Vertex AI CustomJob (one per work unit; a JobGroup's jobs are its worker pools).

    ``requirements`` and ``tensorboard`` may be given by position, as in XManager; the rest by name.

    Parameters
    ----------
    requirements:
        ``cpu``/``memory`` pick the smallest N1 machine that fits; an accelerator picks its
        machine family (``t4=1`` -> ``n1-standard-4`` + 1 T4, ``a100=8`` -> ``a2-highgpu-8g``,
        ``l4_24th=1`` -> ``g2-standard-4``, ``tpu_v5e=4`` -> ``ct5lp-hightpu-4t``). ``replicas``
        is the worker pool's replica count; ``location`` the region when ``location`` is unset.
    project:
        The Google Cloud project; default ``GOOGLE_CLOUD_PROJECT`` or the one of the
        application-default credentials.
    location:
        The region (default: ``requirements.location``, ``GOOGLE_CLOUD_REGION``, ``us-central1``).
    machine_type:
        Use this machine type instead of choosing one (checked against the accelerator).
    service_account, network:
        The CustomJob's service account and VPC network (``projects/N/global/networks/NAME``).
    tensorboard, base_output_directory:
        A Vertex TensorBoard resource name, and the ``gs://`` folder the job writes to
        (``AIP_MODEL_DIR`` etc.; TensorBoard needs it). ``tensorboard`` may also be XManager's
        :class:`TensorboardCapability` (name and output folder; a bucket name without
        ``gs://`` is taken as one, and no folder means ``gs://$GOOGLE_CLOUD_BUCKET_NAME``).
    timeout_seconds:
        The job's maximum running time.
    boot_disk_size_gb:
        The boot disk of each replica.
    labels:
        Extra labels on the CustomJob (ours are ``xm-experiment`` and ``xm-work-unit``).
    api_endpoint:
        The API server (default ``<location>-aiplatform.googleapis.com``; also
        ``XM_VERTEX_API_ENDPOINT``), e.g. a private endpoint.
    max_concurrent_creates:
        CreateCustomJob calls a launch keeps in flight at once (default 8; 1 creates one after
        another). A batch takes the smallest value among its units' executors.
    """

    Spec: ClassVar[type[VertexSpec]] = VertexSpec

    # JobRequirements is unhashable, as in XManager: executors hash by their other fields.
    requirements: JobRequirements = attrs.field(factory=JobRequirements, hash=False)
    tensorboard: Union[str, TensorboardCapability, None] = attrs.field(default=None, validator=_check_tensorboard)
    project: Optional[str] = attrs.field(default=None, kw_only=True)
    location: Optional[str] = attrs.field(kw_only=True, default=None, validator=_check_location)
    machine_type: Optional[str] = attrs.field(default=None, kw_only=True)
    service_account: Optional[str] = attrs.field(default=None, kw_only=True)
    network: Optional[str] = attrs.field(default=None, kw_only=True)
    base_output_directory: Optional[str] = attrs.field(kw_only=True, default=None, validator=_check_output)
    timeout_seconds: Optional[int] = attrs.field(kw_only=True, default=None, validator=_check_positive)
    boot_disk_size_gb: Optional[int] = attrs.field(kw_only=True, default=None, validator=_check_positive)
    labels: Mapping[str, str] = attrs.field(kw_only=True, factory=dict, converter=str_dict, validator=_check_labels, hash=False)
    api_endpoint: Optional[str] = attrs.field(default=None, kw_only=True)
    max_concurrent_creates: int = attrs.field(kw_only=True, default=DEFAULT_CONCURRENT_CREATES, validator=_check_concurrency)

    @property
    def tensorboard_name(self) -> Optional[str]:
        """The TensorBoard resource, whichever form ``tensorboard`` was given in."""
        if isinstance(self.tensorboard, TensorboardCapability):
            return self.tensorboard.name
        return self.tensorboard

    @property
    def output_directory(self) -> Optional[str]:
        """``base_output_directory``, else the TensorboardCapability's, else the default bucket's root."""
        if self.base_output_directory:
            return self.base_output_directory
        if not isinstance(self.tensorboard, TensorboardCapability):
            return None
        folder = self.tensorboard.base_output_directory or os.environ.get(BUCKET_ENV)
        if not folder:
            return None
        return folder if folder.startswith("gs://") else f"gs://{folder}"

    def __attrs_post_init__(self) -> None:
        if self.tensorboard_name and not self.output_directory:
            raise ValueError(
                "Vertex(tensorboard=...) needs base_output_directory='gs://...' for the event files (or "
                f"TensorboardCapability(base_output_directory=...), or ${BUCKET_ENV})"
            )
        from xmanager.executors.vertex.job_spec import machine_spec

        machine_spec(self.requirements, self.machine_type)  # Impossible machines fail here, in the script.


@attrs.define(kw_only=True)
class VertexExecutable(Executable):
    """A container image in a registry Vertex AI can pull from."""

    image_uri: str


class VertexPlugin(ExecutorPlugin[Vertex]):
    name = "vertex"
    executor_type = Vertex
    spec_type = VertexSpec
    supported_executables = (Container, PythonContainer, Dockerfile)
    detached = True
    exports = {
        "Vertex": Vertex, "VertexSpec": VertexSpec, "TensorboardCapability": TensorboardCapability,
        # XManager's older names for Vertex AI (Cloud AI Platform).
        "Caip": Vertex, "CaipSpec": VertexSpec,
    }

    def package(self, packageable: Packageable) -> Executable:
        spec: Any = packageable.executable_spec
        executor_spec: Any = packageable.executor_spec
        common = {"name": spec.name, "args": packageable.args, "env_vars": packageable.env_vars}
        if not isinstance(spec, self.supported_executables):
            names = ", ".join(t.__name__ for t in self.supported_executables)
            raise TypeError(f"Vertex AI runs container images: {type(spec).__name__} is not one of {names}")
        from xmanager.executors.images import build  # Imports docker only when it builds or pushes.

        repository = executor_spec.push_image_tag
        if not repository and not build.is_prebuilt_reference(spec):
            from xmanager.executors import gcloud

            repository = gcloud.default_repository(
                spec.name, f"xm.{type(spec).__name__} {spec.name!r} for Vertex AI without "
                "VertexSpec(push_image_tag=...) (its image goes to gcr.io/PROJECT/NAME)",
            )
        image = build.registry_image(
            spec, repository,
            f"xm.{type(spec).__name__} {spec.name!r} must be built and pushed to a registry Vertex AI can pull "
            "from; pass VertexSpec(push_image_tag='REGION-docker.pkg.dev/PROJECT/REPOSITORY/NAME') "
            "(or use xm.Container with a registry image reference)",
        )
        return VertexExecutable(image_uri=image, **common)

    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend[Vertex]:
        from xmanager.executors.vertex.backend import VertexBackend

        return VertexBackend(sink, settings)


plugin = VertexPlugin()

__all__ = ["TensorboardCapability", "Vertex", "VertexExecutable", "VertexPlugin", "VertexSpec", "plugin"]
