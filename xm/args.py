"""Command-line arguments as an ordered collection of positionals and ``--name=value`` keywords.

A list gives positional arguments, a mapping gives keywords, and merging overrides an existing
keyword *where it stands*. ``to_list(escaper)`` renders tokens: ``True`` -> ``--k``, ``False`` ->
``--nok``, ``None`` -> left out (with a warning on stdout), a flat list or tuple -> the keyword
repeated, anything else through ``escaper`` (by default quoted for a POSIX shell; backends that
pass argv use ``utils.ARGV_ESCAPER`` or :func:`utils.env_expanding_escaper`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

import attrs
from xmanager.xm.utils import ARG_ESCAPER, ShellSafeArg, trivial_kwargs_joiner


@functools.cache
def print_none_warning(key: str) -> None:
    """Says once per keyword, on stdout, that ``key=None`` leaves the flag out."""
    print(
        f"WARNING: Setting `{key}=None` will exclude the flag. To pass the "
        f'actual value, pass the string literal `{key}="None"` instead'
    )


def _is_flat_sequence(value: Any) -> bool:
    return type(value) in (list, tuple) and not any(type(item) in (list, tuple) for item in value)


@attrs.define(slots=False, order=True, init=False, on_setattr=attrs.setters.NO_OP)
class SequentialArgs:
    """Ordered positional and keyword arguments.

    A keyword given again replaces the earlier value in its place, so
    ``merge_args({'a': 1, 'b': 2}, {'a': 3})`` renders ``--a=3 --b=2``. Build with
    :meth:`from_collection` or :func:`merge_args`; methods return new instances.

    ``_items`` lists the arguments in order (a positional holds its value, a keyword its name);
    ``_kwvalues`` maps keyword names to their values.
    """

    # Like XManager's data classes: mutable, compared and ordered by value, unhashable, with a __dict__.
    @attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
    class _RegularItem:
        value: Any

    @attrs.define(slots=False, order=True, on_setattr=attrs.setters.NO_OP)
    class _KeywordItem:
        name: str

    _items: list[Union[_RegularItem, _KeywordItem]] = attrs.field(factory=list)
    _kwvalues: dict[str, Any] = attrs.field(factory=dict)

    def __init__(
        self,
        _items: Optional[list[Union[_RegularItem, _KeywordItem]]] = None,
        _kwvalues: Optional[dict[str, Any]] = None,
    ) -> None:
        self._items = _items if _items is not None else []
        self._kwvalues = _kwvalues if _kwvalues is not None else {}

    def _add_positional(self, value: Any) -> None:
        self._items.append(SequentialArgs._RegularItem(value))

    def _add_keyword(self, name: str, value: Any) -> None:
        if name not in self._kwvalues:
            self._items.append(SequentialArgs._KeywordItem(name))
        self._kwvalues[name] = value

    def _pairs(self) -> list[tuple[Optional[str], Any]]:
        """``(None, value)`` for each positional and ``(name, value)`` for each keyword, in order."""
        return [
            (None, item.value) if isinstance(item, SequentialArgs._RegularItem)
            else (item.name, self._kwvalues[item.name])
            for item in self._items
        ]

    def _extend(self, other: SequentialArgs) -> None:
        for key, value in other._pairs():
            if key is None:
                self._add_positional(value)
            else:
                self._add_keyword(key, value)

    @staticmethod
    def from_collection(collection: Optional[UserArgs]) -> SequentialArgs:
        """Args from a list (positionals), a mapping (keywords), another SequentialArgs, or None."""
        result = SequentialArgs()
        if collection is None:
            return result
        if isinstance(collection, str):
            raise ValueError(
                f"Tried to construct xm.SequentialArgs from string: {collection!r}. "
                f"Wrap it in a list: [{collection!r}] to make it a single argument."
            )
        if isinstance(collection, SequentialArgs):
            result._extend(collection)
        elif isinstance(collection, Mapping):
            for key, value in collection.items():
                result._add_keyword(str(key), value)
        elif isinstance(collection, Sequence):
            for value in collection:
                result._add_positional(value)
        else:
            raise TypeError(f"Unsupported collection type: {collection!r}")
        return result

    def rewrite_args(self, rewrite: Callable[[str], str]) -> SequentialArgs:
        """A copy with ``rewrite`` applied to every string value (positional or keyword)."""
        result = SequentialArgs()
        for key, value in self._pairs():
            value = rewrite(value) if isinstance(value, str) else value
            if key is None:
                result._add_positional(value)
            else:
                result._add_keyword(key, value)
        return result

    def remove_args(self, removed_args: str) -> SequentialArgs:
        """A copy without the keyword ``removed_args`` and without positionals equal to that string."""
        result = SequentialArgs()
        for key, value in self._pairs():
            if key is None:
                if not (isinstance(value, str) and value == removed_args):
                    result._add_positional(value)
            elif key != removed_args:
                result._add_keyword(key, value)
        return result

    def to_list(
        self,
        escaper: Callable[[Any], str] = ARG_ESCAPER,
        kwargs_joiner: Callable[[str, str], str] = trivial_kwargs_joiner,
    ) -> list[str]:
        """The tokens of a command line; each value goes through ``escaper``."""
        tokens: list[str] = []
        for key, value in self._pairs():
            if key is None:
                tokens.append(escaper(value))
            elif value is None:
                print_none_warning(key)
            elif isinstance(value, bool):
                tokens.append(escaper(f"--{key}" if value else f"--no{key}"))
            elif _is_flat_sequence(value):
                tokens.extend(kwargs_joiner(escaper(f"--{key}"), escaper(item)) for item in value)
            else:
                tokens.append(kwargs_joiner(escaper(f"--{key}"), escaper(value)))
        return tokens

    def to_dict(self, kwargs_only: bool = False) -> dict[str, Any]:
        """Keywords by name; unless ``kwargs_only``, also each positional as ``{text: True}``.

        With ``kwargs_only`` the keyword mapping itself is returned, not a copy.
        """
        if kwargs_only:
            return self._kwvalues
        out: dict[str, Any] = {}
        for key, value in self._pairs():
            if key is not None:
                out[key] = value
            else:
                out[value.arg if isinstance(value, ShellSafeArg) else str(value)] = True
        return out

    def to_indexed_dict(self) -> dict[str, Any]:
        """Keywords by name and positionals under their index as a string (``'0'``, ``'1'``, ...).

        What call-style executables (Python callables, VE kernels) bind: a digit key marks a
        positional argument, which they refuse.
        """
        return {str(index) if key is None else key: value for index, (key, value) in enumerate(self._pairs())}


UserArgs = Union[Mapping[Any, Any], Sequence[Any], SequentialArgs]


def merge_args(*operands: UserArgs) -> SequentialArgs:
    """Merges argument collections left to right into one :class:`SequentialArgs`."""
    result = SequentialArgs()
    for operand in operands:
        result._extend(operand if isinstance(operand, SequentialArgs) else SequentialArgs.from_collection(operand))
    return result


__all__ = ["SequentialArgs", "ShellSafeArg", "UserArgs", "merge_args", "print_none_warning"]
