"""Command-line arguments as an ordered collection, rendered to argv without a shell.

XManager semantics: a list gives positional arguments, a mapping gives ``--key=value``
flags, and merging overrides an existing keyword *in place* (its position is kept).
Rendering: ``True`` -> ``--k``, ``False`` -> ``--nok``, ``None`` -> omitted (with a
warning), a list or tuple -> the flag repeated. Values are never shell-quoted: they
reach the process as argv items, so nothing in them is interpreted.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union

_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


class ShellSafeArg:
    """An argument whose ``$VAR`` / ``${VAR}`` references expand from the job's environment.

    XManager passes such arguments unescaped to a shell. We never use a shell, so the
    expansion is done explicitly, against the environment the job will see.
    """

    __slots__ = ("arg",)

    def __init__(self, arg: str) -> None:
        self.arg = arg

    def expand(self, env: Mapping[str, str]) -> str:
        return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), self.arg)

    def __repr__(self) -> str:
        return f"ShellSafeArg({self.arg!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShellSafeArg) and other.arg == self.arg

    def __hash__(self) -> int:
        return hash(("ShellSafeArg", self.arg))


def _render_value(value: Any, env: Mapping[str, str] | None) -> str:
    if isinstance(value, ShellSafeArg):
        return value.expand(os.environ if env is None else env)
    return str(value)


class SequentialArgs:
    """Ordered positional and keyword arguments.

    A keyword given again replaces the earlier value where it stood, so that
    ``merge_args({'a': 1, 'b': 2}, {'a': 3})`` renders ``--a=3 --b=2``.
    """

    __slots__ = ("_items", "_index")

    def __init__(self) -> None:
        # Each item is (keyword or None for a positional, value).
        self._items: list[tuple[str | None, Any]] = []
        self._index: dict[str, int] = {}

    @classmethod
    def from_collection(cls, collection: UserArgs | None) -> SequentialArgs:
        """Builds args from a list, a mapping, another SequentialArgs, or None."""
        result = cls()
        if collection is not None:
            result.update(collection)
        return result

    def update(self, collection: UserArgs) -> None:
        """Appends positionals and sets keywords (in place when already present)."""
        if isinstance(collection, SequentialArgs):
            for key, value in collection._items:
                self._put(key, value)
        elif isinstance(collection, Mapping):
            for key, value in collection.items():
                if not isinstance(key, str):
                    raise TypeError(f"argument names must be strings, got {key!r}")
                self._put(key, value)
        elif isinstance(collection, (str, bytes)):
            raise ValueError(
                f"args must be a list or a mapping, not a string ({collection!r}); "
                "wrap a single argument in a list"
            )
        elif isinstance(collection, Sequence):
            for value in collection:
                self._items.append((None, value))
        else:
            raise TypeError(f"args must be a list or a mapping, got {type(collection).__name__}")

    def _put(self, key: str | None, value: Any) -> None:
        if key is None:
            self._items.append((None, value))
        elif key in self._index:
            self._items[self._index[key]] = (key, value)
        else:
            self._index[key] = len(self._items)
            self._items.append((key, value))

    def copy(self) -> SequentialArgs:
        result = SequentialArgs()
        result._items = list(self._items)
        result._index = dict(self._index)
        return result

    def to_list(self, env: Mapping[str, str] | None = None) -> list[str]:
        """Renders argv items; ``env`` is what :class:`ShellSafeArg` values expand from."""
        out: list[str] = []
        for key, value in self._items:
            if key is None:
                out.append(_render_value(value, env))
            elif value is True:
                out.append(f"--{key}")
            elif value is False:
                out.append(f"--no{key}")
            elif value is None:
                warnings.warn(f"argument --{key} is None and is left out", stacklevel=2)
            elif isinstance(value, (list, tuple)):
                out.extend(f"--{key}={_render_value(v, env)}" for v in value)
            else:
                out.append(f"--{key}={_render_value(value, env)}")
        return out

    def to_dict(self, kwargs_only: bool = False) -> dict[str, Any]:
        """Keywords by name; positionals under their index as a string unless ``kwargs_only``."""
        out: dict[str, Any] = {}
        for position, (key, value) in enumerate(self._items):
            if key is not None:
                out[key] = value
            elif not kwargs_only:
                out[str(position)] = value
        return out

    def __iter__(self) -> Iterator[tuple[str | None, Any]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequentialArgs) and other._items == self._items

    def __repr__(self) -> str:
        return f"SequentialArgs({self._items!r})"


UserArgs = Union[Mapping[str, Any], Sequence[Any], SequentialArgs]


def merge_args(*operands: UserArgs | None) -> SequentialArgs:
    """Merges argument collections left to right into one :class:`SequentialArgs`."""
    result = SequentialArgs()
    for operand in operands:
        if operand is not None:
            result.update(operand)
    return result
