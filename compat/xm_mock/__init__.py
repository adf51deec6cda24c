"""In-memory stand-ins for an experiment, for testing launch scripts (XManager's ``xm_mock``).

``MockExperiment`` runs ``add()`` through the real launch logic (args applied, jobs named, job
generators awaited, errors raised when the ``with`` block ends) but launches nothing: the jobs
it would have launched are appended to ``launched_jobs`` and the unit arguments to
``launched_jobs_args``. Units complete at once. ``MockExecutable``, ``MockExecutor`` and
``MockConstraint`` fill jobs and groups in tests::

    with xm_mock.MockExperiment() as experiment:
        experiment.add(xm.Job(xm_mock.MockExecutable(), xm_mock.MockExecutor(), args={'lr': 1}))
    assert experiment.launched_jobs[0].args.to_dict() == {'lr': 1}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Optional

import attrs
from xmanager.xm import core, id_predictor, job_blocks, metadata_context
from xmanager.xm.async_packager import AsyncPackager
from xmanager.xm.futures import UnitFuture
from xmanager.xm.status import ExperimentUnitStatus, Status


class MockContextAnnotations(metadata_context.ContextAnnotations):
    """Annotations kept in memory; ``tags`` is a set, as in XManager's mock."""

    def __init__(self) -> None:
        super().__init__()
        self._tag_set: set[str] = set()

    @property  # type: ignore[override]  # A set where the base has a list: XManager's mock does the same.
    def tags(self) -> set[str]:
        return self._tag_set

    @tags.setter
    def tags(self, value: Any) -> None:
        self._tag_set = set(value)

    def add_tags(self, *tags: str) -> None:
        self._tag_set.update(tags)

    def remove_tags(self, *tags: str) -> None:
        self._tag_set.difference_update(tags)


class MockMetadataContext(metadata_context.MetadataContext):
    """Metadata kept in memory, created by 'unknown'."""

    def __init__(self) -> None:
        super().__init__(creator="unknown", annotations=MockContextAnnotations())


class MockExperimentUnit(core.WorkUnit):
    """A unit that records what it would launch in its experiment's lists; it is complete at once."""

    def __init__(
        self,
        experiment: core.Experiment,
        work_unit_id_predictor: id_predictor.Predictor,
        create_task: Callable[[Awaitable[Any]], Any],
        launched_jobs: list[job_blocks.JobType],
        launched_jobs_args: list[Optional[Mapping[str, Any]]],
        args: Optional[Mapping[str, Any]],
        role: core.ExperimentUnitRole,
        identity: str = "",
    ) -> None:
        super().__init__(experiment, create_task, args, role, identity)
        self._work_unit_id = work_unit_id_predictor.reserve_id()
        self._experiment_jobs = launched_jobs
        self._experiment_jobs_args = launched_jobs_args
        self._jobs: list[job_blocks.Job] = []
        self._status = ExperimentUnitStatus(Status.COMPLETED)

    @property
    def work_unit_id(self) -> int:  # type: ignore[override]
        return self._work_unit_id

    @property
    def experiment_unit_name(self) -> str:
        return f"{self.experiment_id}_{self._work_unit_id}"

    async def _launch_job_group(
        self, job_group: job_blocks.JobGroup, args_view: Optional[Mapping[str, Any]], identity: str
    ) -> None:
        """Records the group's jobs (named, args applied) and the unit's arguments."""
        self._jobs.extend(job_group.jobs.values())  # type: ignore[arg-type]
        self._experiment_jobs.extend(job_group.jobs.values())
        self._experiment_jobs_args.append(args_view)

    async def _wait_until_complete(self) -> None:
        """A mock unit has nothing to wait for."""

    @property
    def launched_jobs(self) -> list[core.LaunchedJob]:
        return [core.LaunchedJob(name=job.name) for job in self._jobs]

    def get_status(self) -> ExperimentUnitStatus:
        return self._status

    def stop(self, *, mark_as_failed: bool = False, mark_as_completed: bool = False, message: Optional[str] = None) -> None:
        """Records the stop as the unit's status: failed, completed or cancelled."""
        status = Status.FAILED if mark_as_failed else Status.COMPLETED if mark_as_completed else Status.CANCELLED
        self._status = ExperimentUnitStatus(status, message or "")


