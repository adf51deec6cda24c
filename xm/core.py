"""Experiments and work units: the backend-agnostic part of a launch.

An ``Experiment`` is used as a context manager, ``with`` or ``async with``. ``add()``
creates a work unit from a Job, a JobGroup or an async job generator and returns its
future, which is both awaitable and usable from sync code (``.result()``). No event
loop runs behind the user's back: sync code runs job generators to completion on the
spot; async code schedules them on the running loop.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import sys
from collections.abc import Awaitable, Generator, Mapping, Sequence
from typing import Any, Optional

import attrs
from xmanager.xm.job_blocks import Executable, Job, JobGroup, JobType, Packageable
from xmanager.xm.job_operators import flatten_jobs, unit_parameters
from xmanager.xm.psets import Pset, is_bookkeeping_key, pset_hashes
from xmanager.xm.status import ExperimentUnitStatus


class ExperimentUnitError(RuntimeError):
    """A work unit did not complete as expected."""

    def __init__(self, message: str, *, work_unit: Optional[WorkUnit] = None) -> None:
        super().__init__(message)
        self.work_unit = work_unit


class ExperimentUnitFailedError(ExperimentUnitError):
    """A work unit failed."""


class ExperimentUnitNotCompletedError(ExperimentUnitError):
    """A work unit ended without completing (e.g. it was cancelled)."""


class ExperimentFailedError(ExperimentUnitFailedError):
    """Some work units of an experiment failed; the message lists them, one per line."""

    def __init__(self, message: str, failed: Sequence[WorkUnit]) -> None:
        super().__init__(message, work_unit=failed[0] if failed else None)
        self.failed = list(failed)


class NotFoundError(KeyError):
    """An experiment or work unit id that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class Importance(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@attrs.frozen
class ExperimentUnitRole:
    importance: Importance = Importance.NORMAL


@attrs.frozen
class WorkUnitRole(ExperimentUnitRole):
    tags: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen
class AuxiliaryUnitRole(ExperimentUnitRole):
    termination_delay_secs: float = 0


@attrs.frozen
class PsetInfo:
    """psweep's book-keeping for a unit that is one pset of a sweep."""

    pset_hash: str
    pset_id: str
    run_id: str
    run_seq: int
    pset_seq: int
    calc_dir: Optional[str] = None


@attrs.frozen
class LaunchedJob:
    """A read-only view of a launched job."""

    name: str
    address: Optional[str] = None
    logs: Optional[str] = None


@attrs.define
class ContextAnnotations:
    """Title, tags and notes of an experiment; setters persist through the backend."""

    title: str = ""
    tags: list[str] = attrs.field(factory=list)
    notes: str = ""


@attrs.define
class MetadataContext:
    creator: str
    annotations: ContextAnnotations


def running_loop() -> Any:
    """The running asyncio loop of this thread, without importing asyncio when unused."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class UnitFuture:
    """What ``add()`` returns: the work unit, as a future that is also awaitable.

    In sync code it is already done (``.result()`` returns the unit). In async code a job
    generator runs as a task, and the future is done when the generator returns.
    """

    def __init__(self, unit: WorkUnit, task: Any = None) -> None:
        self._unit = unit
        self._task = task

    def done(self) -> bool:
        return self._task is None or self._task.done()

    def result(self) -> WorkUnit:
        if self._task is not None:
            self._task.result()  # Raises the generator's error, or InvalidStateError if pending.
        return self._unit

    def exception(self) -> Optional[BaseException]:
        return None if self._task is None else self._task.exception()

    def __await__(self) -> Generator[Any, None, WorkUnit]:
        if self._task is not None:
            yield from self._task.__await__()
        return self._unit

    def __repr__(self) -> str:
        return f"UnitFuture({self._unit!r}, done={self.done()})"


class WorkUnitCompletedAwaitable:
    """Returned by ``WorkUnit.wait_until_complete()``; carries ``.work_unit``."""

    def __init__(self, work_unit: WorkUnit, awaitable: Optional[Awaitable[Any]]) -> None:
        self.work_unit = work_unit
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, None, WorkUnit]:
        if self._awaitable is not None:
            yield from self._awaitable.__await__()
        self.work_unit._raise_if_unsuccessful()
        return self.work_unit


class WorkUnit(abc.ABC):
    """One set of jobs (usually one parameter set) in an experiment."""

    def __init__(self, experiment: Experiment, work_unit_id: int, role: ExperimentUnitRole, identity: str) -> None:
        self.experiment = experiment
        self.work_unit_id = work_unit_id
        self.role = role
        self.identity = identity

    @property
    def experiment_id(self) -> int:
        return self.experiment.experiment_id

    @property
    def experiment_unit_name(self) -> str:
        return f"{self.experiment_id}_{self.work_unit_id}"

    def get_full_job_name(self, job_name: str) -> str:
        return f"{self.experiment_unit_name}_{job_name}"

    def add(self, job: Job | JobGroup, args: Any = None, *, identity: str = "") -> UnitFuture:
        """Adds jobs to this unit (from inside a job generator)."""
        del identity
        if not isinstance(job, (Job, JobGroup)):
            raise TypeError(f"WorkUnit.add takes a Job or JobGroup, got {type(job).__name__}")
        self._launch_jobs(flatten_jobs(job, args), gang=isinstance(job, JobGroup))
        return UnitFuture(self)

    def wait_until_complete(self) -> WorkUnitCompletedAwaitable:
        """Waits for the unit. Sync code blocks here; async code awaits the result.

        Raises ``ExperimentUnitFailedError`` (or ``...NotCompletedError`` when cancelled).
        """
        if running_loop() is None:
            self._wait_blocking()
            self._raise_if_unsuccessful()
            return WorkUnitCompletedAwaitable(self, None)
        return WorkUnitCompletedAwaitable(self, self._wait_async())

    def _raise_if_unsuccessful(self) -> None:
        status = self.get_status()
        if status.is_failed:
            raise ExperimentUnitFailedError(
                f"work unit {self.work_unit_id} failed: {status.message}", work_unit=self
            )
        if status.is_cancelled:
            raise ExperimentUnitNotCompletedError(
                f"work unit {self.work_unit_id} was cancelled: {status.message}", work_unit=self
            )

    @property
    @abc.abstractmethod
    def args(self) -> dict[str, Any]:
        """The unit's parameters (its parameter set)."""

    @abc.abstractmethod
    def get_status(self) -> ExperimentUnitStatus: ...

    @abc.abstractmethod
    def stop(self, *, mark_as_failed: bool = False, mark_as_completed: bool = False, message: str = "") -> None: ...

    @property
    @abc.abstractmethod
    def launched_jobs(self) -> list[LaunchedJob]: ...

    @abc.abstractmethod
    def _launch_jobs(self, jobs: list[Job], *, gang: bool) -> None: ...

    @abc.abstractmethod
    def _generator_finished(self, error: Optional[BaseException]) -> None: ...

    @abc.abstractmethod
    def _wait_blocking(self) -> None: ...

    @abc.abstractmethod
    async def _wait_async(self) -> None: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.experiment_unit_name} {self.get_status().status.value}>"


