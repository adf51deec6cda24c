"""Retrying calls a remote API turned away for a moment, and running calls (creates) a few at a time.

Shared by the executors that talk to a cluster or cloud API (Kubernetes, Vertex AI). Each
executor says which of its errors are transient (a ``retryable`` predicate) and may read a
server's hint of how long to wait (``Retry-After``); the backoff, the budget and the message
when it is spent are the same everywhere. When the budget is spent, the last error is raised
with ``xm_retries = (attempts, seconds waited, policy)`` set on it, so :func:`gave_up` can say
that it gave up and after how long.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, TypeVar

import attrs

T = TypeVar("T")
R = TypeVar("R")
Sleep = Callable[[float], None]


@attrs.frozen
class RetryPolicy:
    """How long one call may keep retrying.

    ``max_attempts`` counts the first try; ``max_total_wait`` caps the seconds spent sleeping
    between attempts (a server's hint that would exceed it ends the retries at once). Without a
    hint, the n-th wait is ``first_delay * 2**(n-1)`` capped at ``max_delay``, times a random
    factor in [0.5, 1] so that many clients (or threads) do not come back in step.
    """

    max_attempts: int = 8
    max_total_wait: float = 30.0
    first_delay: float = 0.25
    max_delay: float = 8.0

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy(max_attempts={self.max_attempts!r}): must be >= 1")
        if self.max_total_wait < 0 or self.first_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy: max_total_wait, first_delay and max_delay must be >= 0")


def backoff(attempt: int, policy: RetryPolicy) -> float:
    """The wait after the ``attempt``-th failed try (1-based), without a server's hint."""
    return min(policy.max_delay, policy.first_delay * (2 ** (attempt - 1))) * random.uniform(0.5, 1.0)


def _default_sleep(seconds: float) -> None:
    time.sleep(seconds)


class Budget:
    """The attempts and waiting left to one logical call (e.g. a create across its look-ups).

    ``stop`` (set by another thread, e.g. when a sibling create failed) ends the waiting early;
    ``sleep`` is the pause between attempts (a seam so tests can record waits instead).
    """

    def __init__(self, policy: RetryPolicy, stop: Optional[threading.Event] = None, sleep: Optional[Sleep] = None):
        self.policy = policy
        self.stop = stop
        self.sleep = sleep or (stop.wait if stop is not None else _default_sleep)
        self.attempts = 0
        self.waited = 0.0

    def pause(self, error: BaseException, hint: Optional[float] = None) -> bool:
        """After a failed attempt: waits and returns True if another is allowed, else marks ``error``."""
        delay = hint if hint is not None else backoff(self.attempts, self.policy)
        stopped = self.stop is not None and self.stop.is_set()
        if self.attempts >= self.policy.max_attempts or self.waited + delay > self.policy.max_total_wait or stopped:
            mark(error, self.attempts, self.waited, self.policy)
            return False
        self.sleep(delay)
        self.waited += delay
        return not (self.stop is not None and self.stop.is_set())


def call(
    fn: Callable[..., T],
    *args: Any,
    retryable: Callable[[BaseException], bool],
    policy: RetryPolicy,
    hint: Optional[Callable[[BaseException], Optional[float]]] = None,
    stop: Optional[threading.Event] = None,
    sleep: Optional[Sleep] = None,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)``, tried again under ``policy`` while it raises an error ``retryable`` accepts."""
    budget = Budget(policy, stop, sleep)
    while True:
        budget.attempts += 1
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if not retryable(error) or not budget.pause(error, hint(error) if hint else None):
                raise


def mark(error: Any, attempts: int, waited: float, policy: RetryPolicy) -> None:
    """Records on ``error`` how long it was retried (read back by :func:`gave_up`)."""
    try:
        error.xm_retries = (attempts, waited, policy)
    except AttributeError:  # An exception type with __slots__: the message just says less.
        pass


def gave_up(error: BaseException, retried: str) -> str:
    """``"; gave up after 8 attempts and 29.5 s of waiting (<retried> are retried ...)"``, or ``""`` if not retried."""
    retries = getattr(error, "xm_retries", None)
    if not retries or retries[0] <= 1:
        return ""
    attempts, waited, policy = retries
    return (f"; gave up after {attempts} attempts and {waited:.1f} s of waiting ({retried} are retried with "
            f"backoff, at most {policy.max_attempts} attempts or {policy.max_total_wait:g} s)")


def bounded_map(fn: Callable[[T], R], items: Iterable[T], limit: int, name: str) -> list[R]:
    """``[fn(item) for item in items]`` with up to ``limit`` calls at once (threads named ``name``); in input order."""
    items = list(items)
    if limit <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(limit, len(items)), thread_name_prefix=name) as pool:
        return list(pool.map(fn, items))


@attrs.frozen
class Creations:
    """What :func:`create_all` did: each item's result (None if not created), the failures in the order they
    happened, and the indices to roll back if anything failed (created, or with an unknown outcome)."""

    results: list[Any]
    failures: list[tuple[int, Exception]]
    undo: list[int]


def create_all(
    create: Callable[[T, threading.Event], R],
    items: Sequence[T],
    limit: int,
    refused: Callable[[BaseException], bool],
    name: str,
) -> Creations:
    """``create(item, stop)`` for every item, ``limit`` at a time, for an all-or-nothing launch.

    After the first failure no new create starts and ``stop`` is set, so creates waiting to retry give up.
    A failed create whose error ``refused`` says surely stored nothing needs no rollback; any other
    failed create may have made the object, so it is listed in ``undo`` with the ones that succeeded.
    """
    results: list[Any] = [None] * len(items)
    states = ["waiting"] * len(items)
    failures: list[tuple[int, Exception]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def one(index: int) -> None:
        if stop.is_set():
            return
        try:
            results[index] = create(items[index], stop)
        except Exception as error:
            states[index] = "refused" if refused(error) else "unknown"
            with lock:
                failures.append((index, error))
            stop.set()
            return
        states[index] = "created"

    bounded_map(one, range(len(items)), limit, name)
    undo = [i for i, state in enumerate(states) if state in ("created", "unknown")] if failures else []
    return Creations(results, failures, undo)
