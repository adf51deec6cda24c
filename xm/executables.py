"""Executable specs: what to run, independent of where.

Executor plugins say which of these they can package; an unsupported pair is an error
that lists the supported ones.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Optional, Union

import attrs
from xmanager.xm.converters import str_list, str_tuple
from xmanager.xm.job_blocks import ExecutableSpec
from xmanager.xm.utils import resolve_path_relative_to_launcher


def name_from_path(path: str) -> str:
    """A job name from a path: its last component with non-word characters replaced by ``_``."""
    return re.sub(r"\W", "_", os.path.basename(path.rstrip(os.sep)))


class BinaryDependency(abc.ABC):  # noqa: B024 - a marker base, as in XManager.
    """A resource packaged with a ``Binary`` / ``BazelBinary``; backends define concrete ones.

    Subclasses must be immutable, comparable and hashable (specs compare by value).
    """


def _dependency_list(values: Iterable[BinaryDependency]) -> list[BinaryDependency]:
    return list(values)  # A typed converter, as in xmanager.xm.converters.


class ModuleName(NamedTuple):
    """A Python module run as ``python -m module_name`` (a PythonContainer entrypoint)."""

    module_name: str


class CommandList(NamedTuple):
    """Shell command lines: a PythonContainer entrypoint, or (ours) an executable of its own.

    Kept as given, as in XManager. Run as an executable, the lines run in order and the job's
    args are appended to the last as ``"$@"``: passed to the shell as positional parameters,
    never spliced into the text, so they arrive literally. Packaging refuses an empty list.
    """

    commands: Sequence[str]  # XManager says list[str]; a tuple is kept as given too.

    @property
    def name(self) -> str:
        """Ours: the first word of the first line as a name (``commands`` when there is none)."""
        first = [self.commands] if isinstance(self.commands, str) else list(self.commands)
        words = str(first[0]).split() if first else []
        return name_from_path(words[0]) if words else "commands"


ExecutableSpec.register(CommandList)


def command_lines(command_list: CommandList) -> list[str]:
    """The lines to run: ``commands`` as a list, a single string being one line.

    Raises ValueError when there is none (checked when packaging, as the spec keeps what it is given).
    """
    commands = command_list.commands
    lines = [commands] if isinstance(commands, str) else [str(line) for line in commands]
    if not lines:
        raise ValueError("CommandList needs at least one command")
    return lines


def _path_or_empty(value: Optional[str]) -> str:
    return value or ""


# The specs below are, as XManager's, mutable, compared and ordered by value, unhashable and keep a
# __dict__; fields are converted when the spec is built, not when assigned later.
@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class Dockerfile(ExecutableSpec):
    """``docker build`` of the context folder ``path`` with the file ``dockerfile``.

    Relative paths resolve against the launch script's folder when the spec is built
    (``utils.resolve_path_relative_to_launcher``); ``dockerfile`` defaults to ``<path>/Dockerfile``.
    """

    path: str = attrs.field(converter=resolve_path_relative_to_launcher, default=".")
    # Always a path once built; None (the default) stands for <path>/Dockerfile.
    dockerfile: str = attrs.field(converter=_path_or_empty, default=None)

    def __attrs_post_init__(self) -> None:
        self.dockerfile = resolve_path_relative_to_launcher(self.dockerfile or os.path.join(self.path, "Dockerfile"))

    @property
    def name(self) -> str:
        return name_from_path(self.path)


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class PythonContainer(ExecutableSpec):
    """A folder of Python code built into a container image (executors with images).

    ``path`` resolves against the launch script's folder when the spec is built. With
    ``docker_instructions`` the image is built from those lines (after ``FROM base_image``), which
    must copy the folder themselves; ``use_deep_module`` runs the module from the folder's parent.
    """

    entrypoint: Union[ModuleName, CommandList]
    path: str = attrs.field(converter=resolve_path_relative_to_launcher, default=".")
    base_image: Optional[str] = None
    docker_instructions: Optional[list[str]] = None
    use_deep_module: bool = False

    @property
    def name(self) -> str:
        return name_from_path(self.path)


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class Container(ExecutableSpec):
    """A prebuilt image: a local ``.tar`` file or a registry reference."""

    image_path: str

    @property
    def name(self) -> str:
        return name_from_path(self.image_path)


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class Binary(ExecutableSpec):
    """A prebuilt executable file, with data ``dependencies`` packaged beside it."""

    path: str
    dependencies: list[BinaryDependency] = attrs.field(converter=_dependency_list, factory=list)

    @property
    def name(self) -> str:
        return name_from_path(self.path)


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class BazelContainer(ExecutableSpec):
    """A Bazel target producing a ``.tar`` image."""

    label: str
    bazel_args: list[str] = attrs.field(converter=str_list, factory=list)

    @property
    def name(self) -> str:
        return name_from_path(self.label)


@attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
class BazelBinary(ExecutableSpec):
    """A Bazel target producing a self-contained binary."""

    label: str
    dependencies: list[BinaryDependency] = attrs.field(converter=_dependency_list, factory=list)
    bazel_args: list[str] = attrs.field(converter=str_list, factory=list)

    @property
    def name(self) -> str:
        return name_from_path(self.label)


@attrs.frozen
class PythonCallable(ExecutableSpec):
    """A picklable Python function, called in a worker process with the job's args as kwargs.

    The function's returned mapping (if any) becomes the unit's result. Positional job
    args are not allowed: every argument must be named.
    """

    function: Callable[..., Any]
    name_override: Optional[str] = attrs.field(default=None, alias="name")

    def __attrs_post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"PythonCallable needs a callable, got {type(self.function).__name__}")

    @property
    def name(self) -> str:
        if self.name_override:
            return self.name_override
        return name_from_path(getattr(self.function, "__name__", "function"))


# ---- VE offload kernels ----------------------------------------------------------------------------
#: py-veo 1.5.0's scalar type strings; any type ending in ``*`` is a pointer.
VE_SCALAR_TYPES = frozenset(
    {
        "char", "short", "int", "long", "unsigned char", "unsigned short", "unsigned int", "unsigned long",
        "int32_t", "int64_t", "uint32_t", "uint64_t", "float", "double",
    }
)
VE_LANGUAGES = ("c", "c++", "fortran")
_C_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _normalize_ve_type(text: str, where: str, *, allow_void: bool) -> str:
    """A py-veo type string with its spacing normalised (``double*`` -> ``double *``); errors name ``where``."""
    if not isinstance(text, str):
        raise TypeError(f"{where}: a type must be a string such as 'double *', got {type(text).__name__}")
    stars = text.count("*")
    base = " ".join(text.replace("*", " ").split())
    if stars:
        if not base or text.rstrip()[-1] != "*":
            raise ValueError(f"{where}: {text!r} is not a C pointer type such as 'double *'")
        return f"{base} " + "*" * stars
    if base in VE_SCALAR_TYPES or (allow_void and base == "void"):
        return base
    known = ", ".join(sorted(VE_SCALAR_TYPES))
    raise ValueError(f"{where}: unknown type {text.strip()!r}; use one of {known}, or a pointer type ending in '*'")


def _parse_ve_args(value: Sequence[str] | str) -> tuple[tuple[str, str], ...]:
    """``("x: double *", "n: int")`` -> ``(("x", "double *"), ("n", "int"))``, checked."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    parsed: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        where = f"VeKernel(args[{index}]={item!r})"
        if isinstance(item, tuple) and len(item) == 2:
            name, type_text = item
        elif isinstance(item, str) and ":" in item:
            name, type_text = item.split(":", 1)
        else:
            raise ValueError(f"{where}: declare each argument as 'name: type', e.g. 'x: double *'")
        name = str(name).strip()
        if not _C_NAME.match(name):
            raise ValueError(f"{where}: {name!r} is not a valid argument name")
        if any(name == seen for seen, _ in parsed):
            raise ValueError(f"{where}: argument {name!r} is declared twice")
        parsed.append((name, _normalize_ve_type(type_text, where, allow_void=False)))
    return tuple(parsed)


