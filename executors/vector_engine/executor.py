"""The VectorEngine executor's user-facing classes, its packaged executable, and its plugin.

Packaging compiles a :class:`~xmanager.xm.VeKernel` once (the builder caches the ``.so``
by a hash of sources, language, compiler, flags and libs), so a sweep of any size costs
one build per kernel and backend.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import threading
from typing import Any, ClassVar, Optional

import attrs
from xmanager.executors.api import BackendSettings, ExecutorBackend, ExecutorPlugin, StatusSink
from xmanager.xm.executables import VeKernel
from xmanager.xm.job_blocks import Executable, Executor, ExecutorSpec, Packageable

BACKENDS = ("auto", "host", "veo")
BUILD_ERROR_MODES = ("raise", "fail_units")
SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".C", ".f", ".f90", ".F90", ".f95", ".F")
_BUILD_LOCK = threading.Lock()


def _one_of(choices: tuple[str, ...], owner: str) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{owner}({attribute.name}={value!r}): use one of {', '.join(map(repr, choices))}")

    return check


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``veo`` when py-veo is importable and a VE slot exists, else ``host``."""
    if backend != "auto":
        return backend
    if glob.glob("/dev/veslot*") and importlib.util.find_spec("veo") is not None:
        return "veo"
    return "host"


@attrs.frozen(kw_only=True)
class VectorEngineSpec(ExecutorSpec):
    """Packaging for a VE: which compiler family to build for, where to cache builds.

    ``on_build_error="raise"`` (default) makes ``package()`` raise the compiler's message;
    ``"fail_units"`` packages anyway and fails every unit of that kernel with the message.
    """

    backend: str = attrs.field(default="auto", validator=_one_of(BACKENDS, "VectorEngineSpec"))
    build_dir: Optional[str] = None
    on_build_error: str = attrs.field(default="raise", validator=_one_of(BUILD_ERROR_MODES, "VectorEngineSpec"))


def _positive_int(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"VectorEngine({attribute.name}={value!r}): must be a positive int")


def _optional_timeout(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"VectorEngine(timeout={value!r}): seconds > 0, or None for no limit")


def _node(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"VectorEngine(node={value!r}): a VE node number (int >= 0)")


@attrs.frozen(kw_only=True)
class VectorEngine(Executor):
    """Run VE kernels on one Vector Engine node (or on the host emulation).

    Parameters
    ----------
    node:
        The VE node. Units on the same node share one VEO process.
    backend:
        ``"veo"`` (py-veo on a real VE), ``"host"`` (gcc + the host emulation) or ``"auto"``
        (``veo`` when a VE is present, else ``host``).
    contexts:
        Kernel calls that run at once on the node, each on its own VEO context.
    isolated:
        Host backend only: run kernels in a worker process, so a crash or a timeout kills the
        worker (restarted for the other units), never the launcher. Default True.
    timeout:
        Seconds a kernel call may take; past it the unit fails (and the worker is restarted).
    veorun_bin:
        A statically linked ``veorun`` for the VEO process (veo backend).
    inline_results_bytes:
        out/inout arrays up to this size go into the results as lists; larger ones are saved as
        ``<argument>.npy`` in the job's folder and the result is that path.
    """

    Spec: ClassVar[type[VectorEngineSpec]] = VectorEngineSpec

    node: int = attrs.field(default=0, validator=_node)
    backend: str = attrs.field(default="auto", validator=_one_of(BACKENDS, "VectorEngine"))
    contexts: int = attrs.field(default=1, validator=_positive_int)
    isolated: bool = True
    timeout: Optional[float] = attrs.field(default=None, validator=_optional_timeout)
    veorun_bin: Optional[str] = None
    inline_results_bytes: int = attrs.field(default=64 * 1024, validator=_positive_int)


