"""Framework labels: a library that launches experiments for its users says which framework it is.

``xm.framework_label('name')`` is both a context manager and a function decorator (``def`` or
``async def``). Labels nest, outermost first; re-declaring an active label changes nothing.
They live in a context variable, so concurrent coroutines and threads each see their own.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, Optional, TypeVar

_LABELS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("xm_framework_labels", default=())

# Labels are passed on as `key:value` items of a quoted string and used as report keys: letters,
# digits, `_` and `-` only.
_LABEL = re.compile(r"[A-Za-z0-9_-]+")

CallableT = TypeVar("CallableT", bound=Callable[..., Any])


def framework_label(label: str) -> FrameworkLabel:
    """A scope in which ``label`` is active: ``with framework_label('flax'):`` or ``@framework_label('flax')``.

    Raises ValueError unless ``label`` is a non-empty string of ASCII letters, digits, ``_`` and ``-``.
    """
    return FrameworkLabel(label)


def get_active_framework_labels() -> list[str]:
    """The labels active here, outermost first."""
    return list(_LABELS.get())


class FrameworkLabel:
    """What :func:`framework_label` returns; may be entered again, also while already entered."""

    def __init__(self, label: str) -> None:
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            raise ValueError(f"a framework label is a non-empty string of ASCII letters, digits, '_' and '-'; got {label!r}")
        self._label = label
        self._entered: list[Optional[contextvars.Token[tuple[str, ...]]]] = []  # None: was already active.

    def __enter__(self) -> None:
        active = _LABELS.get()
        self._entered.append(None if self._label in active else _LABELS.set((*active, self._label)))

    def __exit__(self, *exc_info: Any) -> None:
        token = self._entered.pop()
        if token is not None:
            _LABELS.reset(token)

    def __call__(self, function: CallableT) -> CallableT:
        """``function`` with the label active during each call (each call gets its own scope)."""
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(
                f"framework_label cannot decorate the generator function {getattr(function, '__qualname__', function)!r}: "
                "its body runs after the call returns, outside the label; use `with framework_label(...)` in the body"
            )
        label = self._label
        if inspect.iscoroutinefunction(function):
            # An `async def` wrapper, so that it still passes inspect.iscoroutinefunction (job generators must).
            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with FrameworkLabel(label):
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with FrameworkLabel(label):
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]


__all__ = ["FrameworkLabel", "framework_label", "get_active_framework_labels"]