def _sources_tuple(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, tuple) and all(isinstance(item, tuple) and len(item) == 2 for item in value):
        value = dict(value)  # Already converted (attrs.evolve, the default).
    if not isinstance(value, Mapping):
        raise TypeError(f"VeKernel(sources=...): a mapping of label -> source text or path, got {type(value).__name__}")
    items = []
    for label, text in value.items():
        if not isinstance(label, str) or not _C_NAME.match(label):
            raise ValueError(f"VeKernel(sources=...): label {label!r} must be a plain name (it names the .so)")
        if not isinstance(text, str):
            raise TypeError(f"VeKernel(sources[{label!r}]): source text or a path, got {type(text).__name__}")
        items.append((label, text))
    return tuple(items)


@attrs.frozen
class VeKernel(ExecutableSpec):
    """A C/C++/Fortran function offloaded to a Vector Engine (or run by the host emulation).

    Give either ``sources`` (label -> source text, or a path to a source file) to compile
    once at packaging, or ``library``, a prebuilt shared library. ``entry`` is the symbol to
    call; ``args`` declares its parameters in order as ``"name: type"`` strings (py-veo's
    type strings: ``int``, ``long``, ``double``, ``float``, ``uint64_t``, ``double *``, ...),
    so a job binds its args by name. ``ret_type`` ``"void"`` means no return value.
    ``ve_flags`` go to ``ncc``/``nc++``/``nfort`` and ``host_flags`` to gcc (``None``: the
    builder's defaults), so NEC-only flags never reach the host compiler.
    """

    entry: str
    args: tuple[tuple[str, str], ...] = attrs.field(converter=_parse_ve_args)
    sources: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_sources_tuple)
    library: Optional[str] = None
    language: str = "c"
    ret_type: str = "int"
    ve_flags: Optional[str] = None
    host_flags: Optional[str] = None
    libs: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    name_override: Optional[str] = attrs.field(default=None, alias="name")

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.entry, str) or not _C_NAME.match(self.entry):
            raise ValueError(f"VeKernel(entry={self.entry!r}): not a C symbol name")
        if bool(self.sources) == (self.library is not None):
            raise ValueError("VeKernel: give exactly one of sources= (to compile) or library= (a prebuilt .so)")
        if self.language not in VE_LANGUAGES:
            raise ValueError(f"VeKernel(language={self.language!r}): use one of {', '.join(VE_LANGUAGES)}")
        object.__setattr__(self, "ret_type", _normalize_ve_type(self.ret_type, "VeKernel(ret_type)", allow_void=True))

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.args)

    @property
    def arg_types(self) -> tuple[str, ...]:
        return tuple(type_text for _, type_text in self.args)

    @property
    def name(self) -> str:
        return self.name_override or self.entry

