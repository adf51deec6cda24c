"""Status vocabulary, status combination and ExperimentUnitStatus."""

import pytest
from xmanager import xm
from xmanager.xm import status as status_lib

S = xm.Status


def test_status_values_and_str():
    assert [s.value for s in S] == ["pending", "running", "completed", "failed", "cancelled", "pruned"]
    assert str(S.RUNNING) == "running"
    assert f"{S.FAILED}" == "failed"
    assert S("completed") is S.COMPLETED
    assert S.PENDING == "pending"


def test_terminal_states():
    assert {s for s in S if s.is_terminal} == {S.COMPLETED, S.FAILED, S.CANCELLED, S.PRUNED}
    assert status_lib.TERMINAL_VALUES == ("cancelled", "completed", "failed", "pruned")


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], S.PENDING),
        ([S.PENDING], S.PENDING),
        ([S.PENDING, S.PENDING], S.PENDING),
        ([S.RUNNING], S.RUNNING),
        ([S.COMPLETED], S.COMPLETED),
        ([S.COMPLETED, S.COMPLETED, S.COMPLETED], S.COMPLETED),
        ([S.FAILED], S.FAILED),
        ([S.CANCELLED], S.CANCELLED),
        ([S.PRUNED], S.PRUNED),
        ([S.PRUNED, S.FAILED], S.FAILED),
        ([S.PRUNED, S.CANCELLED], S.CANCELLED),
        # Failure dominates everything, including cancellation.
        ([S.COMPLETED, S.FAILED, S.RUNNING], S.FAILED),
        ([S.CANCELLED, S.FAILED], S.FAILED),
        ([S.FAILED, S.CANCELLED], S.FAILED),
        ([S.PENDING, S.FAILED], S.FAILED),
        # Then cancellation.
        ([S.CANCELLED, S.COMPLETED], S.CANCELLED),
        ([S.RUNNING, S.CANCELLED, S.PENDING], S.CANCELLED),
        # Some progress but not done: running.
        ([S.RUNNING, S.PENDING], S.RUNNING),
        ([S.COMPLETED, S.RUNNING], S.RUNNING),
        ([S.COMPLETED, S.PENDING], S.RUNNING),
    ],
)
def test_combine(statuses, expected):
    assert status_lib.combine(statuses) is expected


@pytest.mark.parametrize(
    ("status", "active", "completed", "failed", "cancelled"),
    [
        (S.PENDING, True, False, False, False),
        (S.RUNNING, True, False, False, False),
        (S.COMPLETED, False, True, False, False),
        (S.FAILED, False, False, True, False),
        (S.CANCELLED, False, False, False, True),
    ],
)
def test_experiment_unit_status_properties(status, active, completed, failed, cancelled):
    unit_status = xm.ExperimentUnitStatus(status)
    assert unit_status.is_active is active
    assert unit_status.is_completed is completed
    assert unit_status.is_failed is failed
    assert unit_status.is_cancelled is cancelled


def test_experiment_unit_status_fields():
    unit_status = xm.ExperimentUnitStatus(S.FAILED, message="exit 3", exit_code=3)
    assert unit_status.message == "exit 3"
    assert unit_status.exit_code == 3
    default = xm.ExperimentUnitStatus(S.RUNNING)
    assert default.message == ""
    assert default.exit_code is None
    assert unit_status == xm.ExperimentUnitStatus(S.FAILED, "exit 3", 3)
    with pytest.raises(AttributeError):
        unit_status.status = S.COMPLETED
