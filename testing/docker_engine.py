"""A private Docker engine (and registry) in a folder, for tests, benchmarks and trying containers.

NOT FOR PRODUCTION: the engine and the registry listen without TLS or authentication.

Needs Debian's ``docker.io`` (dockerd, containerd, runc) and root; ``docker-registry`` for the
registry. Everything the engine keeps (images, containers, sockets, pid files, logs) lives
under the run folder, so it never touches a system engine. The daemons are children of the
process that started them and are stopped by PID.

By default the engine makes no host network changes (``--bridge=none --iptables=false``):
containers get ``host`` or ``none`` networking only, and builds run on the host network.

    xmanager devcluster docker start DIR   # prints: export DOCKER_HOST=...
    xmanager devcluster docker status DIR
    xmanager devcluster docker stop DIR

With no public registry reachable, :func:`python_base_image` makes a small Python image from
the host's own interpreter (its binary, stdlib, the shared libraries ``ldd`` lists, and
busybox for a shell), cached as a tarball between runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from typing import Any, Optional

import attrs
from xmanager.testing.loopback import free_port

PACKAGE_HINT = "install Debian's docker.io (apt-get install docker.io)"
REGISTRY_HINT = "install Debian's docker-registry (apt-get install docker-registry)"
_STATE = "devengine.json"


class DevEngineError(RuntimeError):
    """The dev engine could not start; the message says why and what to install or check."""


def missing_programs(registry: bool = False) -> list[str]:
    """Programs the dev engine needs that are not on PATH."""
    names = ["dockerd", "containerd", "runc"] + (["docker-registry"] if registry else [])
    return [name for name in names if shutil.which(name) is None and not os.path.exists(f"/usr/sbin/{name}")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"
    except OSError:
        return True


def _stop_pid(pid: Optional[int], grace: float = 10.0) -> None:
    if not pid or not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:  # Reap it when it is our child.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if not _alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


@attrs.define
class DevEngine:
    """A running private dockerd (and optional registry); ``stop()`` ends both by PID."""

    run_dir: str
    docker_host: str
    dockerd_pid: int
    registry: Optional[str] = None  # "127.0.0.1:PORT"
    registry_pid: Optional[int] = None

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host}

    def status(self) -> str:
        """One line: whether the engine (and registry) run, and the ``DOCKER_HOST`` to use."""
        if not _alive(self.dockerd_pid):
            return f"stopped (dockerd {self.dockerd_pid} recorded in {self.run_dir} is gone)"
        registry = ""
        if self.registry_pid is not None:
            registry = f"; registry {self.registry}" + ("" if _alive(self.registry_pid) else " (stopped)")
        return f"running: dockerd pid {self.dockerd_pid}; DOCKER_HOST={self.docker_host}{registry}"

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host, version="auto", timeout=300)

    def stop(self) -> None:
        """Stops the registry and the engine (containers die with it) and unmounts what dockerd left."""
        _stop_pid(self.registry_pid)
        self.registry_pid = None
        _stop_pid(self.dockerd_pid, grace=20.0)
        exec_root = os.path.join(self.run_dir, "exec")
        # dockerd can leave network-namespace mounts under its exec root.
        try:
            with open("/proc/mounts", encoding="utf-8") as handle:
                mounts = [line.split()[1] for line in handle]
        except OSError:
            mounts = []
        for mount in sorted((m for m in mounts if m.startswith(exec_root) or m.startswith(self.run_dir)), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        try:
            os.remove(os.path.join(self.run_dir, _STATE))
        except FileNotFoundError:
            pass


def start(run_dir: str, *, registry: bool = True, timeout: float = 60.0) -> DevEngine:
    """Starts dockerd with its state under ``run_dir`` (and a registry on loopback); waits until both answer."""
    missing = missing_programs(registry)
    if missing:
        hints = [PACKAGE_HINT] + ([REGISTRY_HINT] if "docker-registry" in missing else [])
        raise DevEngineError(f"cannot start a dev Docker engine: {', '.join(missing)} missing; {'; '.join(hints)}")
    if os.geteuid() != 0:
        raise DevEngineError("the dev Docker engine runs dockerd, which needs root")
    run_dir = os.path.abspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    sock = os.path.join(run_dir, "docker.sock")
    if len(sock) > 100:
        raise DevEngineError(f"run folder {run_dir!r} is too long for a unix socket path; use a shorter one")
    command = [
        "dockerd",
        "--data-root", os.path.join(run_dir, "data"),
        "--exec-root", os.path.join(run_dir, "exec"),
        "--pidfile", os.path.join(run_dir, "dockerd.pid"),
        "-H", f"unix://{sock}",
        "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
    ]  # fmt: skip
    log = open(os.path.join(run_dir, "dockerd.log"), "ab")  # noqa: SIM115 - handed to the daemon.
    with log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    engine = DevEngine(run_dir=run_dir, docker_host=f"unix://{sock}", dockerd_pid=process.pid)
    try:
        _wait_for_engine(engine, process, timeout)
        if registry:
            _start_registry(engine, timeout)
    except BaseException:
        engine.stop()
        raise
    with open(os.path.join(run_dir, _STATE), "w", encoding="utf-8") as handle:
        json.dump(attrs.asdict(engine), handle)
    return engine


def _wait_for_engine(engine: DevEngine, process: subprocess.Popen[bytes], timeout: float) -> None:
    import docker

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevEngineError(f"dockerd exited with {process.returncode}; see {engine.run_dir}/dockerd.log")
        if os.path.exists(engine.docker_host[len("unix://") :]):
            try:
                client = docker.DockerClient(base_url=engine.docker_host, version="auto", timeout=10)
                client.ping()
                client.close()
                return
            except Exception as error:  # Not ready yet.
                last = error
        time.sleep(0.1)
    raise DevEngineError(f"dockerd did not answer within {timeout:.0f} s ({last}); see {engine.run_dir}/dockerd.log")


_REGISTRY_CONF = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def _start_registry(engine: DevEngine, timeout: float) -> None:
    import urllib.request

    port = free_port()
    conf = os.path.join(engine.run_dir, "registry.yml")
    with open(conf, "w", encoding="utf-8") as handle:
        handle.write(_REGISTRY_CONF.format(root=os.path.join(engine.run_dir, "registry"), port=port))
    log = open(os.path.join(engine.run_dir, "registry.log"), "ab")  # noqa: SIM115 - handed to the daemon.
    with log:
        process = subprocess.Popen(
            ["docker-registry", "serve", conf], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    engine.registry, engine.registry_pid = f"127.0.0.1:{port}", process.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevEngineError(f"docker-registry exited with {process.returncode}; see {engine.run_dir}/registry.log")
        try:
            with urllib.request.urlopen(f"http://{engine.registry}/v2/", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise DevEngineError(f"docker-registry did not answer on {engine.registry}; see {engine.run_dir}/registry.log")


def load(run_dir: str) -> DevEngine:
    """The engine a previous ``start`` left in ``run_dir`` (for ``stop`` from another process)."""
    path = os.path.join(os.path.abspath(run_dir), _STATE)
    try:
        with open(path, encoding="utf-8") as handle:
            return DevEngine(**json.load(handle))
    except FileNotFoundError:
        raise DevEngineError(f"no dev engine recorded in {run_dir!r} ({path} is missing)") from None


# ---- a Python base image without any registry ------------------------------------------------------
PYTHON_BASE_REPOSITORY = "localhost/xm-python"
_SKIP_STDLIB = {"test", "idlelib", "turtledemo", "tkinter", "ensurepip", "lib2to3", "__pycache__"}
_BUILDER_VERSION = "2"
#: Debian's PEP 668 marker: a container's Python is the image's own, so pip may install into it.
_SKIP_FILES = {"EXTERNALLY-MANAGED"}


def _host_python() -> tuple[str, str]:
    """(interpreter, stdlib folder) of the system Python matching our version."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    binary = f"/usr/bin/python{version}"
    stdlib = f"/usr/lib/python{version}"
    if not (os.path.exists(binary) and os.path.isdir(stdlib)):
        raise DevEngineError(f"no system Python {version} at {binary} with {stdlib}; install Debian's python{version}")
    return binary, stdlib