class Experiment(abc.ABC):
    """A set of work units with metadata; a context manager (sync or async)."""

    experiment_id: int

    # ---- packaging -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def package(cls, packageables: Sequence[Packageable] = ()) -> list[Executable]:
        """Packages every request, validating early; returns executables in order."""

    @classmethod
    async def package_async(cls, packageable: Packageable) -> Executable:
        return cls.package([packageable])[0]

    # ---- adding work -----------------------------------------------------------
    def add(
        self,
        job: JobType,
        args: Any = None,
        *,
        role: ExperimentUnitRole = WorkUnitRole(),
        identity: str = "",
    ) -> UnitFuture:
        """Creates a work unit running ``job`` with ``args`` and launches it.

        ``job`` is a Job, a JobGroup, or ``async def generator(work_unit, **args)``.
        Returns a future of the unit: ``await`` it, or call ``.result()``.
        """
        return self._add(job, args, role, identity, None)

    def add_sweep(
        self,
        job: JobType,
        params: Sequence[Mapping[str, Any]],
        *,
        skip_completed: bool = False,
        role: ExperimentUnitRole = WorkUnitRole(),
    ) -> list[UnitFuture]:
        """Adds one unit per pset of ``params`` (psets as from ``xm.pgrid``), as ``add(job, pset)`` would.

        Every unit records the pset's hash, a pset id, and this call's run id and sequence
        numbers, which ``to_dataframe()`` shows as psweep's ``_pset_*``/``_run_*`` columns.
        Keys starting or ending with ``_`` are book-keeping: they are not passed to the job.
        With ``skip_completed``, psets whose hash already completed in this experiment are
        skipped (resuming a sweep). Executors may submit the units in batches.
        """
        import uuid

        psets: list[Pset] = []
        for index, pset in enumerate(params):
            if not isinstance(pset, Mapping):
                raise TypeError(f"add_sweep() params[{index}] is {type(pset).__name__}, not a dict of parameters")
            psets.append(dict(pset))
        hashes = pset_hashes(psets)
        done = self._completed_pset_hashes() if skip_completed else set()
        run_seq, pset_seq = self._sweep_counters()
        run_id = str(uuid.uuid4())
        futures = []
        with self._launch_batch():
            for pset, digest in zip(psets, hashes):
                if digest in done:
                    continue
                info = PsetInfo(digest, str(uuid.uuid4()), run_id, run_seq, pset_seq)
                pset_seq += 1
                args = {key: value for key, value in pset.items() if not is_bookkeeping_key(key)}
                futures.append(self._add(job, args, role, "", info))
        return futures

    def _launch_batch(self) -> contextlib.AbstractContextManager[None]:
        """Units added inside may be launched together when it ends (backends submit arrays)."""
        return contextlib.nullcontext()

    def _add(
        self, job: JobType, args: Any, role: ExperimentUnitRole, identity: str, pset: Optional[PsetInfo]
    ) -> UnitFuture:
        if isinstance(job, (Job, JobGroup)):
            jobs = flatten_jobs(job, args)  # Validates before a unit is created.
            params = unit_parameters(jobs, grouped=isinstance(job, JobGroup))
            unit = self._create_work_unit(role, identity, params, pset)
            try:
                unit._launch_jobs(jobs, gang=isinstance(job, JobGroup))
            except BaseException as error:  # The unit fails with the reason; the caller sees it too.
                unit._generator_finished(error if isinstance(error, Exception) else None)
                raise
            unit._generator_finished(None)
            return UnitFuture(unit)
        if not callable(job):
            raise TypeError(f"add() takes a Job, a JobGroup or a job generator, got {type(job).__name__}")
        if args is not None and not isinstance(args, Mapping):
            raise TypeError("args for a job generator must be a mapping of keyword arguments")
        unit = self._create_work_unit(role, identity, dict(args or {}), pset)
        coroutine = job(unit, **(args or {}))
        if coroutine is None:  # A plain function that added jobs synchronously.
            unit._generator_finished(None)
            return UnitFuture(unit)
        loop = running_loop()
        if loop is None:
            import asyncio

            error: Optional[BaseException] = None
            try:
                asyncio.run(_as_coroutine(coroutine))
            except Exception as exc:  # Recorded on the unit; reported at the end.
                error = exc
            unit._generator_finished(error)
            return UnitFuture(unit)
        task = loop.create_task(self._run_generator(unit, coroutine))
        self._track_task(task)
        return UnitFuture(unit, task)

    @staticmethod
    async def _run_generator(unit: WorkUnit, coroutine: Awaitable[Any]) -> None:
        try:
            await coroutine
        except Exception as error:
            unit._generator_finished(error)
            raise
        unit._generator_finished(None)

    @abc.abstractmethod
    def _create_work_unit(
        self, role: ExperimentUnitRole, identity: str, params: dict[str, Any], pset: Optional[PsetInfo] = None
    ) -> WorkUnit:
        """A new unit with its parameters (the args that describe it) and, in a sweep, its pset."""

    def _completed_pset_hashes(self) -> set[str]:
        """Hashes of psets that completed in this experiment (what a resumed sweep skips)."""
        return set()

    def _sweep_counters(self) -> tuple[int, int]:
        """The next ``run_seq`` and ``pset_seq`` for a sweep added to this experiment."""
        return 0, 0

    @abc.abstractmethod
    def _track_task(self, task: Any) -> None: ...

    # ---- reading ---------------------------------------------------------------
    @property
    @abc.abstractmethod
    def work_units(self) -> dict[int, WorkUnit]: ...

    @property
    def work_unit_count(self) -> int:
        return len(self.work_units)

    @property
    @abc.abstractmethod
    def context(self) -> MetadataContext: ...


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def run_in_asyncio_loop(function: Any) -> Any:
    """Turns an ``async def`` (e.g. an async ``main``) into a sync function."""
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import asyncio

        return asyncio.run(function(*args, **kwargs))

    return wrapper


__all__ = [
    "AuxiliaryUnitRole",
    "ContextAnnotations",
    "Experiment",
    "ExperimentFailedError",
    "ExperimentUnitError",
    "ExperimentUnitFailedError",
    "ExperimentUnitNotCompletedError",
    "ExperimentUnitRole",
    "Importance",
    "LaunchedJob",
    "MetadataContext",
    "NotFoundError",
    "UnitFuture",
    "WorkUnit",
    "WorkUnitCompletedAwaitable",
    "WorkUnitRole",
    "run_in_asyncio_loop",
]
