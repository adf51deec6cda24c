"""Images for container executables: build, load or pull them once, and push them to a registry.

``ensure_image`` turns an ``xm.PythonContainer``, ``xm.Dockerfile`` or ``xm.Container`` into an
image in the Docker engine. Built images are tagged by the SHA-256 of their build context
(files, modes and Dockerfile), so an unchanged spec is never built twice: the second call
finds the tag and returns at once. ``push_image`` tags an image into a registry repository
and returns a digest-pinned reference. The docker SDK is imported inside functions.

Every failure is an :class:`ImageError` subclass whose message says what failed (the path,
image or registry) and how to fix it; build failures carry the end of the build log.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from typing import Any, Optional, Union

import attrs
from xmanager.executors.api import LaunchError, ServiceUnavailableError
from xmanager.executors.images import context as contexts
from xmanager.xm.executables import Container, Dockerfile, PythonContainer

ImageSpec = Union[PythonContainer, Container, Dockerfile]

#: Label on images this module builds: the content hash of their build context.
HASH_LABEL = "org.xmanager.content-hash"
#: Repository prefix of local tags (``xm-local/<name>:<hash16>``).
LOCAL_REPOSITORY = "xm-local"
_LOG_TAIL = 40
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz")
_REFERENCE = re.compile(
    r"^(?:(?P<host>[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?)/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


class ImageError(LaunchError):
    """An image could not be made, found or pushed."""


class DockerUnavailableError(ImageError, ServiceUnavailableError):
    """No Docker engine answers at DOCKER_HOST (or the default socket)."""


class ImageBuildError(ImageError):
    """``docker build`` failed; ``log`` holds the whole build output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class ImageNotFoundError(ImageError):
    """A base or prebuilt image is not in the engine and could not be pulled."""


class RegistryError(ImageError):
    """A registry could not be reached or refused a push."""


@attrs.frozen
class ImageRef:
    """An image in the local engine: ``tag`` to run it by, its ``image_id`` and content hash.

    ``built`` says whether this call built (or loaded) it, or found it already there.
    """

    tag: str
    image_id: str
    content_hash: str
    built: bool = attrs.field(default=False, eq=False)


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_client(timeout: int = 600, *, base_url: Optional[str] = None, max_pool_size: int = 10) -> Any:
    """A ``docker.DockerClient`` for ``base_url`` (default DOCKER_HOST or the default socket), checked with a ping."""
    try:
        import docker
    except ImportError:
        raise DockerUnavailableError("the docker Python SDK is not installed: pip install docker") from None
    address = base_url or _engine_address()
    try:
        if base_url:
            client = docker.DockerClient(
                base_url=base_url, version="auto", timeout=timeout, max_pool_size=max_pool_size
            )
        else:
            client = docker.from_env(version="auto", timeout=timeout, max_pool_size=max_pool_size)
        client.ping()
    except Exception as error:  # docker raises DockerException, requests errors or OSError here.
        raise DockerUnavailableError(
            f"cannot reach a Docker engine at {address}: {error}. Start Docker or set DOCKER_HOST "
            "(for a private test engine: xmanager devcluster docker start DIR)"
        ) from None
    return client


def is_registry_reference(image_path: str) -> bool:
    """True for an image reference like ``gcr.io/p/x:1`` or ``127.0.0.1:5000/x``; False for a file path."""
    if not image_path or image_path.startswith(("/", "./", "../", "~")) or image_path.endswith(_TAR_SUFFIXES):
        return False
    return _REFERENCE.match(image_path) is not None


