"""Experiment.add / WorkUnit behaviour of the backend-agnostic core, with an in-memory fake backend."""

import asyncio

import pytest
from xm_fakes import FakeSpec, make_job
from xmanager import xm
from xmanager.xm import core


class FakeWorkUnit(xm.WorkUnit):
    def __init__(self, experiment, work_unit_id, role, identity, params):
        super().__init__(experiment, role=role, identity=identity)
        self.work_unit_id = work_unit_id
        self.params = params
        self.launches = []
        self.finished = []
        self.status = xm.ExperimentUnitStatus(xm.Status.COMPLETED)
        self.waited = []

    @property
    def args(self):
        return self.params

    def get_status(self):
        return self.status

    def stop(self, *, mark_as_failed=False, mark_as_completed=False, message=""):
        self.status = xm.ExperimentUnitStatus(xm.Status.CANCELLED, message)

    @property
    def launched_jobs(self):
        return [xm.LaunchedJob(name=job.name) for jobs, _ in self.launches for job in jobs]

    def _launch_jobs(self, jobs, *, gang):
        self.launches.append((jobs, gang))

    def _generator_finished(self, error):
        self.finished.append(error)

    def _wait_blocking(self):
        self.waited.append("blocking")

    async def _wait_async(self):
        await asyncio.sleep(0)
        self.waited.append("async")


class FakeExperiment(xm.Experiment):
    def __init__(self):
        self.experiment_id = 7
        self.units = {}
        self.tasks = []

    @classmethod
    def package(cls, packageables=()):
        return [xm.Executable(name=p.executable_spec.name, args=p.args, env_vars=p.env_vars) for p in packageables]

    def _create_work_unit(self, role, identity, params, pset=None):
        unit = FakeWorkUnit(self, len(self.units) + 1, role, identity, params)
        self.units[unit.work_unit_id] = unit
        return unit

    def _track_task(self, task):
        self.tasks.append(task)

    @property
    def work_units(self):
        return dict(self.units)

    @property
    def context(self):
        return xm.MetadataContext(creator="me", annotations=xm.ContextAnnotations())


@pytest.fixture
def experiment():
    return FakeExperiment()


def test_add_job_creates_unit_with_parameters(experiment):
    future = experiment.add(make_job("trainer", args={"lr": 0.1, "steps": 5}), args={"lr": 0.2})
    assert future.done()
    unit = future.result()
    assert experiment.work_unit_count == 1
    assert unit.args == {"lr": 0.2, "steps": 5}
    [(jobs, gang)] = unit.launches
    assert gang is False
    assert [(job.name, job.args.to_list()) for job in jobs] == [("trainer", ["--lr=0.2", "--steps=5"])]
    assert unit.finished == [None]
    assert future.exception() is None
    assert unit.experiment_unit_name == "7_1"
    assert unit.get_full_job_name("trainer") == "7_1_trainer"
    assert unit.experiment_id == 7


def test_add_job_group_is_gang_with_prefixed_parameters(experiment):
    group = xm.JobGroup(server=make_job(args={"port": 1}), client=make_job())
    unit = experiment.add(group, args={"client": {"args": {"target": "s"}}}).result()
    [(jobs, gang)] = unit.launches
    assert gang is True
    assert [job.name for job in jobs] == ["server", "client"]
    assert unit.args == {"server.port": 1, "client.target": "s"}


def test_add_validates_before_creating_a_unit(experiment):
    group = xm.JobGroup(server=make_job())
    with pytest.raises(ValueError, match="'srv'"):
        experiment.add(group, args={"srv": {}})
    assert experiment.work_unit_count == 0


def test_add_rejects_non_jobs(experiment):
    with pytest.raises(TypeError):
        experiment.add(xm.Executable(name="x"))

    async def generator(unit, **kwargs):
        pass

    with pytest.raises(TypeError, match="mapping"):
        experiment.add(generator, args=["x"])
    assert experiment.work_unit_count == 0


def test_non_async_generator_rejected_before_a_unit_exists(experiment):
    with pytest.raises(ValueError, match="generator must be an async function"):
        experiment.add(lambda unit: None)
    assert experiment.work_unit_count == 0


def test_sync_job_generator_runs_to_completion(experiment):
    job = make_job("w")

    async def generator(work_unit, lr, steps=1):
        await asyncio.sleep(0)
        work_unit.add(job, args={"lr": lr, "steps": steps})

    future = experiment.add(generator, args={"lr": 0.5})
    assert future.done()
    unit = future.result()
    assert unit.args == {"lr": 0.5}
    [(jobs, gang)] = unit.launches
    assert [job.args.to_list() for job in jobs] == [["--lr=0.5", "--steps=1"]]
    assert gang is False
    assert unit.finished == [None]
    assert job.args.to_list() == []


def test_sync_job_generator_error_is_recorded_on_the_unit(experiment):
    async def generator(work_unit):
        raise RuntimeError("boom")

    unit = experiment.add(generator).result()
    [error] = unit.finished
    assert isinstance(error, RuntimeError) and str(error) == "boom"


