"""XManager's protocol in xm.core: a backend whose units launch as tasks on the experiment's loop."""

import asyncio
import logging
import threading

import pytest
from xm_fakes import make_job
from xmanager import xm


class TaskUnit(xm.WorkUnit):
    def __init__(self, experiment, create_task, args, role, work_unit_id):
        super().__init__(experiment, create_task, args, role)
        self.work_unit_id = work_unit_id
        self.groups = []
        self.stopped = []

    async def _launch_job_group(self, job_group, args_view, identity):
        await asyncio.sleep(0)
        self.groups.append((threading.current_thread().name, list(job_group.jobs), args_view))

    async def _wait_until_complete(self):
        pass

    def stop(self, *, mark_as_failed=False, mark_as_completed=False, message=None):
        self.stopped.append((mark_as_failed, message))


class TaskExperiment(xm.Experiment):
    experiment_id = 3

    def __init__(self):
        self.units = {}

    def _create_experiment_unit(self, args, role, identity):
        unit = TaskUnit(self, self._create_task, args, role, len(self.units) + 1)
        self.units[unit.work_unit_id] = unit

        async def created():
            return unit

        return created()

    @property
    def work_units(self):
        return self.units


def test_sync_launches_run_on_the_experiments_own_thread():
    experiment = TaskExperiment()
    with experiment:
        future = experiment.add(make_job("a"), args={"args": {"n": 1}})
        unit = future.result(timeout=10)
    [(thread, names, view)] = unit.groups
    assert thread == "xm-experiment-loop" and names == ["a"] and view == {"args": {"n": 1}}
    assert experiment._event_loop.is_closed()


def test_async_launches_run_on_the_callers_loop():
    async def main():
        experiment = TaskExperiment()
        async with experiment:
            unit = await experiment.add(xm.JobGroup(x=make_job(), y=make_job()))
        return unit

    unit = asyncio.run(main())
    assert [names for _, names, _ in unit.groups] == [["x", "y"]]


def test_first_launch_error_is_raised_and_the_unit_marked_failed(caplog):
    async def fails(work_unit, code):
        raise ValueError(f"bad {code}")

    experiment = TaskExperiment()
    with pytest.raises(ValueError, match="bad 1"):
        with experiment:
            experiment.add(fails, args={"code": 1})
            experiment.units  # noqa: B018 - the block goes on after a failed launch.
    assert experiment.units[1].stopped == [(True, "launch failed: ValueError('bad 1')")]


def test_debug_interrupt_stops_the_unit_and_ends_the_block():
    async def interrupted(work_unit):
        raise xm.DebugInterrupt()

    experiment = TaskExperiment()
    with pytest.raises(xm.DebugInterrupt):
        with experiment:
            experiment.add(interrupted)
    assert experiment.units[1].stopped == [(False, "launch interrupted by debug mode")]


def test_cancelled_launches_are_counted(caplog):
    experiment = TaskExperiment()
    with caplog.at_level(logging.WARNING):
        with experiment:
            futures = [experiment.add(make_job()) for _ in range(5)]
            cancelled = sum(future.cancel() for future in futures)
    if cancelled:
        assert f"Ignored {cancelled} cancelled task" in caplog.text


def test_an_experiment_without_work_units_warns(caplog):
    experiment = TaskExperiment()
    with caplog.at_level(logging.WARNING):
        with experiment:
            experiment.add(make_job(), role=xm.AuxiliaryUnitRole(termination_delay_secs=1))
    assert "No work units were added" in caplog.text


def test_adding_outside_the_context_is_refused():
    with pytest.raises(RuntimeError, match="inside `with experiment:`"):
        TaskExperiment().add(make_job())
