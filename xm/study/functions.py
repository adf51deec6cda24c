"""Function-call tables in blocks: ``{function_name = "choices", args = ..., params = ..., id = ...}``.

A table with two to four keys, all among ``function_name``, ``args``, ``params`` and ``id``, found as a
value in a block (at any depth of tables, not inside lists), is replaced by the result of the call. The only
function is ``choices``: Python's :func:`random.choices`, with ``args`` as positional arguments (a list) or
keyword arguments (a table). Calls with the same ``id``, or the same call without one, form a group; with
``params = { unique = true }`` no value repeats within a group. Each place a call appears is drawn
separately; draws are made in block order, then key order.

The checks, messages and exceptions are experiment-server 0.3.9's: a call table without ``function_name``
or ``args`` is a ``TypeError``, calls sharing an ``id`` with other ``args`` or ``params`` an
``AssertionError``, and :func:`random.choices`'s own errors pass through.
"""

from __future__ import annotations

import json
import random
from typing import Any

from xmanager.xm.study.errors import InvalidStudyError
from xmanager.xm.study.ordering import Draws

__all__ = ["CALL_KEYS", "ChoicesFunction", "is_call", "resolve_function_calls"]

CALL_KEYS = ("function_name", "args", "params", "id")
UNIQUE_RETRIES = 20  # A unique draw is retried until it has been redrawn more than this (as experiment-server).


def is_call(value: Any) -> bool:
    """True if ``value`` is a function-call table."""
    return isinstance(value, dict) and len(value) in (2, 3, 4) and all(key in CALL_KEYS for key in value)


def _unpack_args(args: Any) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(args, list):
        return args, {}
    if isinstance(args, dict):
        return [], args
    raise InvalidStudyError(f"`args` should be a list or a dict. Got {args}")


class ChoicesFunction:
    """One group of ``choices`` calls: ``ChoicesFunction(args, params)(args, params)`` draws once.

    Draws come from ``rng`` (Python's global generator unless another is given). With ``unique``, a draw
    repeating an earlier value of the group is drawn again, up to 21 times; a group that still repeats has
    asked for more values than ``args`` holds, which raises.
    """

    def __init__(self, args: Any, params: Any, rng: Draws = random) -> None:
        self.args = args
        self.largs, self.kwargs = _unpack_args(args)
        self.unique = False
        self.params = params
        if params is not None:
            if not isinstance(params, dict):
                raise InvalidStudyError("`params` for `choices` should be a dict.")
            if len(params) not in (0, 1):
                raise InvalidStudyError(f"Function `choices` expected 0 or 1 keys in params, got {len(params)}")
            if len(params) == 1 and "unique" not in params:
                raise InvalidStudyError("Unexpected key in `params` of `choices`. Allowed keys: [`unique`]")
            if "unique" in params:
                self.unique = bool(params.get("unique"))
        self.previous_choices: list[Any] = []
        self._rng = rng

    def __call__(self, args: Any, params: Any) -> list[Any]:
        assert self.args == args  # noqa: S101 - experiment-server's check (and exception)
        assert params == self.params  # noqa: S101
        choice = self._rng.choices(*self.largs, **self.kwargs)
        if self.unique:
            retries = 0
            while any(c in self.previous_choices for c in choice) or len(set(choice)) != len(choice):
                if retries > UNIQUE_RETRIES:
                    break
                retries += 1
                choice = self._rng.choices(*self.largs, **self.kwargs)
            self.previous_choices.extend(choice)
            if len(self.previous_choices) != len(set(self.previous_choices)):
                raise InvalidStudyError("There are more calls to `choices` than number of elements in `args`")
        return choice


def _resolve_function(
    function_name: Any,
    args: Any,
    function_calls: dict[Any, ChoicesFunction],
    params: Any = None,
    id: Any = None,  # noqa: A002 - the key's name in the file
    *,
    rng: Draws = random,
) -> Any:
    """The value of one call table; ``function_calls`` holds the groups seen so far (one dict per participant)."""
    if id is None:
        signature = hash(json.dumps({"function_name": function_name, "args": args, "params": params}, sort_keys=True))
    else:
        signature = id
    if function_name != "choices":
        raise InvalidStudyError(f"Unknown function {function_name}")
    try:
        group = function_calls[signature]
    except KeyError:
        group = function_calls[signature] = ChoicesFunction(args, params, rng)
    return group(args, params)


def _resolve(config: dict[str, Any], function_calls: dict[Any, ChoicesFunction], rng: Draws) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(value, dict):
            resolved[key] = value
        elif is_call(value):
            resolved[key] = _resolve_function(**value, function_calls=function_calls, rng=rng)
        else:
            resolved[key] = _resolve(value, function_calls, rng)
    return resolved


def resolve_function_calls(configs: list[dict[str, Any]], rng: Draws = random) -> list[dict[str, Any]]:
    """New blocks with every call table replaced by its value (one group table for all of ``configs``)."""
    function_calls: dict[Any, ChoicesFunction] = {}
    return [_resolve(config, function_calls, rng) for config in configs]
