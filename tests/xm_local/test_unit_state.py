"""The unit state machine: every transition, late and duplicate events, and its invariants under any order."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xmanager.executors.api import Handle, StatusUpdate
from xmanager.xm.status import Status, combine
from xmanager.xm_local.unit_state import NO_CHANGE, JobState, UnitStateMachine

P, R, C, F, X = Status.PENDING, Status.RUNNING, Status.COMPLETED, Status.FAILED, Status.CANCELLED
PR = Status.PRUNED
TERMINAL = (C, F, X, PR)


def update(unit, job, status, message="", exit_code=None, results=None, handle=None):
    return StatusUpdate(1, unit, job, status, at=10.0, message=message, exit_code=exit_code, results=results,
                        handle=handle)


def machine_with(*jobs, sealed=True):
    """A machine with unit 1 created here, holding ``jobs`` (names, on the ``local`` executor)."""
    machine = UnitStateMachine()
    machine.add_unit(1)
    machine.add_jobs(1, [(name, "local") for name in jobs])
    if sealed:
        assert machine.seal(1) == NO_CHANGE or not machine.units[1].jobs
    return machine


# ---- one job: every transition ---------------------------------------------------------------------
def reach(machine, job, status):
    """Drives ``job`` of unit 1 to ``status`` along the usual path (pending, running, end)."""
    if status is not P:
        machine.apply(update(1, job, R))
    if status in TERMINAL:
        machine.apply(update(1, job, status, message=f"{status.value} message", exit_code=0 if status is C else 3))


@pytest.mark.parametrize(("before", "event"), list(itertools.product(Status, Status)))
def test_every_job_transition(before, event):
    machine = machine_with("job")
    reach(machine, "job", before)
    job, unit = machine.units[1].jobs["job"], machine.units[1]
    unit_before, active_before = unit.status, machine.active
    change = machine.apply(update(1, "job", event, message="new"))
    if before.is_terminal:  # A late event: nothing changes.
        assert change == NO_CHANGE and job.status is before and unit.status is unit_before
        assert machine.active == active_before
        return
    assert change.job is job and job.status is event and job.message == "new"
    derived = event if event.is_terminal else (P if event is P else R)
    assert unit.status is derived
    assert change.unit is (None if derived is unit_before else unit)
    assert change.ended is event.is_terminal and machine.active == (0 if event.is_terminal else 1)
    if event is F:
        assert unit.message == "job 'job': new" and change.stop == ()
    if event is C:
        assert unit.exit_code == 0


@pytest.mark.parametrize("status", list(Status))
def test_duplicate_events_change_nothing(status):
    machine = machine_with("job")
    reach(machine, "job", status)
    job = machine.units[1].jobs["job"]
    assert machine.apply(update(1, "job", status, message=job.message)) == NO_CHANGE


def test_events_for_unknown_units_or_jobs_are_ignored():
    machine = machine_with("job")
    assert machine.apply(update(2, "job", R)) == NO_CHANGE
    assert machine.apply(update(1, "other", R)) == NO_CHANGE
    assert machine.units[1].status is P


def test_results_merge_and_are_recorded_whole():
    machine = machine_with("job")
    assert machine.apply(update(1, "job", R, results={"step": 1})).results == {"step": 1}
    assert machine.apply(update(1, "job", R, results={"step": 1})) == NO_CHANGE  # Nothing new.
    change = machine.apply(update(1, "job", C, exit_code=0, results={"loss": 0.5}))
    assert change.results == {"step": 1, "loss": 0.5} and machine.units[1].results == {"step": 1, "loss": 0.5}
    assert machine.apply(update(1, "job", C, results={"late": True})) == NO_CHANGE
    assert "late" not in machine.units[1].results


def test_a_handle_and_exit_code_are_kept_from_the_events_that_bring_them():
    machine = machine_with("job")
    handle = Handle("local", 1, 1, "job", {"pid": 7})
    machine.apply(update(1, "job", R, handle=handle))
    machine.apply(update(1, "job", F, exit_code=None, message="lost"))
    job = machine.units[1].jobs["job"]
    assert job.handle == handle and job.exit_code is None
    assert machine.set_handle(1, "job", Handle("local", 1, 1, "job", {"pid": 8}), "/log") is False


# ---- groups and generators ------------------------------------------------------------------------------
def test_a_group_fails_as_a_whole():
    machine = machine_with("server", "client", "extra")
    machine.apply(update(1, "server", R))
    machine.apply(update(1, "client", R))
    machine.apply(update(1, "extra", C, exit_code=0))
    change = machine.apply(update(1, "client", F, message="exit code 3", exit_code=3))
    assert [job.name for job in change.stop] == ["server"]
    assert machine.units[1].status is R and not change.ended  # Until the others have stopped.
    change = machine.apply(update(1, "server", X, message="cancelled"))
    unit = machine.units[1]
    assert change.ended and unit.status is F
    assert (unit.message, unit.exit_code) == ("job 'client': exit code 3", 3)


def test_a_group_fails_even_when_the_others_complete():
    machine = machine_with("a", "b")
    machine.apply(update(1, "a", F, message="boom", exit_code=1))
    machine.apply(update(1, "b", C, exit_code=0))
    assert machine.units[1].status is F and machine.units[1].exit_code == 1


def test_a_unit_ends_only_when_sealed():
    machine = machine_with("a", sealed=False)
    change = machine.apply(update(1, "a", C, exit_code=0))
    assert machine.units[1].status is R and not change.ended
    machine.add_jobs(1, [("b", "local")])
    machine.apply(update(1, "b", C, exit_code=0))
    change = machine.seal(1)
    assert change.ended and change.unit.status is C and machine.active == 0


def test_a_failed_generator_fails_its_unit_and_stops_its_jobs():
    machine = machine_with("a", "b", sealed=False)
    machine.apply(update(1, "a", R))
    machine.apply(update(1, "b", C, exit_code=0))
    change = machine.seal(1, "job generator raised ValueError: no")
    assert [job.name for job in change.stop] == ["a"] and not change.ended
    assert machine.units[1].message == "job generator raised ValueError: no"
    change = machine.apply(update(1, "a", X, message="cancelled"))
    unit = machine.units[1]
    assert change.ended and unit.status is F and unit.message == "job generator raised ValueError: no"


def test_a_generator_without_jobs():
    machine = UnitStateMachine()
    machine.add_unit(1)
    machine.add_unit(2)
    assert machine.seal(1).unit.status is C
    assert machine.seal(2, "job generator raised KeyError: 'x'").unit.status is F
    assert machine.seal(1) == NO_CHANGE and machine.active == 0


def test_jobs_are_added_all_or_none():
    machine = machine_with("a", sealed=False)
    with pytest.raises(ValueError, match="already has a job named 'a'"):
        machine.add_jobs(1, [("b", "local"), ("a", "local")])
    with pytest.raises(ValueError, match="already has a job named 'c'"):
        machine.add_jobs(1, [("c", "local"), ("c", "local")])
    assert list(machine.units[1].jobs) == ["a"]
    machine.seal(1)
    with pytest.raises(RuntimeError, match="is complete"):
        machine.add_jobs(1, [("d", "local")])
    with pytest.raises(ValueError, match="exists already"):
        machine.add_unit(1)


# ---- cancelling, following, loading ----------------------------------------------------------------------
def test_cancelling_a_unit_without_jobs_ends_it_once():
    machine = UnitStateMachine()
    machine.add_unit(1)
    change = machine.cancel_unlaunched(1, "stopped")
    assert change.ended and machine.units[1].status is X and machine.active == 0
    assert machine.seal(1) == NO_CHANGE  # Its generator returning later changes nothing.
    assert machine.units[1].status is X and machine.active == 0
    assert machine.cancel_unlaunched(1, "again") == NO_CHANGE


def test_cancelling_a_unit_with_jobs_waits_for_them():
    machine = machine_with("a")
    assert machine.cancel_unlaunched(1, "stopped") == NO_CHANGE
    assert machine.apply(update(1, "a", X, message="cancelled")).ended


def test_a_cancellation_recorded_elsewhere_is_adopted():
    machine = machine_with("a", "b")
    machine.apply(update(1, "a", R))
    machine.apply(update(1, "b", C, exit_code=0))
    change = machine.adopt_recorded(1, X, "cancelled by xmanager cancel")
    unit = machine.units[1]
    assert change.ended and change.unit is None  # Already in the store: nothing to record.
    assert [job.name for job in change.stop] == ["a"] and unit.jobs["a"].status is X and unit.jobs["b"].status is C
    assert (unit.status, unit.message, machine.active) == (X, "cancelled by xmanager cancel", 0)
    assert machine.apply(update(1, "a", F, message="killed by SIGTERM", exit_code=-15)) == NO_CHANGE


def test_a_kill_that_looked_like_a_failure_becomes_the_recorded_cancellation():
    machine = machine_with("a")
    machine.apply(update(1, "a", F, message="killed by SIGTERM", exit_code=-15))
    change = machine.adopt_recorded(1, X, "cancelled by xmanager cancel")
    assert not change.ended and change.stop == () and machine.active == 0
    assert machine.units[1].status is X
    assert machine.adopt_recorded(1, X, "again") == NO_CHANGE
    assert machine.adopt_recorded(1, R, "not terminal") == NO_CHANGE
    assert machine.adopt_recorded(9, X, "unknown unit") == NO_CHANGE


def test_a_pruned_unit_ends_pruned_at_once_and_its_jobs_are_stopped():
    machine = machine_with("a", "b")
    machine.apply(update(1, "a", R))
    machine.apply(update(1, "b", C, exit_code=0))
    change = machine.prune(1, "pruned: loss 0.9 at step 3 is worse than the median 0.5")
    unit = machine.units[1]
    assert change.ended and change.unit is unit and machine.active == 0
    assert (unit.status, unit.message) == (PR, "pruned: loss 0.9 at step 3 is worse than the median 0.5")
    assert [job.name for job in change.stop] == ["a"] and [job.name for job in change.jobs] == ["a"]
    assert unit.jobs["a"].status is PR and unit.jobs["b"].status is C
    # The stopped job's report comes late: nothing changes; pruning again neither.
    assert machine.apply(update(1, "a", F, message="killed by SIGTERM", exit_code=-15)) == NO_CHANGE
    assert machine.prune(1, "again") == NO_CHANGE and unit.status is PR


def test_pruning_leaves_ended_and_failing_units_alone():
    machine = machine_with("a")
    machine.apply(update(1, "a", C, exit_code=0))
    assert machine.prune(1, "late") == NO_CHANGE and machine.units[1].status is C
    machine = machine_with("a", "b")
    machine.apply(update(1, "a", F, message="boom"))  # The group is failing: it ends failed.
    assert machine.prune(1, "late") == NO_CHANGE
    assert machine.apply(update(1, "b", X)).ended and machine.units[1].status is F
    assert machine.prune(9, "unknown unit") == NO_CHANGE


def test_detached_units_are_counted_apart_until_they_end():
    machine = UnitStateMachine()
    for unit_id in (1, 2):
        machine.add_unit(unit_id)
        machine.add_jobs(unit_id, [("j", "slurm")])
        machine.seal(unit_id)
    machine.detach(1)
    machine.detach(1)
    assert (machine.active, machine.detached, machine.waited_here) == (2, 1, 1)
    machine.apply(update(1, "j", C, exit_code=0))
    assert (machine.active, machine.detached, machine.waited_here) == (1, 0, 1)
    machine.detach(1)  # Ended: nothing to follow.
    assert machine.detached == 0


def test_loaded_units_are_followed_when_unfinished():
    machine = UnitStateMachine()
    machine.load_unit(1, C, "", 0, {"loss": 1.0})
    unit = machine.load_unit(2, R, "", None, {})
    assert (machine.active, machine.detached) == (1, 1)
    assert unit.sealed and unit.detached and not unit.launched_here
    assert machine.units[2].jobs == {}  # Loaded without jobs until asked.
    machine.load_job(2, JobState("j", "local", R))
    assert machine.apply(update(2, "j", C, exit_code=0)).ended
    assert (machine.active, machine.detached) == (0, 0)
    machine.add_unit(3)
    with pytest.raises(ValueError, match="created here"):
        machine.load_job(3, JobState("j", "local"))


# ---- any order of events ------------------------------------------------------------------------------
UNITS, JOBS = (1, 2, 3), ("a", "b", "c")
events = st.one_of(
    st.tuples(st.just("jobs"), st.sampled_from(UNITS), st.lists(st.sampled_from(JOBS), min_size=1, max_size=2)),
    st.tuples(st.just("update"), st.sampled_from(UNITS), st.sampled_from(JOBS), st.sampled_from(list(Status)),
              st.sampled_from(["", "why"]), st.sampled_from([None, {"r": 1}, {"r": 2}])),
    st.tuples(st.just("seal"), st.sampled_from(UNITS), st.sampled_from([None, "generator raised"])),
    st.tuples(st.just("cancel"), st.sampled_from(UNITS)),
    st.tuples(st.just("adopt"), st.sampled_from(UNITS), st.sampled_from(list(Status))),
    st.tuples(st.just("detach"), st.sampled_from(UNITS)),
    st.tuples(st.just("prune"), st.sampled_from(UNITS)),
)


def run(sequence):
    """Applies ``sequence`` and checks the invariants after every event; returns a snapshot of the end state."""
    machine = UnitStateMachine()
    for unit_id in UNITS:
        machine.add_unit(unit_id)
    for unit_id in UNITS[:2]:  # Two groups with jobs to start with; unit 3 starts without.
        machine.add_jobs(unit_id, [("a", "local"), ("b", "local")])
    adopted: set[int] = set()
    for event in sequence:
        before = {u: (unit.status, {n: j.status for n, j in unit.jobs.items()}) for u, unit in machine.units.items()}
        kind, unit_id = event[0], event[1]
        if kind == "jobs":
            try:
                machine.add_jobs(unit_id, [(name, "local") for name in event[2]])
            except (ValueError, RuntimeError):
                pass
            change = NO_CHANGE
        elif kind == "update":
            _, _, job, status, message, results = event
            change = machine.apply(update(unit_id, job, status, message, results=results))
        elif kind == "seal":
            change = machine.seal(unit_id, event[2])
        elif kind == "cancel":
            change = machine.cancel_unlaunched(unit_id, "stopped")
        elif kind == "adopt":
            change = machine.adopt_recorded(unit_id, event[2], "recorded")
            if event[2].is_terminal:  # From here on, the unit's status is the record's, not derived.
                adopted.add(unit_id)
        elif kind == "prune":
            change = machine.prune(unit_id, "pruned")
        else:
            machine.detach(unit_id)
            change = NO_CHANGE
        check(machine, before, change, adopted, event)
    return {u: (unit.status, unit.message, unit.exit_code, dict(unit.results),
                {n: (j.status, j.message) for n, j in unit.jobs.items()}) for u, unit in machine.units.items()}


def check(machine, before, change, adopted, event):
    units = machine.units
    assert machine.active == sum(not unit.status.is_terminal for unit in units.values())
    assert machine.detached == sum(unit.detached and not unit.status.is_terminal for unit in units.values())
    ended = [u for u, unit in units.items() if unit.status.is_terminal and not before[u][0].is_terminal]
    assert change.ended == bool(ended) and len(ended) <= 1
    for unit_id, unit in units.items():
        old_status, old_jobs = before[unit_id]
        if old_status.is_terminal and not (event[0] == "adopt" and event[1] == unit_id):
            assert unit.status is old_status, "a terminal unit status changed"
        for name, status in old_jobs.items():
            if status.is_terminal:
                assert unit.jobs[name].status is status, "a terminal job status changed"
        if unit.status.is_terminal:
            assert unit.sealed
        if unit_id in adopted:
            continue
        statuses = [job.status for job in unit.jobs.values()]
        if unit.status.is_terminal and unit.jobs:
            assert all(status.is_terminal for status in statuses)
            assert unit.status is (F if unit.generator_error else combine(statuses))
        if F in statuses:  # A group fails as a whole.
            assert unit.status in (F, R)
    if event[0] == "update" and event[3] is F and change.job is not None:
        unit = units[event[1]]
        assert {job.name for job in change.stop} == {
            name for name, job in unit.jobs.items() if not job.status.is_terminal}


@settings(max_examples=3000, deadline=None)
@given(st.lists(events, min_size=1, max_size=40))
def test_invariants_hold_for_any_order_of_events(sequence):
    assert run(sequence) == run(sequence)  # Deterministic, too.


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=30), st.data())
def test_repeating_an_event_at_once_changes_nothing(sequence, data):
    machine = UnitStateMachine()
    for unit_id in UNITS:
        machine.add_unit(unit_id)
        machine.add_jobs(unit_id, [(name, "local") for name in JOBS])
    for event in sequence:
        if event[0] != "update":
            continue
        _, unit_id, job, status, message, results = event
        machine.apply(update(unit_id, job, status, message, results=results))
        assert machine.apply(update(unit_id, job, status, message, results=results)) == NO_CHANGE


# ---- a launcher that died --------------------------------------------------------------------------
def loaded_with(*jobs, launcher="host 1 1"):
    """A machine with unit 1 read from the store, unfinished, its ``jobs`` as (name, status)."""
    machine = UnitStateMachine()
    machine.load_unit(1, R, "", None, {}, launcher)
    for name, status in jobs:
        machine.load_job(1, JobState(name, "local", status))
    return machine


def test_jobs_that_will_never_report_fail_the_unit_as_launcher_died():
    machine = loaded_with(("a", R), ("b", P))
    change = machine.launcher_died(1, None, "launcher died")
    unit = machine.units[1]
    assert (unit.status, unit.message) == (F, "launcher died")
    assert change.ended and change.unit is unit and {job.name for job in change.jobs} == {"a", "b"}
    assert (machine.active, machine.detached, machine.adopted) == (0, 0, 0)
    assert machine.launcher_died(1, None, "launcher died") == NO_CHANGE  # Terminal: nothing more.


def test_a_unit_whose_launcher_died_before_recording_jobs_fails():
    machine = loaded_with()
    assert machine.launcher_died(1, None, "launcher died").ended
    assert (machine.units[1].status, machine.units[1].message) == (F, "launcher died")


def test_an_adopted_unit_is_waited_for_and_ends_with_its_jobs():
    machine = loaded_with(("a", R), ("b", P))
    machine.adopt(1)
    machine.adopt(1)  # Twice: counted once.
    assert (machine.active, machine.detached, machine.adopted, machine.waited_here) == (1, 1, 1, 1)
    assert not machine.launcher_died(1, ["b"], "launcher died").ended  # b never started; a runs on.
    change = machine.apply(update(1, "a", C, results={"x": 1}))
    assert change.ended and machine.units[1].status is F  # Any failure fails the unit.
    assert machine.units[1].message == "job 'b': launcher died"  # Not its only reason: a completed.
    assert (machine.active, machine.detached, machine.adopted, machine.waited_here) == (0, 0, 0, 0)


def test_an_adopted_unit_that_completes_keeps_its_results():
    machine = loaded_with(("a", R))
    machine.adopt(1)
    change = machine.apply(update(1, "a", C, results={"x": 1}))
    assert change.ended and machine.units[1].status is C and machine.units[1].results == {"x": 1}
    assert machine.adopted == 0


def test_units_created_here_are_never_adopted():
    machine = machine_with("a")
    machine.adopt(1)
    assert machine.adopted == 0 and not machine.units[1].adopted
