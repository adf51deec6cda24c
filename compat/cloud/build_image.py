"""Image builds as XManager's ``xmanager.cloud.build_image`` offers them, on the local Docker engine.

Images are always built locally (``executors/images``), cached by content; Cloud Build is
not used, so ``project``/``bucket``/``pull_image`` have no effect. Args are not baked
into the image: executors pass a job's args when they run it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

import attrs
from xmanager import xm
from xmanager.executors.images import context as _context


def default_steps(directory: str, use_deep_module: bool) -> list[str]:
    """The default Dockerfile steps for a PythonContainer folder named ``directory`` (to extend its instructions)."""
    return _context.default_steps(directory, use_deep_module)


def _launch_dir() -> str:
    from xmanager.executors.packaging import launch_dir

    return launch_dir()


def _tagged(image_id: str, image_name: str) -> str:
    from xmanager.executors.images import build

    repository, _, tag = image_name.rpartition(":") if ":" in image_name.rsplit("/", 1)[-1] else (image_name, "", "")
    build.docker_client().images.get(image_id).tag(repository, tag or "latest")
    return image_name if tag else f"{image_name}:latest"


def _default_name(spec: Any) -> str:
    from xmanager.executors import gcloud

    return gcloud.default_repository(spec.name, "xmanager.cloud.build_image without image_name") + ":latest"


def build(
    py_executable: xm.PythonContainer,
    args: Any = None,
    env_vars: Optional[Mapping[str, str]] = None,
    image_name: Optional[str] = None,
    project: Optional[str] = None,
    bucket: Optional[str] = None,
    pull_image: bool = False,
) -> str:
    """Builds ``py_executable`` (``env_vars`` become ``ENV`` lines) and tags it ``image_name``.

    No ``image_name`` means XManager's ``gcr.io/PROJECT/NAME``. Returns the image's name.
    """
    del args, project, bucket, pull_image
    from xmanager.executors.images import build as images

    spec = py_executable
    if env_vars:
        directory = os.path.basename(os.path.normpath(os.path.join(_launch_dir(), spec.path)))
        steps = list(spec.docker_instructions or default_steps(directory, spec.use_deep_module))
        steps += [f"ENV {key}={_quote(value)}" for key, value in env_vars.items()]
        spec = attrs.evolve(spec, docker_instructions=steps)
    name = image_name or _default_name(spec)
    ref = images.ensure_image(spec, launch_dir=_launch_dir())
    return _tagged(ref.image_id, name)


def _quote(value: str) -> str:
    import json

    return json.dumps(str(value))


def build_by_dockerfile(
    path: str,
    dockerfile: str,
    image_name: str,
    project: Optional[str] = None,
    bucket: Optional[str] = None,
    pull_image: bool = False,
) -> str:
    """Builds the context folder ``path`` with ``dockerfile`` and tags the image ``image_name``."""
    del project, bucket, pull_image
    from xmanager.executors.images import build as images

    spec = xm.Dockerfile(path=path, dockerfile=dockerfile)
    ref = images.ensure_image(spec, launch_dir=_launch_dir())
    return _tagged(ref.image_id, image_name)


def push(image: str) -> str:
    """Pushes the local image ``image`` to its registry; returns its digest reference (``repo@sha256:...``)."""
    from xmanager.executors.images import build as images

    client = images.docker_client()
    try:
        found = client.images.get(image)
    except Exception as error:  # docker.errors.ImageNotFound, or no engine.
        raise images.ImageError(f"push: no image {image!r} in the Docker engine ({error})") from None
    ref = images.ImageRef(image, str(found.id), str(found.id))
    return images.push_image(ref, image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image, client=client)