@attrs.define(kw_only=True)
class VeKernelExecutable(Executable):
    """A packaged kernel: its spec, its source text, and the built library per backend."""

    kernel: VeKernel
    sources: dict[str, str] = attrs.field(factory=dict)
    libraries: dict[str, str] = attrs.field(factory=dict)
    build_dir: Optional[str] = None
    #: The compiler's message when the kernel did not compile and ``on_build_error="fail_units"``.
    build_error: Optional[str] = None
    on_build_error: str = "raise"

    def library_for(self, backend: str) -> str:
        """The shared library for ``backend``, built now (once, then cached) if packaging built another."""
        if self.kernel.library is not None:
            return self.libraries["any"]
        with _BUILD_LOCK:
            path = self.libraries.get(backend)
            if path is None:
                path = self.libraries[backend] = _build(self.kernel, self.sources, backend, self.build_dir)
            return path


def _read_sources(kernel: VeKernel) -> dict[str, str]:
    from xmanager.executors.packaging import resolve_path

    texts = {}
    for label, text in kernel.sources:
        if "\n" not in text and text.strip().endswith(SOURCE_SUFFIXES):
            path = resolve_path(text.strip())
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as error:
                raise FileNotFoundError(f"xm.VeKernel(sources[{label!r}]): cannot read {path!r}: {error}") from error
        texts[label] = text
    return texts


def _build(kernel: VeKernel, sources: dict[str, str], backend: str, build_dir: Optional[str]) -> str:
    from xmanager.executors.vector_engine.build import build_library

    flags = kernel.host_flags if backend == "host" else kernel.ve_flags
    return build_library(
        sources=sources, language=kernel.language, backend=backend, flags=flags, libs=kernel.libs, build_dir=build_dir
    )


def package_kernel(packageable: Packageable) -> VeKernelExecutable:
    """Checks a VeKernel and builds it for the spec's backend (or checks its prebuilt library)."""
    from xmanager.executors.packaging import resolve_path

    kernel = packageable.executable_spec
    spec = packageable.executor_spec
    assert isinstance(kernel, VeKernel) and isinstance(spec, VectorEngineSpec)
    common: dict[str, Any] = {"name": kernel.name, "args": packageable.args, "env_vars": packageable.env_vars}
    if kernel.library is not None:
        path = resolve_path(kernel.library)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"xm.VeKernel(library=...): no file at {path!r} (given as {kernel.library!r})")
        return VeKernelExecutable(kernel=kernel, libraries={"any": path}, **common)
    sources = _read_sources(kernel)
    backend = resolve_backend(spec.backend)
    executable = VeKernelExecutable(
        kernel=kernel, sources=sources, build_dir=spec.build_dir, on_build_error=spec.on_build_error, **common
    )
    from xmanager.executors.vector_engine.build import BuildError

    try:
        executable.library_for(backend)
    except BuildError as error:
        if spec.on_build_error == "raise":
            raise
        executable.build_error = not_compiled(kernel.name, error)
    return executable


def not_compiled(name: str, error: Exception) -> str:
    """A failed unit's message for a kernel that did not compile: the compiler's message and source lines."""
    return f"VeKernel {name!r} did not compile:\n{error}"


class VectorEnginePlugin(ExecutorPlugin[VectorEngine]):
    name = "vector_engine"
    executor_type = VectorEngine
    spec_type = VectorEngineSpec
    supported_executables = (VeKernel,)
    exports = {"VectorEngine": VectorEngine, "VectorEngineSpec": VectorEngineSpec}

    def package(self, packageable: Packageable) -> Executable:
        return package_kernel(packageable)

    def open(self, sink: StatusSink, settings: BackendSettings) -> ExecutorBackend[VectorEngine]:
        from xmanager.executors.vector_engine.backend import VectorEngineBackend

        return VectorEngineBackend(sink, settings)


plugin = VectorEnginePlugin()

__all__ = [
    "VeKernelExecutable", "VectorEngine", "VectorEnginePlugin", "VectorEngineSpec", "not_compiled", "plugin",
    "resolve_backend",
]
