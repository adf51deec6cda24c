"""Container jobs for the local executor: packaging into images, and running them on the Docker engine.

A container job behaves like a process job: its stdout/stderr go to ``stdout.log`` and
``stderr.log`` in the job folder, the job folder is mounted at the same path inside the
container and ``XM_RESULTS_PATH`` points into it (so ``xm.report`` works unchanged), and
cancel stops and removes the container. Job args become the container's command (after
the image's entrypoint), as with ``docker run IMAGE ARGS``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

import attrs
from xmanager.xm.converters import any_dict
from xmanager.xm.executables import Container, Dockerfile, PythonContainer
from xmanager.xm.job_blocks import Executable, Packageable
from xmanager.xm.resources import ResourceType, requested

if TYPE_CHECKING:
    from xmanager.executors.local import Local

CONTAINER_SPECS = (PythonContainer, Container, Dockerfile)
LABEL_EXPERIMENT = "org.xmanager.experiment"
LABEL_WORK_UNIT = "org.xmanager.work-unit"
LABEL_JOB = "org.xmanager.job"
STOP_GRACE_SECONDS = 5
#: XManager's Cloud Storage mount: ``~/gcs`` on the host (gcsfuse) at ``/gcs`` in containers.
GCS_HOST_PATH = "~/gcs"
GCS_CONTAINER_PATH = "/gcs"


def _ports(value: Mapping[Any, Any]) -> dict[str, Any]:
    converted = {}
    for container_port, host in dict(value or {}).items():
        key = str(container_port)
        number = key.split("/", 1)[0]
        if not number.isdigit() or not 0 < int(number) < 65536:
            raise ValueError(f"DockerOptions.ports: container port {container_port!r} is not a port number (e.g. 8080)")
        converted[key] = host
    return converted


def _volumes(value: Mapping[str, str]) -> dict[str, str]:
    converted = {}
    for host, target in dict(value or {}).items():
        if not os.path.isabs(os.path.expanduser(str(host))):
            raise ValueError(f"DockerOptions.volumes: host path {host!r} must be absolute")
        if not str(target).startswith("/"):
            raise ValueError(f"DockerOptions.volumes: container path {target!r} (for {host!r}) must be absolute")
        converted[os.path.expanduser(str(host))] = str(target)
    return converted


def _gpus(_instance: Any, _attribute: Any, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < -1 or value == 0):
        raise ValueError(f"DockerOptions.gpus must be a positive count or -1 for all GPUs, got {value!r}")


@attrs.frozen
class DockerOptions:
    """How the local executor runs a container job.

    Parameters
    ----------
    ports:
        Container port (``8080`` or ``"8080/tcp"``) to host port, or to ``(host_ip, port)``,
        as in ``docker run -p``.
    volumes:
        Absolute host path to container path (mounted read-write), as in ``docker run -v``.
    mount_gcs_path:
        Mount ``~/gcs`` (a gcsfuse mount of Cloud Storage) at ``/gcs`` when that folder exists
        on this machine, as XManager does (default).
    interactive:
        Give the container a terminal and an open stdin, so ``docker attach`` can drive it
        (its stderr then arrives in ``stdout.log``).
    gpus:
        GPUs to expose: a count, or ``-1`` for all (needs the NVIDIA container runtime).
        Without it, the job's ``local_gpu`` requirement is used.
    network:
        Docker network mode or network name (``host``, ``none``, ``bridge``, ...).
    extra:
        More keyword arguments for the docker SDK's ``containers.create`` (e.g. ``shm_size``).
    """

    ports: Mapping[str, Any] = attrs.field(factory=dict, converter=_ports)
    volumes: Mapping[str, str] = attrs.field(factory=dict, converter=_volumes)
    mount_gcs_path: bool = True
    interactive: bool = False
    gpus: Optional[int] = attrs.field(default=None, validator=_gpus)
    network: Optional[str] = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=any_dict)


@attrs.define(kw_only=True)
class ContainerExecutable(Executable):
    """A packaged container job: the image to run (by local tag and id)."""

    image: str
    image_id: str
    content_hash: str = ""


def package_container(packageable: Packageable, launch_dir: Optional[str] = None) -> ContainerExecutable:
    """Builds, loads or pulls the spec's image (cached by content) and returns it as an executable."""
    from xmanager.executors import packaging
    from xmanager.executors.images import build as images

    spec: Union[PythonContainer, Container, Dockerfile] = packageable.executable_spec  # type: ignore[assignment]
    ref = images.ensure_image(spec, launch_dir=launch_dir or packaging.launch_dir())
    return ContainerExecutable(
        name=spec.name,
        args=packageable.args,
        env_vars=packageable.env_vars,
        image=ref.tag,
        image_id=ref.image_id,
        content_hash=ref.content_hash,
    )


_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client_for(docker_host: Optional[str] = None) -> Any:
    """A shared docker client per engine address (the backend's threads share one connection pool)."""
    from xmanager.executors.images import build as images

    address = docker_host or os.environ.get("DOCKER_HOST") or ""
    with _client_lock:
        client = _clients.get(address)
        if client is None:
            client = _clients[address] = images.docker_client(600, base_url=address or None, max_pool_size=64)
        return client


class StartError(OSError):
    """The engine refused to create or start the container; the message says why."""


