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
import time
from collections.abc import Callable
from typing import Any, Optional, TypeVar

from xmanager.executors import retrying
from xmanager.executors.retrying import RetryPolicy, backoff

__all__ = ["DEFAULT_POLICY", "RETRIED_STATUSES", "RetryPolicy", "backoff", "call", "gave_up", "retry_after",
           "status_of"]

#: HTTP statuses worth another attempt: throttled, or a transient server-side failure.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")

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


def _retryable(error: BaseException) -> bool:
    return status_of(error) in RETRIED_STATUSES


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried under :data:`DEFAULT_POLICY` while it raises an ApiException with a
    status in :data:`RETRIED_STATUSES`, waiting what ``Retry-After`` asks when the server says."""
    return retrying.call(fn, *args, retryable=_retryable, policy=DEFAULT_POLICY, hint=retry_after,
                         sleep=lambda seconds: _sleep(seconds), **kwargs)


def gave_up(error: BaseException) -> str:
    """``"; gave up after 8 attempts and 29.5 s of waiting (...)"`` for an error :func:`call` stopped retrying."""
    text = retrying.gave_up(error, "429 and 5xx answers")
    return text + ": the API server is overloaded or failing, try again later" if text else ""
