"""The retry rules on their own: which answers are retried, Retry-After parsing, backoff bounds and caps."""

import email.utils
import time

import pytest
from kubernetes.client.exceptions import ApiException
from xmanager.executors.kubernetes import retry


def _error(status, retry_after=None):
    error = ApiException(status=status, reason="x")
    error.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error


@pytest.fixture
def waits(monkeypatch):
    recorded = []
    monkeypatch.setattr(retry, "_sleep", recorded.append)
    return recorded


def _failing(errors, result="ok"):
    calls = []

    def fn(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


def test_throttling_and_transient_server_errors_are_retried(waits):
    fn, calls = _failing([_error(429, "3"), _error(500), _error(502), _error(503), _error(504)])
    assert retry.call(fn, 1, key="v") == "ok"
    assert len(calls) == 6 and calls[0] == ((1,), {"key": "v"})
    assert waits[0] == 3.0
    assert len(waits) == 5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_answers_are_raised_at_once(waits, status):
    fn, calls = _failing([_error(status)])
    with pytest.raises(ApiException):
        retry.call(fn)
    assert len(calls) == 1 and waits == []


def test_a_transport_error_is_not_retried_here(waits):
    fn, calls = _failing([ConnectionResetError("reset")])
    with pytest.raises(ConnectionResetError):
        retry.call(fn)
    assert len(calls) == 1


def test_retry_after_as_seconds_or_an_http_date():
    assert retry.retry_after(_error(429, "7")) == 7.0
    assert retry.retry_after(_error(429, "-3")) == 0.0
    assert retry.retry_after(_error(429)) is None
    assert retry.retry_after(_error(429, "soon")) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry.retry_after(_error(429, later)) <= 31


def test_backoff_doubles_up_to_the_maximum_with_jitter():
    policy = retry.RetryPolicy(first_delay=1.0, max_delay=4.0)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        for _ in range(20):
            assert base * 0.5 <= retry.backoff(attempt, policy) <= base


def test_the_total_wait_is_capped_and_the_error_says_so(waits, monkeypatch):
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.RetryPolicy(max_total_wait=10))
    fn, calls = _failing([_error(429, "4")] * 100)
    with pytest.raises(ApiException) as caught:
        retry.call(fn)
    assert waits == [4.0, 4.0] and len(calls) == 3
    text = retry.gave_up(caught.value)
    assert "gave up after 3 attempts and 8.0 s of waiting" in text and "at most 8 attempts or 10 s" in text


def test_a_first_failure_that_is_not_retried_says_nothing_about_giving_up():
    fn, _ = _failing([_error(403)])
    with pytest.raises(ApiException) as caught:
        retry.call(fn)
    assert retry.gave_up(caught.value) == ""


@pytest.mark.parametrize("options", [{"max_attempts": 0}, {"max_total_wait": -1}, {"first_delay": -0.1}])
def test_a_bad_policy_is_refused(options):
    with pytest.raises(ValueError, match="RetryPolicy"):
        retry.RetryPolicy(**options)