def test_generator_sees_its_unit_and_experiment_as_current(experiment):
    seen = []

    async def generator(work_unit):
        seen.append((core._current_experiment_unit.get(), core._current_experiment.get(), core.get_xid_from_context()))

    unit = experiment.add(generator).result()
    assert seen == [(unit, experiment, 7)]
    assert core._current_experiment_unit.get() is None and core.get_xid_from_context() == -1


def test_work_unit_add_runs_a_generator_before_the_unit_is_finished(experiment):
    async def inner(work_unit, n):
        work_unit.add(make_job(), args={"n": n})

    async def outer(work_unit):
        work_unit.add(inner, args={"n": 4})

    unit = experiment.add(outer).result()
    assert [job.args.to_list() for jobs, _ in unit.launches for job in jobs] == [["--n=4"]]
    assert unit.finished == [None]


def test_auxiliary_unit_job_takes_its_role(experiment):
    unit = experiment.add(xm.AuxiliaryUnitJob(make_job("tb"), termination_delay_secs=5)).result()
    assert unit.role == xm.AuxiliaryUnitRole(termination_delay_secs=5)
    [(jobs, _)] = unit.launches
    assert [job.name for job in jobs] == ["tb"]


def test_async_job_generator_runs_as_task(experiment):
    started = []

    async def generator(work_unit, n):
        started.append(n)
        await asyncio.sleep(0)
        work_unit.add(make_job(), args={"n": n})

    async def main():
        future = experiment.add(generator, args={"n": 3})
        assert not future.done()
        assert started == []  # Scheduled on the running loop, not run on the spot.
        unit = await future
        assert future.done()
        assert future.result() is unit
        return unit

    unit = asyncio.run(main())
    assert started == [3]
    assert len(experiment.tasks) == 1
    assert unit.finished == [None]
    assert [job.args.to_list() for jobs, _ in unit.launches for job in jobs] == [["--n=3"]]


def test_async_job_generator_error_propagates(experiment):
    async def generator(work_unit):
        await asyncio.sleep(0)
        raise KeyError("bad")

    async def main():
        future = experiment.add(generator)
        with pytest.raises(KeyError):
            await future
        return future

    future = asyncio.run(main())
    assert isinstance(future.exception(), KeyError)
    unit = experiment.work_units[1]
    assert len(unit.finished) == 1 and isinstance(unit.finished[0], KeyError)


def test_wait_until_complete_sync(experiment):
    unit = experiment.add(make_job()).result()
    awaitable = unit.wait_until_complete()
    assert awaitable.work_unit is unit
    assert unit.waited == ["blocking"]

    unit.status = xm.ExperimentUnitStatus(xm.Status.FAILED, "exit 1")
    with pytest.raises(xm.ExperimentUnitFailedError, match="exit 1") as info:
        unit.wait_until_complete()
    assert info.value.work_unit is unit

    unit.status = xm.ExperimentUnitStatus(xm.Status.CANCELLED, "stopped")
    with pytest.raises(xm.ExperimentUnitNotCompletedError, match="stopped"):
        unit.wait_until_complete()


def test_wait_until_complete_async(experiment):
    unit = experiment.add(make_job()).result()

    async def main():
        assert await unit.wait_until_complete() is unit
        unit.status = xm.ExperimentUnitStatus(xm.Status.FAILED, "oom")
        with pytest.raises(xm.ExperimentUnitFailedError, match="oom"):
            await unit.wait_until_complete()

    asyncio.run(main())
    assert unit.waited == ["async", "async"]


def test_error_types():
    assert issubclass(xm.ExperimentFailedError, xm.ExperimentUnitFailedError)
    assert issubclass(xm.ExperimentUnitNotCompletedError, xm.ExperimentUnitError)
    error = xm.ExperimentFailedError("two failed", failed=["u1", "u2"])
    assert error.failed == ["u1", "u2"]
    assert error.work_unit == "u1"
    assert xm.ExperimentFailedError("none", failed=[]).work_unit is None
    assert str(xm.NotFoundError("experiment 3 not found")) == "experiment 3 not found"
    assert isinstance(xm.NotFoundError("x"), KeyError)


def test_roles():
    assert xm.WorkUnitRole(tags=["a", "b"]).tags == ("a", "b")
    assert xm.WorkUnitRole().importance is xm.Importance.NORMAL
    assert xm.AuxiliaryUnitRole(termination_delay_secs=5).termination_delay_secs == 5


def test_run_in_asyncio_loop():
    @xm.run_in_asyncio_loop
    async def main(a, b=2):
        await asyncio.sleep(0)
        return a + b

    assert main(1, b=3) == 4
    assert main.__name__ == "main"


def test_package_async_uses_package(experiment):
    packageable = xm.binary(FakeSpec(), "/bin/tool", args={"a": 1})
    executable = asyncio.run(FakeExperiment.package_async(packageable))
    assert executable.name == "tool"
    assert executable.args.to_list() == ["--a=1"]
