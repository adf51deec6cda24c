"""The retry budget and the bounded map shared by the cluster and cloud executors."""

import threading
import time

import pytest
from xmanager.executors import retrying


class FlakyError(Exception):
    pass


def test_call_retries_what_is_retryable_and_honours_a_hint():
    waits, answers = [], iter([FlakyError(), FlakyError(), "ok"])

    def fn():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = retrying.call(fn, retryable=lambda e: isinstance(e, FlakyError), policy=retrying.RetryPolicy(),
                           hint=lambda e: 1.5, sleep=waits.append)
    assert result == "ok" and waits == [1.5, 1.5]


def test_a_spent_budget_raises_the_last_error_and_says_so():
    waits = []
    policy = retrying.RetryPolicy(max_attempts=3, first_delay=0.1)
    with pytest.raises(FlakyError) as failure:
        retrying.call(lambda: (_ for _ in ()).throw(FlakyError()), retryable=lambda e: True, policy=policy,
                      sleep=waits.append)
    assert len(waits) == 2 and all(0.05 <= w <= 0.2 for w in waits)
    assert retrying.gave_up(failure.value, "flaky answers").startswith("; gave up after 3 attempts")


def test_other_errors_are_not_retried():
    calls = []
    with pytest.raises(ValueError):
        retrying.call(lambda: calls.append(1) or (_ for _ in ()).throw(ValueError()), retryable=lambda e: False,
                      policy=retrying.RetryPolicy(), sleep=lambda s: None)
    assert calls == [1]


def test_a_stop_event_ends_the_waiting_at_once():
    stop = threading.Event()
    budget = retrying.Budget(retrying.RetryPolicy(first_delay=30, max_delay=30, max_total_wait=60), stop)
    budget.attempts = 1
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    assert budget.pause(FlakyError()) is False
    assert time.monotonic() - started < 10


def test_bounded_map_keeps_order_and_the_limit():
    lock, running, peak = threading.Lock(), [0], [0]

    def work(item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return item * 2

    assert retrying.bounded_map(work, range(12), 3, "t") == [i * 2 for i in range(12)]
    assert 1 < peak[0] <= 3


def test_create_all_stops_after_a_failure_and_lists_what_to_undo():
    def create(item, stop):
        if item == "refused":
            raise FlakyError("refused")
        if item == "unknown":
            raise TimeoutError("no answer")
        return item.upper()

    done = retrying.create_all(create, ["a", "unknown", "b"], 1, lambda e: isinstance(e, FlakyError), "t")
    assert done.results == ["A", None, None]  # "b" never started.
    assert [i for i, _ in done.failures] == [1] and done.undo == [0, 1]
    refused = retrying.create_all(create, ["refused", "a"], 1, lambda e: isinstance(e, FlakyError), "t")
    assert refused.undo == [] and refused.results == [None, None]
    fine = retrying.create_all(create, ["a", "b"], 2, lambda e: False, "t")
    assert fine.results == ["A", "B"] and fine.failures == [] and fine.undo == []