def registry_of(repository: str) -> str:
    """The registry host a repository lives on (``docker.io`` when it names none)."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def local_tag(name: str, content_hash: str) -> str:
    clean = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-") or "image"
    return f"{LOCAL_REPOSITORY}/{clean}:{content_hash[:16]}"


_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(content_hash: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((_engine_address(), content_hash), threading.Lock())


def is_prebuilt_reference(spec: ImageSpec) -> bool:
    """Whether ``spec`` is an image already in a registry (used as it is, never pushed)."""
    return isinstance(spec, Container) and is_registry_reference(spec.image_path)


def registry_image(spec: ImageSpec, repository: Optional[str], missing_repository: str) -> str:
    """The image a cluster or cloud service pulls for ``spec``.

    A ``Container`` naming a registry image is used as it is (no Docker needed); any other spec is
    built (once per content) and pushed to ``repository``, and the digest-pinned reference returned.
    ``missing_repository`` is the error when a push is needed and no repository was given.
    """
    if isinstance(spec, Container) and is_registry_reference(spec.image_path):
        return spec.image_path
    if not repository:
        raise ValueError(missing_repository)
    from xmanager.executors.packaging import launch_dir

    return push_image(ensure_image(spec, launch_dir=launch_dir()), repository)


def ensure_image(spec: ImageSpec, *, launch_dir: str, client: Any = None) -> ImageRef:
    """The image for ``spec`` in the engine, built, loaded or pulled only when it is not there yet.

    A relative ``Container.image_path`` (a tarball) resolves against ``launch_dir`` (the launch
    script's folder); PythonContainer and Dockerfile paths were resolved when the spec was built.
    """
    client = client or docker_client()
    if isinstance(spec, Container):
        return _container_image(spec, launch_dir, client)
    if isinstance(spec, PythonContainer):
        context = contexts.python_container_context(spec, launch_dir)
        what = f"xm.PythonContainer(path={spec.path!r})"
    elif isinstance(spec, Dockerfile):
        context = contexts.dockerfile_context(spec, launch_dir)
        what = f"xm.Dockerfile(path={spec.path!r})"
    else:
        raise TypeError(
            f"ensure_image: no image for {type(spec).__name__}; expected PythonContainer, Container or Dockerfile"
        )
    try:
        tag = local_tag(spec.name, context.content_hash)
        with _lock(context.content_hash):
            found = _find(client, tag)
            if found is not None:
                return ImageRef(tag, found.id, context.content_hash)
            for base in context.base_images:
                _present_or_pull(client, base, f"the base image in {what}")
            image_id = _build(client, context, tag, what)
            return ImageRef(tag, image_id, context.content_hash, built=True)
    finally:
        context.remove()


def _find(client: Any, reference: str) -> Any:
    import docker

    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None


def _present_or_pull(client: Any, reference: str, what: str) -> Any:
    import docker
    from docker.utils import parse_repository_tag

    image = _find(client, reference)
    if image is not None:
        return image
    repository, tag = parse_repository_tag(reference)
    try:
        if tag and tag.startswith("sha256:"):
            client.api.pull(f"{repository}@{tag}")
        else:
            client.api.pull(repository, tag=tag or "latest")
        return client.images.get(reference)
    except docker.errors.DockerException as error:
        explanation = getattr(error, "explanation", None) or str(error)
        raise ImageNotFoundError(
            f"{what}, {reference!r}, is not in the Docker engine at {_engine_address()} and could not be pulled "
            f"from {registry_of(repository)}: {explanation}. Fix: pull, load or build it into this engine first "
            f"(e.g. `docker pull {reference}` where the registry is reachable, or `docker load -i image.tar`), "
            "or name an image the engine has"
        ) from None


def _build(client: Any, context: contexts.BuildContext, tag: str, what: str) -> str:
    import docker

    lines: list[str] = []
    error: Optional[str] = None
    network = os.environ.get("XM_DOCKER_BUILD_NETWORK") or None
    try:
        with context.open() as tarball:
            stream = client.api.build(
                fileobj=tarball,
                custom_context=True,
                tag=tag,
                dockerfile=context.dockerfile,
                rm=True,
                forcerm=True,
                labels={HASH_LABEL: context.content_hash},
                network_mode=network,
                decode=True,
            )
            for chunk in stream:
                if "stream" in chunk:
                    lines.extend(line for line in chunk["stream"].splitlines() if line.strip())
                if "error" in chunk:
                    error = chunk["error"].strip()
                    lines.append(error)
    except docker.errors.APIError as api_error:
        error = str(api_error.explanation or api_error)
        lines.append(error)
    log = "\n".join(lines)
    if error is not None:
        tail = "\n".join(f"  | {line}" for line in lines[-_LOG_TAIL:])
        raise ImageBuildError(
            f"docker build of {what} failed: {error}\nDockerfile ({context.dockerfile}):\n"
            + "\n".join(f"  > {line}" for line in context.dockerfile_text.splitlines())
            + f"\nlast lines of the build log:\n{tail}\nFix the step that failed, then launch again.",
            log,
        )
    image = _find(client, tag)
    if image is None:
        raise ImageBuildError(f"docker build of {what} reported success but {tag} is missing", log)
    return str(image.id)


def _file_hash(path: str) -> str:
    digest = hashlib.sha256(b"xm-image-file-1\n")
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _container_image(spec: Container, launch_dir: str, client: Any) -> ImageRef:
    what = f"xm.Container(image_path={spec.image_path!r})"
    if is_registry_reference(spec.image_path):
        before = _find(client, spec.image_path)
        image = before or _present_or_pull(client, spec.image_path, f"the image of {what}")
        return ImageRef(spec.image_path, str(image.id), str(image.id), built=before is None)
    path = os.path.expanduser(spec.image_path)
    path = os.path.normpath(path if os.path.isabs(path) else os.path.join(launch_dir, path))
    if not os.path.isfile(path):
        raise contexts.ContextError(
            f"{what}: no image tarball at {path!r}; give a `docker save` tarball or a registry reference"
        )
    content_hash = _file_hash(path)
    tag = local_tag(spec.name, content_hash)
    with _lock(content_hash):
        found = _find(client, tag)
        if found is not None:
            return ImageRef(tag, str(found.id), content_hash)
        import docker

        try:
            with open(path, "rb") as handle:
                images = client.images.load(handle)
        except docker.errors.APIError as error:
            raise ImageError(
                f"{what}: docker load of {path!r} failed: {error.explanation or error}. "
                "The file must be a `docker save` (or OCI) image tarball"
            ) from None
        if not images:
            raise ImageError(f"{what}: {path!r} holds no image (expected a `docker save` tarball)")
        images[0].tag(tag)
        return ImageRef(tag, str(images[0].id), content_hash, built=True)


def push_image(ref: ImageRef, repository: str, *, client: Any = None) -> str:
    """Tags ``ref`` as ``repository:<hash16>``, pushes it, and returns ``repository@sha256:...``."""
    import docker

    if not is_registry_reference(repository) or "@" in repository:
        raise ValueError(f"push_image: repository {repository!r} is not a valid image repository (e.g. host:5000/xm/x)")
    repository = repository.rsplit(":", 1)[0] if re.search(r":[^/]*$", repository) else repository
    client = client or docker_client()
    registry = registry_of(repository)
    tag = ref.content_hash[:16] if not ref.content_hash.startswith("sha256:") else ref.content_hash[7:23]
    hint = (
        f"Check that the registry {registry} is running and reachable from the Docker engine at {_engine_address()}; "
        "log in with `docker login` if it needs credentials; a plain-HTTP registry other than 127.0.0.0/8 must be "
        "listed in the engine's insecure-registries"
    )
    try:
        client.images.get(ref.image_id).tag(repository, tag)
        digest: Optional[str] = None
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise RegistryError(
                    f"push of {repository}:{tag} to registry {registry} failed: {chunk['error']}. {hint}"
                )
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = aux["Digest"]
    except docker.errors.ImageNotFound:
        raise ImageError(
            f"push_image: image {ref.image_id} ({ref.tag}) is not in the engine; run ensure_image first"
        ) from None
    except docker.errors.APIError as error:
        raise RegistryError(
            f"push of {repository}:{tag} to registry {registry} failed: {error.explanation or error}. {hint}"
        ) from None
    if digest is None:
        raise RegistryError(f"push of {repository}:{tag} to registry {registry} returned no digest. {hint}")
    return f"{repository}@{digest}"
