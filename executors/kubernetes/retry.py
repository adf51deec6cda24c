"""Retrying API calls the server refused for a moment: 429 Too Many Requests and 500/502/503/504.

API servers shed load with 429 and a ``Retry-After`` header (API Priority and Fairness), and
answer 5xx while etcd or a webhook is briefly unavailable. :func:`call` retries those with
bounded exponential backoff, honouring ``Retry-After``; it never retries another 4xx, nor a
transport error (the client's urllib3 pool already retries a failed connection once). When
the budget is spent, the last error is raised with ``xm_retries = (attempts, seconds waited)``
(and the policy) set on it, so :func:`..config.explain` can say that it gave up and after how long.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import attrs

#: HTTP statuses worth another attempt: throttled, or a transient server-side failure.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")


@attrs.frozen
class RetryPolicy:
    """How long one API call may keep retrying.

    ``max_attempts`` counts the first try; ``max_total_wait`` caps the seconds spent sleeping
    between attempts (a ``Retry-After`` that would exceed it ends the retries at once). Without
    ``Retry-After``, the n-th wait is ``first_delay * 2**n`` capped at ``max_delay``, times a
    random factor in [0.5, 1] so that many clients do not come back in step.
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


#: What every call of the backend uses (tests and benchmarks may replace it).
DEFAULT_POLICY = RetryPolicy()


def _sleep(seconds: float) -> None:
    """The pause between attempts (a seam so tests can record the waits instead of sleeping)."""
    time.sleep(seconds)


def status_of(error: BaseException) -> Optional[int]:
    """The HTTP status of a ``kubernetes`` ApiException, else None."""
    status = getattr(error, "status", None)
    return status if isinstance(status, int) and status > 0 else None


def retry_after(error: BaseException) -> Optional[float]:
    """Seconds from the error's ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    headers = getattr(error, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int, policy: RetryPolicy) -> float:
    """The wait after the ``attempt``-th failed try (1-based), without ``Retry-After``."""
    base = min(policy.max_delay, policy.first_delay * (2 ** (attempt - 1)))
    return base * random.uniform(0.5, 1.0)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried under :data:`DEFAULT_POLICY` while it raises an ApiException with a
    status in :data:`RETRIED_STATUSES`."""
    policy = DEFAULT_POLICY
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if status_of(error) not in RETRIED_STATUSES:
                raise
            hinted = retry_after(error)
            delay = hinted if hinted is not None else backoff(attempt, policy)
            if attempt >= policy.max_attempts or waited + delay > policy.max_total_wait:
                _mark(error, attempt, waited, policy)
                raise
            _sleep(delay)
            waited += delay


def _mark(error: Any, attempts: int, waited: float, policy: RetryPolicy) -> None:
    try:
        error.xm_retries = (attempts, waited, policy)
    except AttributeError:  # An exception type with __slots__: the message just says less.
        pass


def gave_up(error: BaseException) -> str:
    """``"; gave up after 8 attempts and 29.5 s of waiting (...)"`` for an error :func:`call` stopped retrying."""
    retries = getattr(error, "xm_retries", None)
    if not retries or retries[0] <= 1:
        return ""
    attempts, waited, policy = retries
    return (f"; gave up after {attempts} attempts and {waited:.1f} s of waiting (429 and 5xx answers are retried "
            f"with backoff, at most {policy.max_attempts} attempts or {policy.max_total_wait:g} s): the API server "
            "is overloaded or failing, try again later")
