"""Retrying Vertex AI calls the server turned away for a moment: RESOURCE_EXHAUSTED and UNAVAILABLE.

The generated ``JobServiceClient`` (google-cloud-aiplatform 2.x, ``transports/base.py``) wraps
CreateCustomJob, GetCustomJob, ListCustomJobs, CancelCustomJob and DeleteCustomJob with *no*
default retry and no default timeout, so every call here passes its own deadline and goes
through :func:`call`. It retries RESOURCE_EXHAUSTED (quota and rate limits: HTTP 429) and
UNAVAILABLE with capped, jittered exponential backoff, and nothing else. An UNAVAILABLE that
is really a failed credential refresh (gRPC reports it so) is not retried: it will not heal.

Creates are not blindly retried: see :func:`.backend.VertexBackend._create` for the rule that
keeps a create whose answer was lost from becoming a duplicate CustomJob.

When the budget is spent, the last error is raised with ``xm_retries = (attempts, seconds
waited, policy)`` set on it, so the error message can say that it gave up and after how long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Optional, TypeVar

from xmanager.executors import retrying
from xmanager.executors.retrying import RetryPolicy, backoff

__all__ = ["DEFAULT_POLICY", "READ_POLICY", "budget", "RetryPolicy", "backoff", "call", "code_of", "gave_up",
           "is_auth_failure", "retryable"]

T = TypeVar("T")

#: Creates and cancels (a launch or its rollback): up to 8 attempts and 30 s of waiting.
DEFAULT_POLICY = RetryPolicy(first_delay=0.5)
#: The preflight and status reads: a poll or a launch check should not hang on a dead server.
READ_POLICY = RetryPolicy(max_attempts=4, max_total_wait=5.0, first_delay=0.5)


def _sleep(seconds: float, stop: Optional[threading.Event] = None) -> None:
    """The pause between attempts; returns early when ``stop`` is set (a seam for tests)."""
    if stop is not None:
        stop.wait(seconds)
    else:
        time.sleep(seconds)


def budget(policy: RetryPolicy, stop: Optional[threading.Event] = None) -> retrying.Budget:
    """A retry budget for one logical call whose pauses go through :func:`_sleep`."""
    return retrying.Budget(policy, stop, lambda seconds: _sleep(seconds, stop))


def code_of(error: BaseException) -> str:
    """The gRPC status name of a ``google.api_core`` error (``"UNAVAILABLE"``...), else ``""``."""
    code = getattr(error, "grpc_status_code", None)
    return str(getattr(code, "name", "") or "")


def is_auth_failure(error: BaseException) -> bool:
    """A credential problem, which gRPC may report as UNAVAILABLE ("metadata from plugin failed")."""
    from google.auth import exceptions as auth

    text = str(getattr(error, "message", "") or error)
    return isinstance(error, auth.GoogleAuthError) or "metadata from plugin failed" in text


def retryable(error: BaseException) -> bool:
    """Worth another attempt for any of our calls: throttled, or the server briefly unavailable."""
    return code_of(error) in ("RESOURCE_EXHAUSTED", "UNAVAILABLE") and not is_auth_failure(error)


def call(fn: Callable[..., T], *args: Any, policy: Optional[RetryPolicy] = None,
         stop: Optional[threading.Event] = None, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried under ``policy`` (default :data:`DEFAULT_POLICY`) while it raises
    RESOURCE_EXHAUSTED or UNAVAILABLE; ``stop`` (set by another thread) ends the retries early."""
    return retrying.call(fn, *args, retryable=retryable, policy=policy or DEFAULT_POLICY, stop=stop,
                         sleep=lambda seconds: _sleep(seconds, stop), **kwargs)


def gave_up(error: BaseException) -> str:
    """``"; gave up after 8 attempts and 29.5 s of waiting (...)"`` for an error retried in vain, else ``""``."""
    return retrying.gave_up(error, "RESOURCE_EXHAUSTED and UNAVAILABLE answers")
