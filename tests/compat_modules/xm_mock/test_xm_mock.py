"""xmanager.xm_mock: testing a launch script without launching anything."""

import asyncio

import pytest
from xmanager import xm, xm_mock
from xmanager.xm import core


def _job(**kwargs):
    return xm.Job(xm_mock.MockExecutable(), xm_mock.MockExecutor(), **kwargs)


def test_records_jobs_with_args_applied_and_names_set():
    with xm_mock.MockExperiment() as experiment:
        experiment.add(_job(args={"lr": 0.1}), args={"args": {"lr": 0.2}})
        experiment.add(xm.JobGroup(train=_job(), evaluate=_job(name="eval")), args={"train": {"args": ["-v"]}})
    first, train, evaluate = experiment.launched_jobs
    assert first.args.to_dict() == {"lr": 0.2}
    assert (train.name, train.args.to_list(str)) == ("train", ["-v"])
    assert evaluate.name == "eval"
    assert experiment.launched_jobs_args == [
        {"args": {"lr": 0.2}},
        {"train": {"args": ["-v"]}},
    ]
    assert experiment.work_unit_count == 2
    assert [unit.work_unit_id for unit in experiment.work_units.values()] == [1, 2]
    assert [job.name for job in experiment.work_units[2].launched_jobs] == ["train", "eval"]


def test_unit_arguments_are_deduced_from_the_jobs_when_add_has_none():
    with xm_mock.MockExperiment() as experiment:
        experiment.add(_job(args={"seed": 1}, env_vars={"A": "1"}))
        experiment.add(_job())
    assert experiment.launched_jobs_args == [{"args": {"seed": 1}, "env_vars": {"A": "1"}}, {}]


def test_our_shorthand_for_job_args_works_in_the_mock_too():
    with xm_mock.MockExperiment() as experiment:
        experiment.add(_job(args={"lr": 0.1, "steps": 3}), args={"lr": 0.5})
    assert experiment.launched_jobs[0].args.to_dict() == {"lr": 0.5, "steps": 3}


def test_generator_errors_are_raised_when_the_block_ends_and_the_unit_is_failed():
    async def broken(work_unit):
        raise KeyError("missing")

    experiment = xm_mock.MockExperiment()
    with pytest.raises(KeyError, match="missing"):
        with experiment:
            experiment.add(broken)
    status = experiment.work_units[1].get_status()
    assert status.is_failed and "missing" in status.message


def test_wait_until_complete_reports_a_failed_launch():
    async def broken(work_unit):
        raise KeyError("missing")

    async def main():
        async with xm_mock.MockExperiment() as experiment:
            experiment.add(broken)
            with pytest.raises(xm.ExperimentUnitError):
                await experiment.work_units[1].wait_until_complete()

    with pytest.raises(KeyError):
        asyncio.run(main())


def test_auxiliary_units_and_roles():
    with xm_mock.MockExperiment() as experiment:
        experiment.add(xm.AuxiliaryUnitJob(_job(name="tb"), termination_delay_secs=30))
        experiment.add(_job(), role=xm.WorkUnitRole(tags=("a",)))
    [aux] = experiment.auxiliary_units
    assert aux.role == xm.AuxiliaryUnitRole(termination_delay_secs=30)
    assert [job.name for job in aux.launched_jobs] == ["tb"]
    assert list(experiment.work_units) == [2]


def test_add_returns_an_awaitable_future_of_the_unit():
    async def main():
        async with xm_mock.MockExperiment() as experiment:
            unit = await experiment.add(_job())
            assert unit is experiment.work_units[1]
            assert str(unit) == "WorkUnit(experiment_id=1, work_unit_id=1)"
            assert (await unit.wait_until_complete()) is unit

    asyncio.run(main())

    with xm_mock.MockExperiment() as experiment:
        future = experiment.add(_job())
        assert future.result(timeout=10) is experiment.work_units[1]


def test_current_experiment_and_unit_inside_a_generator():
    seen = []

    async def generator(work_unit):
        seen.append((core._current_experiment_unit.get(), core.get_xid_from_context()))

    with xm_mock.MockExperiment() as experiment:
        assert core.get_xid_from_context() == 1
        experiment.add(generator)
    assert seen == [(experiment.work_units[1], 1)]
    assert core.get_xid_from_context() == -1


def test_packaging_gives_mock_executables():
    packageable = xm.binary(xm_mock.MockExecutor.Spec(), "/bin/true")
    [executable] = xm_mock.MockExperiment.package([packageable])
    assert isinstance(executable, xm_mock.MockExecutable)
    queued = xm_mock.MockExperiment.package_async(packageable)
    xm_mock.MockExperiment.package()

    async def wait():
        return await queued

    assert isinstance(asyncio.run(wait()), xm_mock.MockExecutable)


def test_metadata_context_in_memory():
    experiment = xm_mock.MockExperiment()
    annotations = experiment.context.annotations
    annotations.set_title("sweep")
    annotations.add_tags("a", "b", "a")
    annotations.remove_tags("b")
    annotations.set_notes("n")
    assert (annotations.title, annotations.tags, annotations.notes) == ("sweep", {"a"}, "n")
    assert experiment.context.creator == "unknown"


def test_mock_constraint_and_executable_names():
    assert xm_mock.MockConstraint("same") == xm_mock.MockConstraint("same")
    first, second = xm_mock.MockExecutable(), xm_mock.MockExecutable()
    assert int(second.name) == int(first.name) + 1


def test_sync_with_inside_a_coroutine_is_refused():
    async def main():
        with xm_mock.MockExperiment():
            pass

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(main())
