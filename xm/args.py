"""Command-line arguments as an ordered collection of positionals and ``--name=value`` keywords.

A list gives positional arguments, a mapping gives keywords, and merging overrides an existing
keyword *where it stands*. ``to_list(escaper)`` renders tokens: ``True`` -> ``--k``, ``False`` ->
``--nok``, ``None`` -> left out, a flat list or tuple -> the keyword repeated, anything else
through ``escaper`` (by default quoted for a POSIX shell; backends that pass argv use
``utils.ARGV_ESCAPER`` or :func:`utils.env_expanding_escaper`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import attrs
from xmanager.xm.utils import ARG_ESCAPER, ShellSafeArg, trivial_kwargs_joiner

#: ``(None, value)`` is a positional argument; ``(name, value)`` a keyword.
_Item = tuple[Optional[str], Any]


def _is_flat_sequence(value: Any) -> bool:
    return type(value) in (list, tuple) and not any(type(item) in (list, tuple) for item in value)


@attrs.define(eq=False, repr=False)
class SequentialArgs:
    """Ordered positional and keyword arguments.

    A keyword given again replaces the earlier value in its place, so
    ``merge_args({'a': 1, 'b': 2}, {'a': 3})`` renders ``--a=3 --b=2``. Build with
    :meth:`from_collection` or :func:`merge_args`; instances are treated as values (methods
    return new ones).
    """

    # The init parameters keep the underscores, so that structure tools (dm-tree) can rebuild one.
    _items: list[_Item] = attrs.field(factory=list, alias="_items")
    _keywords: dict[str, int] = attrs.field(factory=dict, alias="_keywords")  # Keyword name -> index in _items.

    @classmethod
    def from_collection(cls, collection: Optional[UserArgs]) -> SequentialArgs:
        """Args from a list (positionals), a mapping (keywords), another SequentialArgs, or None."""
        result = cls()
        if collection is not None:
            result._ingest(collection)
        return result

    def _ingest(self, collection: UserArgs) -> None:
        if isinstance(collection, str):
            raise ValueError(
                f"Tried to construct xm.SequentialArgs from string: {collection!r}. "
                f"Wrap it in a list: [{collection!r}] to make it a single argument."
            )
        if isinstance(collection, SequentialArgs):
            for key, value in collection._items:
                self._put(key, value)
        elif isinstance(collection, Mapping):
            for key, value in collection.items():
                self._put(str(key), value)
        elif isinstance(collection, Sequence):
            for value in collection:
                self._put(None, value)
        else:
            raise TypeError(f"args must be a list, a mapping or xm.SequentialArgs, got {collection!r}")

    def _put(self, key: Optional[str], value: Any) -> None:
        if key is None:
            self._items.append((None, value))
        elif key in self._keywords:
            self._items[self._keywords[key]] = (key, value)
        else:
            self._keywords[key] = len(self._items)
            self._items.append((key, value))

    def _mapped(self, change: Callable[[Optional[str], Any], Optional[_Item]]) -> SequentialArgs:
        result = SequentialArgs()
        for key, value in self._items:
            item = change(key, value)
            if item is not None:
                result._put(*item)
        return result

    def rewrite_args(self, rewrite: Callable[[str], str]) -> SequentialArgs:
        """A copy with ``rewrite`` applied to every string value (positional or keyword)."""
        return self._mapped(lambda key, value: (key, rewrite(value) if isinstance(value, str) else value))

    def remove_args(self, removed_args: str) -> SequentialArgs:
        """A copy without the keyword ``removed_args`` and without positionals equal to that string."""

        def keep(key: Optional[str], value: Any) -> Optional[_Item]:
            removed = key == removed_args if key is not None else isinstance(value, str) and value == removed_args
            return None if removed else (key, value)

        return self._mapped(keep)

    def to_list(
        self,
        escaper: Callable[[Any], str] = ARG_ESCAPER,
        kwargs_joiner: Callable[[str, str], str] = trivial_kwargs_joiner,
    ) -> list[str]:
        """The tokens of a command line; each value goes through ``escaper``."""
        tokens: list[str] = []
        for key, value in self._items:
            if key is None:
                tokens.append(escaper(value))
            elif value is None:
                _warn_none(key)
            elif isinstance(value, bool):
                tokens.append(escaper(f"--{key}" if value else f"--no{key}"))
            elif _is_flat_sequence(value):
                tokens.extend(kwargs_joiner(escaper(f"--{key}"), escaper(item)) for item in value)
            else:
                tokens.append(kwargs_joiner(escaper(f"--{key}"), escaper(value)))
        return tokens

    def to_dict(self, kwargs_only: bool = False) -> dict[str, Any]:
        """Keywords by name; unless ``kwargs_only``, also each positional as ``{text: True}``."""
        out: dict[str, Any] = {}
        for key, value in self._items:
            if key is not None:
                out[key] = value
            elif not kwargs_only:
                out[value.arg if isinstance(value, ShellSafeArg) else str(value)] = True
        return out

    def to_indexed_dict(self) -> dict[str, Any]:
        """Keywords by name and positionals under their index as a string (``'0'``, ``'1'``, ...).

        What call-style executables (Python callables, VE kernels) bind: a digit key marks a
        positional argument, which they refuse.
        """
        return {str(index) if key is None else key: value for index, (key, value) in enumerate(self._items)}

    def __iter__(self) -> Iterator[_Item]:
        """``(name, value)`` pairs in order; ``name`` is None for a positional."""
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequentialArgs) and other._items == self._items

    __hash__ = None  # type: ignore[assignment] - mutable while being built.

    def __repr__(self) -> str:
        return f"[{', '.join(self.to_list(repr))}]"


_warned_none: set[str] = set()


def _warn_none(key: str) -> None:
    if key not in _warned_none:
        _warned_none.add(key)
        warnings.warn(
            f"argument --{key} is None and is left out; pass the string 'None' to give that value",
            stacklevel=3,
        )


UserArgs = Union[Mapping[Any, Any], Sequence[Any], SequentialArgs]


def merge_args(*operands: Optional[UserArgs]) -> SequentialArgs:
    """Merges argument collections left to right into one :class:`SequentialArgs`."""
    result = SequentialArgs()
    for operand in operands:
        if operand is not None:
            result._ingest(operand)
    return result


__all__ = ["SequentialArgs", "ShellSafeArg", "UserArgs", "merge_args"]
