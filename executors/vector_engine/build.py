"""Builds kernel shared libraries from C, C++ and Fortran sources, cached by content hash.

The commands follow py-veo's ``VeBuild``: ``<compiler> <flags> -c <label>.<ext> -o <label>.o``
per source, then ``<linker> -shared -pthread <link flags> -o <name>.so <objects> <libs>``.
The compiler and default flags depend on the backend: gcc/g++/gfortran for ``host``,
NEC's ncc/nc++/nfort for ``veo``. A build lands in ``<build_dir>/<hash>/<name>.so``,
where the hash covers the sources, languages, flags, libraries and the compilers'
identities, so an unchanged kernel is never rebuilt; builds run in a temporary folder
renamed into place, so concurrent builders of the same kernel are safe.

Example::

    path = build_library({"scale": SOURCE}, language="c", backend="host")
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import attrs

LANGUAGES = ("c", "c++", "fortran")
BUILD_BACKENDS = ("host", "veo")
_EXTENSIONS = {"c": ".c", "c++": ".cpp", "fortran": ".f90"}
_KNOWN_EXTENSIONS = {
    ".c": "c",
    ".cpp": "c++",
    ".cc": "c++",
    ".cxx": "c++",
    ".f": "fortran",
    ".f90": "fortran",
    ".f95": "fortran",
    ".f03": "fortran",
    ".F90": "fortran",
    ".F": "fortran",
}
COMPILERS = {
    "host": {"c": "gcc", "c++": "g++", "fortran": "gfortran"},
    "veo": {"c": "/opt/nec/ve/bin/ncc", "c++": "/opt/nec/ve/bin/nc++", "fortran": "/opt/nec/ve/bin/nfort"},
}
#: Host flags drop ncc-only options; -Wno-unknown-pragmas makes gcc/g++ ignore ``#pragma _NEC ...`` quietly.
DEFAULT_FLAGS = {
    "host": {
        "c": "-O2 -fPIC -pthread -Wno-unknown-pragmas",
        "c++": "-O2 -fPIC -pthread -Wno-unknown-pragmas",
        "fortran": "-O2 -fPIC -pthread",
    },
    "veo": {"c": "-O2 -fpic -pthread", "c++": "-O2 -fpic -pthread", "fortran": "-O2 -fpic -pthread"},
}
SO_FLAGS = "-shared -pthread"
BUILD_DIR_ENV = "XM_VE_BUILD_DIR"
_LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


class BuildError(RuntimeError):
    """A kernel failed to compile or link; ``str()`` shows the compiler's message and the offending source lines."""

    def __init__(self, message: str, compiler_output: str = "", command: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.compiler_output = compiler_output
        self.command = tuple(command)


@attrs.frozen
class SourceUnit:
    """One source file of a build: its label (file stem), language, text and optional overrides."""

    label: str
    language: str
    text: str
    flags: Optional[str] = None
    compiler: Optional[str] = None

    @property
    def filename(self) -> str:
        stem, ext = os.path.splitext(self.label)
        return self.label if _KNOWN_EXTENSIONS.get(ext) == self.language else self.label + _EXTENSIONS[self.language]


def default_build_dir() -> str:
    """``$XM_VE_BUILD_DIR``, else ``$XDG_CACHE_HOME/xmanager/ve-build`` (``~/.cache/...``)."""
    explicit = os.environ.get(BUILD_DIR_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "xmanager", "ve-build")


@functools.cache
def _compiler_identity(path: str) -> str:
    """The resolved compiler and its first ``--version`` line, so a compiler upgrade changes the hash."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return f"{path} {out.splitlines()[0] if out else ''}"


def _resolve(program: str, backend: str, language: str) -> str:
    found = shutil.which(program)
    if found is None:
        hint = " (the NEC SDK is needed to build VE kernels)" if backend == "veo" else ""
        raise BuildError(f"{language} compiler {program!r} for backend {backend!r} not found{hint}")
    return found


def _split_flags(flags: Union[None, str, Sequence[str]], what: str) -> list[str]:
    if flags is None:
        return []
    if isinstance(flags, str):
        return shlex.split(flags)
    if isinstance(flags, Sequence) and all(isinstance(f, str) for f in flags):
        return list(flags)
    raise ValueError(f"{what}: expected a string or a list of strings, got {flags!r}")


def _check_language(language: Any) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    return language


def _check_backend(backend: Any) -> str:
    if backend not in BUILD_BACKENDS:
        raise ValueError(f"backend must be one of {BUILD_BACKENDS}, got {backend!r}")
    return backend


def _source_text(label: str, value: Any) -> str:
    """The source text; a one-line value naming an existing file is read from that file."""
    if not isinstance(value, str):
        raise ValueError(f"sources[{label!r}]: expected source text (or a file path), got {type(value).__name__}")
    if "\n" not in value and os.path.isfile(value):
        with open(value, encoding="utf-8") as handle:
            return handle.read()
    if not value.strip():
        raise ValueError(f"sources[{label!r}]: the source is empty")
    return value


def build_units(
    units: Sequence[SourceUnit],
    backend: str = "host",
    link_flags: Union[None, str, Sequence[str]] = None,
    libs: Sequence[str] = (),
    build_dir: Optional[str] = None,
    linker: Optional[str] = None,
    name: Optional[str] = None,
) -> str:
    """Compiles and links ``units`` into one shared library; returns its absolute path (cached)."""
    _check_backend(backend)
    if not units:
        raise ValueError("sources: at least one source is needed")
    if isinstance(libs, str) or not all(isinstance(lib, str) for lib in libs):
        raise ValueError(f"libs: expected a list of strings like ['-lm'], got {libs!r}")
    seen: set[str] = set()
    for unit in units:
        if not isinstance(unit.label, str) or not _LABEL.match(unit.label):
            raise ValueError(f"sources: label {unit.label!r} must be a plain file name ([A-Za-z0-9_.+-])")
        if unit.filename in seen:
            raise ValueError(f"sources: two sources would be written to {unit.filename!r}")
        seen.add(unit.filename)
    name = name or os.path.splitext(units[0].label)[0]
    if not _LABEL.match(name):
        raise ValueError(f"name: {name!r} must be a plain file name")

    commands = []
    for unit in units:
        compiler = _resolve(unit.compiler or COMPILERS[backend][unit.language], backend, unit.language)
        flags = _split_flags(unit.flags if unit.flags is not None else DEFAULT_FLAGS[backend][unit.language], "flags")
        commands.append((unit, compiler, flags))
    languages = {unit.language for unit in units}
    default_linker = "fortran" if "fortran" in languages else "c++" if "c++" in languages else "c"
    link = _resolve(linker or COMPILERS[backend][default_linker], backend, default_linker)
    link_args = _split_flags(SO_FLAGS, "so flags") + _split_flags(link_flags, "link flags")

    key = hashlib.sha256(
        json.dumps(
            {
                "units": [[u.filename, u.language, u.text, f, _compiler_identity(c)] for u, c, f in commands],
                "link": [_compiler_identity(link), link_args, list(libs), name],
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:24]
    root = os.path.abspath(build_dir or default_build_dir())
    final_dir = os.path.join(root, key)
    target = os.path.join(final_dir, name + ".so")
    if os.path.isfile(target):
        return target

    os.makedirs(root, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".build-{key}-", dir=root)
    try:
        objects = []
        for unit, compiler, flags in commands:
            with open(os.path.join(work, unit.filename), "w", encoding="utf-8") as handle:
                handle.write(unit.text)
            obj = os.path.splitext(unit.filename)[0] + ".o"
            _run([compiler, *flags, "-c", unit.filename, "-o", obj], work, units, "compile")
            objects.append(obj)
        _run([link, *link_args, "-o", name + ".so", *objects, *libs], work, units, "link")
        for obj in objects:
            os.remove(os.path.join(work, obj))
        try:
            os.rename(work, final_dir)
        except OSError:  # Another builder finished the same kernel first: theirs is identical.
            if not os.path.isfile(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def build_library(
    sources: Mapping[str, str],
    language: str = "c",
    backend: str = "host",
    flags: Union[None, str, Sequence[str]] = None,
    libs: Sequence[str] = (),
    build_dir: Optional[str] = None,
) -> str:
    """Builds ``sources`` (label -> source text, or a file path) into a shared library; returns its absolute path.

    ``flags`` replace the backend's default compile flags; ``libs`` go at the end of the
    link line (``["-lm"]``). The library is named after the first label.
    """
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError("sources: expected a non-empty mapping of label -> source text")
    _check_language(language)
    _check_backend(backend)
    if isinstance(libs, str):
        raise ValueError(f"libs: expected a list of strings like ['-lm'], got {libs!r}")
    flag_text = None if flags is None else shlex.join(_split_flags(flags, "flags"))
    units = [SourceUnit(label, language, _source_text(label, text), flag_text) for label, text in sources.items()]
    return build_units(units, backend=backend, libs=tuple(libs), build_dir=build_dir)


def _run(command: list[str], cwd: str, units: Sequence[SourceUnit], step: str) -> None:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    output = (proc.stderr + proc.stdout).strip()
    located = _source_lines(output, units)
    message = f"{step} failed: {shlex.join(command)}\n{output}"
    if located:
        message += "\noffending source lines:\n" + "\n".join(located)
    raise BuildError(message, output, command)


def _source_lines(output: str, units: Sequence[SourceUnit]) -> list[str]:
    """``file:line: text`` for each error location the compiler names in one of our sources."""
    texts = {unit.filename: unit.text.splitlines() for unit in units}
    lines = output.splitlines()
    found: list[str] = []
    for index, line in enumerate(lines):
        match = re.match(r"^(?:\./)?([^:\s]+):(\d+):", line)
        if not match or match.group(1) not in texts:
            continue
        rest = line[match.end() :].lower()
        is_error = "error" in rest or any(
            later.lstrip().lower().startswith(("error", "fatal error")) for later in lines[index + 1 : index + 6]
        )
        number = int(match.group(2))
        source = texts[match.group(1)]
        entry = f"  {match.group(1)}:{number}: {source[number - 1].strip() if 0 < number <= len(source) else ''}"
        if is_error and entry not in found:
            found.append(entry)
    return found[:10]


class VeBuild:
    """py-veo's ``VeBuild`` surface over :func:`build_units` (results cached by content hash).

    ``set_c_src/set_cpp_src/set_ftn_src(label, content, flags=None, compiler=None)`` register
    sources; ``build_so(label=None, flags=None, libs=(), linker=None)`` returns the ``.so`` path.
    """

    def __init__(self, backend: str = "host", build_dir: Optional[str] = None) -> None:
        self.backend = _check_backend(backend)
        self.build_dir = build_dir
        self._units: dict[str, SourceUnit] = {}
        self._built: list[str] = []

    def _set(self, language: str, label: str, content: str, flags: Optional[str], compiler: Optional[str]) -> None:
        if flags is not None and not isinstance(flags, str):
            raise ValueError(f"{label}: flags must be a string, got {flags!r}")
        self._units[label] = SourceUnit(label, language, _source_text(label, content), flags, compiler)

    def set_c_src(self, label: str, content: str, flags: Optional[str] = None, compiler: Optional[str] = None) -> None:
        self._set("c", label, content, flags, compiler)

    def set_cpp_src(
        self, label: str, content: str, flags: Optional[str] = None, compiler: Optional[str] = None
    ) -> None:
        self._set("c++", label, content, flags, compiler)

    def set_ftn_src(
        self, label: str, content: str, flags: Optional[str] = None, compiler: Optional[str] = None
    ) -> None:
        self._set("fortran", label, content, flags, compiler)

    def set_build_dir(self, build_dir: str) -> None:
        self.build_dir = build_dir

    def build_so(
        self,
        label: Optional[str] = None,
        flags: Optional[str] = None,
        libs: Sequence[str] = (),
        linker: Optional[str] = None,
        verbose: bool = False,
    ) -> str:
        """Links every registered source into ``<label>.so`` (default: the first label); returns its path."""
        path = build_units(
            list(self._units.values()),
            backend=self.backend,
            link_flags=flags,
            libs=tuple(libs),
            build_dir=self.build_dir,
            linker=linker,
            name=label,
        )
        if verbose:
            print(f"VeBuild: {path}")
        self._built.append(path)
        return path

    def clean(self) -> None:
        """Nothing to do: sources and objects never land in the working directory."""

    def clear(self) -> None:
        self._units.clear()

    def realclean(self) -> None:
        """Removes the libraries this builder produced (their cache folders)."""
        for path in self._built:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        self._built.clear()