def create_kwargs(
    executable: ContainerExecutable,
    executor: Local,
    args: tuple[str, ...],
    env: Mapping[str, str],
    work_dir: str,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The docker SDK ``containers.create`` arguments for one job."""
    options = executor.docker_options or DockerOptions()
    volumes = {work_dir: {"bind": work_dir, "mode": "rw"}}
    gcs = os.path.expanduser(GCS_HOST_PATH)
    if options.mount_gcs_path and os.path.isdir(gcs):
        volumes[gcs] = {"bind": GCS_CONTAINER_PATH, "mode": "rw"}
    volumes.update({host: {"bind": target, "mode": "rw"} for host, target in options.volumes.items()})
    kwargs: dict[str, Any] = {
        "image": executable.image_id or executable.image,
        "command": list(args),
        "environment": dict(env),
        "volumes": volumes,
        "labels": dict(labels),
        "detach": True,
        "init": True,  # A tiny init as PID 1 forwards SIGTERM, so cancel stops jobs gracefully.
    }
    if options.ports:
        kwargs["ports"] = dict(options.ports)
    if options.interactive:
        kwargs.update(tty=True, stdin_open=True)
    if options.network:
        kwargs["network_mode" if options.network in ("host", "none", "bridge") else "network"] = options.network
    gpus = options.gpus
    if gpus is None:
        gpus = int(requested(executor.requirements, ResourceType.LOCAL_GPU)) or None
    if gpus:
        import docker

        kwargs["device_requests"] = [docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])]
    kwargs.update(options.extra)
    return kwargs


def create_and_start(client: Any, kwargs: dict[str, Any], name: str) -> Any:
    import docker

    try:
        container = client.containers.create(name=name, **kwargs)
    except docker.errors.ImageNotFound:
        raise StartError(f"image {kwargs['image']} is not in the Docker engine; package the executable again") from None
    except docker.errors.APIError as error:
        raise StartError(f"the Docker engine refused to create the container: {error.explanation or error}") from None
    except Exception as error:  # Bad extra= arguments (TypeError) or a connection error.
        raise StartError(f"could not create the container: {error}") from None
    try:
        container.start()
        container.reload()
    except Exception as error:
        remove_quietly(container)
        explanation = getattr(error, "explanation", None) or error
        raise StartError(f"the Docker engine could not start the container: {explanation}") from None
    return container


def container_name(experiment_id: int, work_unit_id: int, job_name: str) -> str:
    clean = "".join(c if c.isalnum() or c in "_.-" else "_" for c in job_name)[:40]
    return f"xm-{experiment_id}-{work_unit_id}-{clean}-{uuid.uuid4().hex[:8]}"


class LogPump:
    """Copies one of a container's output streams into a file (optionally echoed with a prefix)."""

    def __init__(self, container: Any, path: str, stdout: bool, echo_prefix: Optional[str] = None) -> None:
        self._container, self._path, self._stdout, self._prefix = container, path, stdout, echo_prefix
        self.complete = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"xm-logs-{os.path.basename(path)}")
        self._thread.start()

    def _run(self) -> None:
        import sys

        with open(self._path, "wb") as log:
            try:
                for chunk in self._container.logs(
                    stdout=self._stdout, stderr=not self._stdout, stream=True, follow=True
                ):
                    log.write(chunk)
                    log.flush()
                    if self._prefix is not None:
                        for line in chunk.decode("utf-8", "replace").splitlines():
                            sys.stdout.write(f"{self._prefix}{line}\n")
                        sys.stdout.flush()
                self.complete = True
            except Exception:  # A dropped stream: finish() rewrites the log from the engine.
                self.complete = False

    def finish(self) -> None:
        """Waits for the stream to end; if it broke, writes the whole log again from the engine."""
        self._thread.join(timeout=30)
        if self.complete and not self._thread.is_alive():
            return
        try:
            data = self._container.logs(stdout=self._stdout, stderr=not self._stdout)
        except Exception:
            return
        with open(self._path, "wb") as log:
            log.write(data)


def wait(container: Any) -> int:
    """The container's exit code, waiting as long as it runs."""
    result = container.wait(timeout=None)
    return int(result.get("StatusCode", -1))


def _remove(container: Any) -> None:
    import docker

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        if "already in progress" not in str(error):
            raise


def remove_quietly(container: Any) -> None:
    """Removes a finished container; an engine that is gone is reported, not raised."""
    try:
        _remove(container)
    except Exception as error:
        import sys

        sys.stderr.write(f"xmanager: could not remove container {getattr(container, 'short_id', '?')}: {error}\n")


def stop(docker_host: Optional[str], container_id: str, remove_it: bool = False) -> None:
    """Stops a job's container (SIGTERM, then SIGKILL after the grace period); removes it if asked."""
    import docker

    client = client_for(docker_host)
    try:
        container = client.containers.get(container_id)
    except docker.errors.NotFound:
        return
    try:
        container.stop(timeout=STOP_GRACE_SECONDS)
    except docker.errors.NotFound:
        return
    if remove_it:
        _remove(container)


def state(docker_host: Optional[str], container_id: str) -> Optional[str]:
    """The container's state (``running``, ``exited``, ...) or None when it is gone."""
    import docker

    try:
        container = client_for(docker_host).containers.get(container_id)
    except docker.errors.NotFound:
        return None
    return str(container.status)