# ---- an array argument of a VeKernel ---------------------------------------------------------------
# A pointer parameter of a VeKernel binds to a VeBuffer; the executor stages a private copy per unit
# (the caller's array is never written): "device" is alloc_mem + async write/read around the call,
# "stack" is py-veo's OnStack (keep it small: the VE stack is about 2 MB). out/inout buffers come
# back as the unit's results under the argument's name. numpy is used through the array's methods.
VE_BUFFER_INTENTS = ("in", "out", "inout")
VE_BUFFER_PLACEMENTS = ("device", "stack")


def _check_ve_array(instance: Any, attribute: Any, value: Any) -> None:
    if not all(hasattr(value, name) for name in ("dtype", "nbytes", "shape", "copy")):
        raise TypeError(f"VeBuffer(array=...): a numpy array is needed, got {type(value).__name__}")
    if value.dtype.hasobject:
        raise TypeError("VeBuffer(array=...): an array of Python objects cannot be copied to a VE")


def _check_ve_choice(choices: tuple[str, ...]) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"VeBuffer({attribute.name}={value!r}): use one of {', '.join(repr(c) for c in choices)}")

    return check


@attrs.frozen(eq=False, repr=False)
class VeBuffer:
    """An array argument of a VE kernel, with its data direction and where it lives during the call."""

    array: Any = attrs.field(validator=_check_ve_array)
    intent: str = attrs.field(default="in", validator=_check_ve_choice(VE_BUFFER_INTENTS))
    placement: str = attrs.field(default="device", validator=_check_ve_choice(VE_BUFFER_PLACEMENTS))

    @property
    def copies_in(self) -> bool:
        return self.intent in ("in", "inout")

    @property
    def copies_out(self) -> bool:
        return self.intent in ("out", "inout")

    def staging_copy(self) -> Any:
        """A private C-contiguous copy for one unit's call (zeros for ``out``: the buffer starts zeroed)."""
        import numpy

        if self.intent == "out":
            return numpy.zeros(self.array.shape, dtype=self.array.dtype)
        return numpy.ascontiguousarray(self.array).copy()

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.array.shape) or "scalar"
        return f"VeBuffer({self.array.dtype}[{shape}], intent={self.intent!r}, placement={self.placement!r})"

    __str__ = __repr__
