"""Which image a Vertex job runs: a registry reference as given, anything else built and pushed.

Docker is only touched for specs that need building (through ``xmanager.executors.images``);
a ``Container`` naming a registry image needs neither docker nor a push.
"""

from __future__ import annotations

import os
from typing import Any

from xmanager.executors.packaging import resolve_path
from xmanager.xm.executables import Container


def is_registry_reference(image_path: str) -> bool:
    from xmanager.executors.images import build

    return bool(build.is_registry_reference(image_path))


def image_uri(spec: Any, executor_spec: Any) -> str:
    """The image URI for ``spec``; builds and pushes to ``executor_spec.push_image_tag`` when needed."""
    if isinstance(spec, Container) and is_registry_reference(spec.image_path):
        return spec.image_path
    repository = getattr(executor_spec, "push_image_tag", None)
    if not repository:
        raise ValueError(
            f"xm.{type(spec).__name__} {spec.name!r} must be built and pushed to a registry Vertex AI can pull from; "
            "pass VertexSpec(push_image_tag='REGION-docker.pkg.dev/PROJECT/REPOSITORY/NAME') "
            "(or use xm.Container with a registry image reference)"
        )
    from xmanager.executors.images import build

    launch_dir = os.path.dirname(resolve_path("_"))
    ref = build.ensure_image(spec, launch_dir=launch_dir)
    return str(build.push_image(ref, repository))
