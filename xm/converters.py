"""Typed attrs converters for collection fields.

With ``converter=tuple`` (or ``list``, ``dict``) mypy's attrs plugin cannot tell what ``__init__``
accepts and shows ``Iterable[_T_co]``; a field names one of these instead, and type checkers see
what it takes. Each converts as the built-in does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def str_list(values: Iterable[str]) -> list[str]:
    return list(values)


def str_dict(values: Mapping[str, str]) -> dict[str, str]:
    return dict(values)


def any_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    return dict(values)