class MockExecutable(job_blocks.Executable):
    """An executable named by a running counter ('0', '1', ...)."""

    counter = 0

    def __init__(self) -> None:
        super().__init__(name=f"{MockExecutable.counter}")
        MockExecutable.counter += 1


class MockExecutor(job_blocks.Executor):
    """An executor that runs nothing."""

    Spec = job_blocks.ExecutorSpec  # noqa: N815 - XManager's name.


@attrs.define
class MockConstraint(job_blocks.Constraint):
    """A named constraint, for tests of constraint handling."""

    id: str


class MockExperiment(core.Experiment):
    """An experiment (id 1) that launches nothing and records what it would launch.

    ``launched_jobs`` lists the jobs in launch order, ``launched_jobs_args`` each launch's unit
    arguments; ``work_units`` and ``auxiliary_units`` hold the units by role. ``package()``
    gives a ``MockExecutable`` per packageable.
    """

    _async_packager = AsyncPackager(lambda packageables: [MockExecutable() for _ in packageables])

    def __init__(self) -> None:
        super().__init__()
        self.launched_jobs: list[job_blocks.JobType] = []
        self.launched_jobs_args: list[Optional[Mapping[str, Any]]] = []
        self._work_unit_id_predictor = id_predictor.Predictor(1)
        self._work_units: dict[int, MockExperimentUnit] = {}
        self._auxiliary_units: list[MockExperimentUnit] = []
        self._context = MockMetadataContext()

    def _create_experiment_unit(
        self,
        args: Optional[Mapping[str, Any]],
        role: core.ExperimentUnitRole = core.WorkUnitRole(),  # noqa: B008 - a frozen value.
        identity: str = "",
    ) -> Awaitable[MockExperimentUnit]:
        if not isinstance(role, (core.WorkUnitRole, core.AuxiliaryUnitRole)):
            raise TypeError(f"unsupported role: {role!r}")
        unit = MockExperimentUnit(
            self, self._work_unit_id_predictor, self._create_task, self.launched_jobs, self.launched_jobs_args,
            args, role, identity,
        )
        if isinstance(role, core.WorkUnitRole):
            self._work_units[unit.work_unit_id] = unit
        else:
            self._auxiliary_units.append(unit)
        return UnitFuture.resolved(unit)

    def _get_experiment_unit(
        self,
        experiment_id: int,
        identity: str,
        role: core.ExperimentUnitRole,
        args: Optional[Mapping[str, Any]] = None,
    ) -> Awaitable[MockExperimentUnit]:
        for unit in [*self._work_units.values(), *self._auxiliary_units]:
            if unit.identity == identity:
                return UnitFuture.resolved(unit)
        raise core.NotFoundError(f"no unit with identity {identity!r} in the mock experiment")

    def _should_reload_experiment_unit(self, role: core.ExperimentUnitRole) -> bool:
        return False

    @property
    def experiment_id(self) -> int:  # type: ignore[override]
        return 1

    @property
    def work_units(self) -> Mapping[int, MockExperimentUnit]:
        return self._work_units

    @property
    def work_unit_count(self) -> int:
        return len(self._work_units)

    @property
    def auxiliary_units(self) -> list[MockExperimentUnit]:
        return self._auxiliary_units

    @property
    def context(self) -> MockMetadataContext:
        return self._context


__all__ = [
    "MockConstraint", "MockContextAnnotations", "MockExecutable", "MockExecutor", "MockExperiment",
    "MockExperimentUnit", "MockMetadataContext",
]
