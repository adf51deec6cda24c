"""Function-call tables in block configs: ``{function_name = "choices", args = ..., params = ..., id = ...}``.

A table with two to four keys, all among ``function_name``, ``args``, ``params`` and ``id``, found as a
value in a block's config (at any depth of tables, not inside lists), is replaced by the result of the
call. The only function is ``choices``: Python's :func:`random.choices`, with ``args`` as positional
arguments (a list) or keyword arguments (a table). Calls with the same ``id``, or the same call without
one, form a group; with ``params = { unique = true }`` no value repeats within a group. Each place a call
appears is drawn separately; draws are made in block order, then key order.
"""

from __future__ import annotations

import json
import random
from typing import Any

from xmanager.xm.study.errors import StudyConfigError
from xmanager.xm.study.ordering import Draws

__all__ = ["CALL_KEYS", "ChoicesFunction", "is_call", "resolve_function_calls"]

CALL_KEYS = frozenset({"function_name", "args", "params", "id"})
UNIQUE_RETRIES = 21  # Draws after the first before a unique draw gives up (as experiment-server).


def is_call(value: Any) -> bool:
    """True if ``value`` is a function-call table."""
    return isinstance(value, dict) and 2 <= len(value) <= 4 and all(key in CALL_KEYS for key in value)


def _unpack_args(args: Any) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(args, list):
        return args, {}
    if isinstance(args, dict):
        return [], args
    raise StudyConfigError(f"`args` should be a list or a table, got {args!r}")


def _unique(params: Any) -> bool:
    if params is None:
        return False
    if not isinstance(params, dict):
        raise StudyConfigError(f"`params` of `choices` should be a dict (a table), got {params!r}")
    if len(params) > 1:
        raise StudyConfigError(f"Function `choices` expected 0 or 1 keys in params, got {len(params)}")
    if params and "unique" not in params:
        raise StudyConfigError(f"Unexpected key in `params` of `choices`: {next(iter(params))!r}. Allowed keys: 'unique'")
    return bool(params.get("unique", False))


class ChoicesFunction:
    """One group of ``choices`` calls: ``ChoicesFunction(args, params)(args, params)`` draws once.

    Draws come from ``rng`` (Python's global generator unless another is given). With ``unique``, a draw
    repeating an earlier value of the group is drawn again, up to 21 times; a group that still repeats has
    asked for more values than ``args`` holds, which raises.
    """

    def __init__(self, args: Any, params: Any = None, rng: Draws = random) -> None:  # type: ignore[assignment]
        self.args = args
        self.params = params
        self.largs, self.kwargs = _unpack_args(args)
        self.unique = _unique(params)
        self.previous_choices: list[Any] = []
        self._rng = rng

    def _draw(self) -> list[Any]:
        try:
            return self._rng.choices(*self.largs, **self.kwargs)
        except (TypeError, ValueError, IndexError) as exc:
            raise StudyConfigError(f"invalid `args` for choices: {exc}") from None

    def __call__(self, args: Any, params: Any) -> list[Any]:
        if args != self.args or params != self.params:
            raise StudyConfigError("calls sharing an `id` differ in `args` or `params`")
        choice = self._draw()
        if not self.unique:
            return choice
        retries = 0
        while any(value in self.previous_choices for value in choice) or len(_distinct(choice)) != len(choice):
            if retries >= UNIQUE_RETRIES:
                break
            retries += 1
            choice = self._draw()
        self.previous_choices.extend(choice)
        if len(_distinct(self.previous_choices)) != len(self.previous_choices):
            raise StudyConfigError(
                "There are more calls to `choices` than number of elements in `args` (with params.unique)"
            )
        return choice


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _signature(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _resolve_function(
    function_name: Any,
    args: Any,
    function_calls: dict[Any, ChoicesFunction],
    params: Any = None,
    id: Any = None,  # noqa: A002 - the key's name in the file
    *,
    rng: Draws = random,  # type: ignore[assignment]
) -> Any:
    """The value of one call table; ``function_calls`` holds the groups seen so far (one dict per participant)."""
    if id is not None:
        signature: tuple[str, str] = ("id", _signature(id))
    else:
        signature = ("call", _signature({"function_name": function_name, "args": args, "params": params}))
    if function_name != "choices":
        raise StudyConfigError(f"unknown function {function_name!r} (supported: 'choices')")
    group = function_calls.get(signature)
    if group is None:
        group = function_calls[signature] = ChoicesFunction(args, params, rng)
    return group(args, params)


def _resolve(value: dict[str, Any], function_calls: dict[Any, ChoicesFunction], rng: Draws, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if not isinstance(item, dict):
            out[key] = item
        elif is_call(item):
            if "function_name" not in item or "args" not in item:
                raise StudyConfigError("a function-call table needs `function_name` and `args`", key=where)
            try:
                out[key] = _resolve_function(**item, function_calls=function_calls, rng=rng)
            except StudyConfigError as error:
                raise error.located(key=where) from None
        else:
            out[key] = _resolve(item, function_calls, rng, where)
    return out


def resolve_function_calls(configs: list[dict[str, Any]], rng: Draws = random) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """New blocks with every call table replaced by its value (one group table for all of ``configs``)."""
    function_calls: dict[Any, ChoicesFunction] = {}
    resolved = []
    for block in configs:
        try:
            resolved.append(_resolve(block, function_calls, rng, ""))
        except StudyConfigError as error:
            raise error.located(block=str(block.get("name"))) from None
    return resolved