def _stdlib_files(stdlib: str) -> list[str]:
    files: list[str] = []
    for root, dirs, names in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_STDLIB and d != "site-packages")
        files.extend(os.path.join(root, name) for name in sorted(names) if name not in _SKIP_FILES)
    return files


def _libraries(binaries: list[str]) -> list[str]:
    """Every shared library (and the loader) the given ELF files need, as ``ldd`` lists them."""
    found: set[str] = set()
    for start in range(0, len(binaries), 200):
        result = subprocess.run(["ldd", *binaries[start : start + 200]], capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            parts = line.split()
            for part in parts:
                if part.startswith("/") and os.path.exists(part):
                    found.add(part)
    return sorted(found)


def _pip_folder() -> Optional[str]:
    try:
        import pip
    except ImportError:
        return None
    return os.path.dirname(pip.__file__)


def python_base_image(client: Any, cache_dir: Optional[str] = None) -> str:
    """A tag of a minimal Python image (host interpreter + busybox + pip) in ``client``'s engine.

    The rootfs tarball is cached under ``cache_dir`` (default ``~/.cache/xmanager-test``),
    keyed by the content it is made from; importing it into a fresh engine takes seconds.
    """
    binary, stdlib = _host_python()
    busybox = shutil.which("busybox")
    if busybox is None:
        raise DevEngineError("busybox is missing; install Debian's busybox-static (apt-get install busybox-static)")
    stdlib_files = _stdlib_files(stdlib)
    dynload = [f for f in stdlib_files if f.endswith(".so")]
    libraries = _libraries([binary, *dynload])
    pip_dir = _pip_folder()
    key = hashlib.sha256(_BUILDER_VERSION.encode())
    for path in [binary, busybox, *libraries]:
        stat = os.stat(path)
        key.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    key.update(f"{stdlib}:{len(stdlib_files)}:{os.stat(stdlib).st_mtime_ns}:{pip_dir}".encode())
    digest = key.hexdigest()[:16]
    tag = f"{PYTHON_BASE_REPOSITORY}:{sys.version_info.major}.{sys.version_info.minor}-{digest}"
    import docker

    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "xmanager-test")
    os.makedirs(cache_dir, exist_ok=True)
    tarball = os.path.join(cache_dir, f"python-rootfs-{digest}.tar")
    if not os.path.exists(tarball):
        partial = f"{tarball}.{os.getpid()}.partial"
        _write_rootfs(partial, binary, stdlib, stdlib_files, libraries, busybox, pip_dir)
        os.replace(partial, tarball)
        for name in os.listdir(cache_dir):  # Older rootfs versions are never used again.
            if name.startswith("python-rootfs-") and name.endswith(".tar") and name != os.path.basename(tarball):
                os.remove(os.path.join(cache_dir, name))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    with open(tarball, "rb") as handle:
        client.api.import_image_from_data(
            handle,
            repository=PYTHON_BASE_REPOSITORY,
            tag=tag.rsplit(":", 1)[1],
            changes=[
                "ENV PATH=/usr/local/bin:/usr/bin:/bin",
                "ENV LANG=C.UTF-8",
                f'CMD ["python{version}"]',
            ],
        )
    return tag


