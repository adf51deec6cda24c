"""The retry rule on its own: which errors are retried, the budget, and the message when it is spent."""

import threading

import pytest
from google.api_core import exceptions as api
from xmanager.executors.vertex import retry


def _failing(errors, result="done"):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


def test_quota_and_unavailable_are_retried(retry_waits):
    fn, calls = _failing([api.ResourceExhausted("quota"), api.ServiceUnavailable("down")])
    assert retry.call(fn) == "done"
    assert len(calls) == 3 and len(retry_waits) == 2


@pytest.mark.parametrize("error", [api.InvalidArgument("bad"), api.PermissionDenied("no"),
                                   api.DeadlineExceeded("slow"), api.InternalServerError("oops"),
                                   api.ServiceUnavailable("Getting metadata from plugin failed with error: x")])
def test_other_errors_and_credential_failures_are_not_retried(retry_waits, error):
    fn, calls = _failing([error])
    with pytest.raises(type(error)):
        retry.call(fn)
    assert len(calls) == 1 and retry_waits == []


def test_the_budget_ends_the_retries_and_says_so(retry_waits):
    policy = retry.RetryPolicy(max_attempts=3, max_total_wait=100, first_delay=0.1, max_delay=1)
    fn, calls = _failing([api.ResourceExhausted("quota")] * 10)
    with pytest.raises(api.ResourceExhausted) as error:
        retry.call(fn, policy=policy)
    assert len(calls) == 3 and len(retry_waits) == 2
    assert retry.gave_up(error.value).startswith("; gave up after 3 attempts and ")
    # A wait budget smaller than the next backoff stops earlier.
    fn, calls = _failing([api.ServiceUnavailable("down")] * 10)
    with pytest.raises(api.ServiceUnavailable):
        retry.call(fn, policy=retry.RetryPolicy(max_attempts=10, max_total_wait=0.04, first_delay=0.1))
    assert len(calls) == 1


def test_a_stop_event_ends_the_retries(retry_waits):
    stop = threading.Event()
    stop.set()
    fn, calls = _failing([api.ResourceExhausted("quota")] * 10)
    with pytest.raises(api.ResourceExhausted):
        retry.call(fn, stop=stop)
    assert len(calls) == 1


def test_backoff_grows_to_its_cap():
    policy = retry.RetryPolicy(first_delay=0.5, max_delay=8)
    for attempt, full in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 8.0)]:
        assert full * 0.5 <= retry.backoff(attempt, policy) <= full


def test_a_bad_policy_is_refused():
    with pytest.raises(ValueError, match="max_attempts"):
        retry.RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="must be >= 0"):
        retry.RetryPolicy(first_delay=-1)