def _write_rootfs(
    path: str,
    binary: str,
    stdlib: str,
    stdlib_files: list[str],
    libraries: list[str],
    busybox: str,
    pip_dir: Optional[str],
) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"

    def add_dir(archive: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        archive.addfile(info)

    def add_link(archive: tarfile.TarFile, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        archive.addfile(info)

    def add_text(archive: tarfile.TarFile, name: str, text: str) -> None:
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        archive.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w") as archive:
        for folder in ["bin", "usr", "usr/bin", "usr/lib", "usr/local", "usr/local/bin", "etc", "root", "lib", "lib64"]:
            add_dir(archive, folder)
        add_dir(archive, "tmp", 0o1777)
        archive.add(busybox, "bin/busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                add_link(archive, f"bin/{applet}", "busybox")
        archive.add(binary, f"usr/bin/python{version}")
        add_link(archive, "usr/bin/python3", f"python{version}")
        add_link(archive, "usr/bin/python", f"python{version}")
        seen_dirs: set[str] = set()
        for library in libraries:
            real = os.path.realpath(library)
            name = library.lstrip("/")
            parent = os.path.dirname(name)
            while parent and parent not in seen_dirs and parent not in ("lib", "lib64", "usr", "usr/lib"):
                seen_dirs.add(parent)
                parent = os.path.dirname(parent)
            for folder in sorted(seen_dirs):
                if folder not in archive.getnames():
                    add_dir(archive, folder)
            archive.add(real, name)
        for file in stdlib_files:
            archive.add(file, file.lstrip("/"), recursive=False)
        add_dir(archive, f"usr/lib/python{version}/site-packages")
        if pip_dir is not None:
            add_dir(archive, "usr/lib/python3")
            add_dir(archive, "usr/lib/python3/dist-packages")
            archive.add(pip_dir, "usr/lib/python3/dist-packages/pip", filter=_no_pycache)
        add_text(archive, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        add_text(archive, "etc/group", "root:x:0:\nnogroup:x:65534:\n")


def _no_pycache(info: tarfile.TarInfo) -> Optional[tarfile.TarInfo]:
    return None if "__pycache__" in info.name else info
