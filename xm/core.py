"""Experiments and their units: the backend-agnostic part of a launch.

An ``Experiment`` is used as a context manager, ``with`` or ``async with``. ``add()`` creates
an experiment unit (a work unit, or an auxiliary unit for its role) from a Job, a JobGroup,
an async job generator or a backend's JobConfig, and returns a :class:`UnitFuture`.

Backends implement one of two protocols:

- XManager's: ``_create_experiment_unit`` returns an awaitable unit, and units implement the
  async ``_launch_job_group``. Every launch is a task on the experiment's event loop, which
  ``with`` runs on a thread of its own (``async with`` uses the caller's loop); leaving the
  block waits for the tasks and raises the first error. ``xmanager.xm_mock`` works this way.
- Ours, for fast local sweeps: ``_create_work_unit`` creates the unit synchronously with its
  parameters, and units implement ``_launch_jobs``. Jobs launch in place; job generators run
  to completion on the spot in sync code, or as tasks of the caller's loop in async code.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import contextvars
import enum
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Optional

import attrs
from xmanager.xm import job_operators
from xmanager.xm.converters import str_tuple
from xmanager.xm.futures import UnitFuture, WorkUnitCompletedAwaitable, await_launch, running_loop
from xmanager.xm.job_blocks import Executable, Job, JobConfig, JobGroup, JobType, Packageable
from xmanager.xm.metadata_context import ContextAnnotations, MetadataContext
from xmanager.xm.psets import Pset, is_bookkeeping_key, pset_hashes
from xmanager.xm.status import ExperimentUnitStatus
from xmanager.xm.utils import run_in_asyncio_loop

# The experiment whose context is entered, and the unit whose job generator runs.
_current_experiment: contextvars.ContextVar[Optional[Experiment]] = contextvars.ContextVar(
    "_xm_current_experiment", default=None
)
_current_experiment_unit: contextvars.ContextVar[Optional[ExperimentUnit]] = contextvars.ContextVar(
    "_xm_current_experiment_unit", default=None
)

#: XManager's private name for applying ``add`` args to a job structure.
_apply_args = job_operators.apply_args


def get_xid_from_context() -> int:
    """The id of the experiment whose context is entered here, or -1 outside any."""
    experiment = _current_experiment.get()
    return -1 if experiment is None else experiment.experiment_id


def _log() -> Any:
    import logging

    return logging.getLogger("xmanager.xm")


# ---- errors ------------------------------------------------------------------------------------
class ExperimentUnitError(RuntimeError):
    """A work unit did not complete as expected."""

    def __init__(self, message: Any, *, work_unit: Optional[ExperimentUnit] = None) -> None:
        super().__init__(message)
        self.work_unit = work_unit


class ExperimentUnitFailedError(ExperimentUnitError):
    """A work unit failed."""


class ExperimentUnitNotCompletedError(ExperimentUnitError):
    """A work unit ended without completing (e.g. it was cancelled)."""


class ExperimentFailedError(ExperimentUnitFailedError):
    """Some work units of an experiment failed; the message lists them, one per line."""

    def __init__(self, message: str, failed: Sequence[Any]) -> None:
        super().__init__(message, work_unit=failed[0] if failed else None)
        self.failed = list(failed)


class NotFoundError(KeyError):
    """An experiment or work unit id that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ReloadError(ExperimentUnitError):
    """A unit could not be reloaded (backends that update running units in place)."""


class DebugInterrupt(BaseException):  # noqa: N818 - XManager's name.
    """Raised to stop a launch on purpose while debugging; the unit is stopped, nothing is reported."""


# ---- roles and small values ------------------------------------------------------------------
class Importance(enum.Enum):
    """A scheduling hint among one's own units (the local executors ignore it)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@attrs.frozen
class ExperimentUnitRole:
    """What a unit is for in its experiment."""

    importance: Importance = Importance.NORMAL


@attrs.frozen
class WorkUnitRole(ExperimentUnitRole):
    """A work unit: a trial of the experiment; its status counts for the experiment's."""

    tags: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)


@attrs.frozen
class AuxiliaryUnitRole(ExperimentUnitRole):
    """An auxiliary unit (e.g. TensorBoard), kept ``termination_delay_secs`` after the work units end."""

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


def _is_async_callable(job: Any) -> bool:
    return inspect.iscoroutinefunction(job) or inspect.iscoroutinefunction(type(job).__call__)



def _refuse_nul_psets(psets: Sequence[Pset], first_id: Optional[int]) -> None:
    """A sweep is refused whole, before any unit exists, when a pset's key or text value holds a NUL byte."""
    for index, pset in enumerate(psets):
        for key, value in pset.items():
            if "\0" in str(key) or (isinstance(value, str) and "\0" in value):
                unit = f"pset {index}" if first_id is None else f"work unit {first_id + index}"
                raise ValueError(f"arg {str(key)!r} of {unit} holds a NUL byte")


def refuse_nul_bytes(jobs: Sequence[Job], work_unit_id: Optional[int]) -> None:
    """Raises ValueError naming the first arg or env var of ``jobs`` holding a NUL byte: no process can
    be started with one (argv and environ are C strings), so it is refused before the unit exists."""
    from xmanager.xm.args import merge_args

    unit = "the new work unit" if work_unit_id is None else f"work unit {work_unit_id}"
    for job in jobs:
        of = f"{unit}" if len(jobs) == 1 else f"job {job.name!r} of {unit}"
        for key, value in merge_args(job.executable.args, job.args).to_indexed_dict().items():
            if "\0" in str(getattr(value, "arg", value)) or "\0" in str(key):
                name = key if key.isdigit() else repr(key)
                raise ValueError(f"arg {name} of {of} holds a NUL byte")
        for key, env_value in {**job.executable.env_vars, **job.env_vars}.items():
            if "\0" in str(env_value) or "\0" in str(key):
                raise ValueError(f"env var {key!r} of {of} holds a NUL byte")

def _check_job_type(job: Any) -> None:
    """TypeError for what ``add`` cannot run; ValueError for a job generator that is not async."""
    if isinstance(job, (Job, JobGroup, JobConfig)):
        return
    if not callable(job):
        raise TypeError(f"add() takes an xm.Job, xm.JobGroup, job generator or xm.JobConfig, got {job!r}")
    if not _is_async_callable(job):
        raise ValueError(
            f"Job generator must be an async function, `async def generator(work_unit, **args)`; got {job!r}"
        )


def _work_unit_arguments(job: JobType, args: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The arguments a unit shows: ``args`` as given to ``add``, else what its jobs carry."""
    if args is not None:
        return args

    def shown(item: Any) -> dict[str, Any]:
        if isinstance(item, Job):
            view = {"args": item.args.to_dict(kwargs_only=True), "env_vars": item.env_vars}
            return {key: value for key, value in view.items() if value}
        if isinstance(item, JobGroup):
            return {key: view for key, member in item.jobs.items() if (view := shown(member))}
        return {}

    return shown(job)


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _overrides(instance: Any, base: type, name: str) -> bool:
    return getattr(type(instance), name) is not getattr(base, name)


# ---- units ---------------------------------------------------------------------------------------
class ExperimentUnit(abc.ABC):
    """A set of jobs of an experiment, launched together (a work unit or an auxiliary unit).

    ``create_task`` schedules a launch (XManager's protocol; the experiment's own by default),
    ``args`` are the unit's arguments as shown in UIs, ``identity`` an optional user-given key.
    """

    experiment: Experiment

    def __init__(
        self,
        experiment: Experiment,
        create_task: Optional[Callable[[Awaitable[Any]], Any]] = None,
        args: Optional[Mapping[str, Any]] = None,
        role: Optional[ExperimentUnitRole] = None,
        identity: str = "",
    ) -> None:
        self.experiment = experiment
        self._create_task = create_task if create_task is not None else experiment._create_task
        self._args = args
        self._role = role if role is not None else WorkUnitRole()
        self._identity = identity
        self._launch_tasks: list[Any] = []

    @property
    def experiment_id(self) -> int:
        return self.experiment.experiment_id

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def role(self) -> ExperimentUnitRole:
        return self._role

    @property
    def args(self) -> dict[str, Any]:
        """The unit's parameters (for a sweep, its parameter set)."""
        return dict(self._args) if isinstance(self._args, Mapping) else {}

    @property
    def experiment_unit_name(self) -> str:
        raise NotImplementedError

    def get_full_job_name(self, job_name: str) -> str:
        """A job's name qualified by its experiment and unit (used as a hostname)."""
        return f"{self.experiment_unit_name}_{job_name}"

    @property
    def context(self) -> MetadataContext:
        return MetadataContext(creator=_user(), annotations=ContextAnnotations())

    # ---- adding jobs ---------------------------------------------------------------------------
    def add(self, job: JobType, args: Optional[Mapping[str, Any]] = None, *, identity: str = "") -> UnitFuture:
        """Adds a Job, JobGroup, job generator or JobConfig to this unit; returns a future of the launch.

        ``args`` are applied as in ``Experiment.add``; a job generator gets them as keyword arguments.
        """
        identity = self.identity or identity
        _check_job_type(job)
        if _overrides(self, ExperimentUnit, "_launch_jobs"):
            return self._add_in_place(job, args)
        job = job_operators.shallow_copy_job_type(job)
        normalized = job_operators.normalize_args(job, args)
        if normalized is not None:
            _apply_args(job, normalized)
        job_operators.populate_job_names(job)
        launch = self._create_task(self._launch_in_context(job, args, identity))
        self._launch_tasks.append(launch)
        return UnitFuture(launch)

    async def _launch_in_context(self, job: JobType, args: Optional[Mapping[str, Any]], identity: str) -> Any:
        """Runs the launch of ``job`` with this unit as the current one (the task's own context)."""
        _current_experiment.set(self.experiment)
        _current_experiment_unit.set(self)
        if isinstance(job, Job):
            group = JobGroup()  # Not JobGroup(**{job.name: job}): a job may be named "constraints".
            group.jobs = {job.name: job}
            return await self._launch_job_group(group, _work_unit_arguments(job, self._args), identity)
        if isinstance(job, JobGroup):
            return await self._launch_job_group(job, _work_unit_arguments(job, self._args), identity)
        if callable(job):
            return await job(self, **(args or {}))
        return await self._launch_job_config(job, args or {}, identity)

    def _add_in_place(self, job: JobType, args: Any) -> UnitFuture:
        """Our protocol: jobs launch now; a generator runs as a task of the running loop (or to completion)."""
        if isinstance(job, (Job, JobGroup)):
            self._launch_jobs(job_operators.named_jobs(job, args), gang=isinstance(job, JobGroup))
            return UnitFuture.resolved(self)
        if isinstance(job, JobConfig):
            raise TypeError(f"{type(self).__name__} cannot launch a {type(job).__name__}")
        coroutine = _with_current(self, job(self, **(args or {})))
        loop = running_loop()
        if loop is None:
            import asyncio

            asyncio.run(coroutine)
            return UnitFuture.resolved(self)
        task = loop.create_task(coroutine)
        self._launch_tasks.append(task)
        return UnitFuture(task)

    async def _launch_job_group(self, job_group: JobGroup, args_view: Mapping[str, Any], identity: str) -> None:
        """XManager's protocol: launches the (named, args applied) jobs of ``job_group``."""
        raise NotImplementedError

    async def _launch_job_config(self, job_config: JobConfig, args_view: Mapping[str, Any], identity: str) -> None:
        raise NotImplementedError

    def _launch_jobs(self, jobs: list[Job], *, gang: bool) -> None:
        """Our protocol: launches named jobs with their final args now (``gang``: from a JobGroup)."""
        raise NotImplementedError

    def _generator_finished(self, error: Optional[BaseException]) -> None:
        """Our protocol: the unit's job generator returned (``error`` None) or raised."""
        del error  # Nothing to record by default.

    # ---- waiting and status ----------------------------------------------------------------------
    def wait_until_complete(self) -> WorkUnitCompletedAwaitable:
        """Waits for the unit to end: sync code blocks here, async code awaits the result.

        Raises ExperimentUnitError if the unit could not be launched, ExperimentUnitFailedError
        if it failed, ExperimentUnitNotCompletedError if it was stopped.
        """
        if running_loop() is None:
            self._wait_blocking()
            self._raise_if_unsuccessful()
            return WorkUnitCompletedAwaitable(self, None)
        return WorkUnitCompletedAwaitable(self, self._wait_until_complete_impl)

    async def _wait_until_complete_impl(self) -> ExperimentUnit:
        try:
            for launch in list(self._launch_tasks):
                await await_launch(launch)
        except Exception as error:
            raise ExperimentUnitError("Experiment unit could not be created.", work_unit=self) from error
        await self._wait_until_complete()
        self._raise_if_unsuccessful()
        return self

    async def _wait_until_complete(self) -> None:
        """XManager's hook: waits for a fully launched unit to reach a final state."""
        await self._wait_async()

    async def _wait_async(self) -> None:
        raise NotImplementedError

    def _wait_blocking(self) -> None:
        """Waits from sync code; by default runs the async wait on a fresh loop."""
        run_in_asyncio_loop(self._wait_until_complete_impl)()

    def _raise_if_unsuccessful(self) -> None:
        try:
            status = self.get_status()
        except NotImplementedError:  # A unit without statuses (e.g. a mock) counts as complete.
            return
        if status.is_failed:
            raise ExperimentUnitFailedError(f"work unit {self._unit_label()} failed: {status.message}", work_unit=self)
        if getattr(status, "is_cancelled", False):
            raise ExperimentUnitNotCompletedError(
                f"work unit {self._unit_label()} was cancelled: {status.message}", work_unit=self
            )

    def _unit_label(self) -> str:
        return str(getattr(self, "work_unit_id", None) or getattr(self, "auxiliary_unit_id", "?"))

    def get_status(self) -> ExperimentUnitStatus:
        raise NotImplementedError

    def stop(self, *, mark_as_failed: bool = False, mark_as_completed: bool = False, message: Optional[str] = None) -> None:
        """Asks the unit to stop (does not wait; ``wait_until_complete`` does)."""
        raise NotImplementedError

    @property
    def launched_jobs(self) -> list[LaunchedJob]:
        raise NotImplementedError

    def __repr__(self) -> str:
        try:
            status = f" {self.get_status().status.value}"
        except (NotImplementedError, AttributeError):
            status = ""
        try:
            name = self.experiment_unit_name
        except NotImplementedError:
            name = "?"
        return f"<{type(self).__name__} {name}{status}>"


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


async def _with_current(unit: ExperimentUnit, coroutine: Awaitable[Any]) -> Any:
    _current_experiment.set(unit.experiment)
    _current_experiment_unit.set(unit)
    return await coroutine


class WorkUnit(ExperimentUnit):
    """A work unit: one trial (usually one parameter set) of an experiment.

    ``work_unit_id`` numbers it within the experiment, from 1.
    """

    work_unit_id: int

    @property
    def experiment_unit_name(self) -> str:
        return f"{self.experiment_id}_{self.work_unit_id}"

    def __str__(self) -> str:
        return f"WorkUnit(experiment_id={self.experiment_id}, work_unit_id={self.work_unit_id})"


class AuxiliaryUnit(ExperimentUnit):
    """An auxiliary unit: a helper of the experiment (TensorBoard, a controller), not a trial."""

    @property
    @abc.abstractmethod
    def auxiliary_unit_id(self) -> int: ...


class AuxiliaryUnitJob:
    """A job bundled with an auxiliary role: ``experiment.add(AuxiliaryUnitJob(job, termination_delay_secs=60))``.

    Lets a library hand out something that becomes an auxiliary unit when added. It is itself
    a job generator.
    """

    role: AuxiliaryUnitRole

    def __init__(self, job: JobType, *, importance: Importance = Importance.NORMAL, termination_delay_secs: int) -> None:
        self.role = AuxiliaryUnitRole(importance=importance, termination_delay_secs=termination_delay_secs)
        self._job = job

    async def __call__(self, aux_unit: ExperimentUnit, **kwargs: Any) -> None:
        if isinstance(self._job, (Job, JobGroup, JobConfig)) or not callable(self._job):
            aux_unit.add(self._job, args=kwargs)
            return
        await self._job(aux_unit, **kwargs)


# ---- experiments ---------------------------------------------------------------------------------
class Experiment(abc.ABC):
    """A set of experiment units with metadata; a context manager (``with`` or ``async with``).

    Units are added inside the context; leaving it waits for their launches.
    """

    experiment_id: int
    #: Implementations that batch packaging set an ``AsyncPackager`` here (XManager's protocol).
    _async_packager: ClassVar[Any] = None

    # ---- context -------------------------------------------------------------------------------
    def __enter__(self) -> Experiment:
        if running_loop() is not None:
            raise RuntimeError("inside a coroutine, use `async with` for an experiment, not `with`")
        import asyncio

        self._sync_token = _current_experiment.set(self)
        loop = asyncio.new_event_loop()
        thread = self._thread_factory()(target=loop.run_forever, name="xm-experiment-loop", daemon=True)
        thread.start()
        self._event_loop_thread = thread
        asyncio.run_coroutine_threadsafe(_as_coroutine(self.__aenter__()), loop).result()
        return self

    def _thread_factory(self) -> type[threading.Thread]:
        """The thread class that runs the experiment's loop in sync code."""
        return threading.Thread

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        _current_experiment.reset(self._sync_token)
        loop = self._event_loop
        import asyncio

        try:
            self._wait_for_tasks()
        finally:
            asyncio.run_coroutine_threadsafe(_settle_tasks(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            self._event_loop_thread.join()
            loop.close()
        if exc_type is None:
            self._validate_added_roles()

    async def __aenter__(self) -> Experiment:
        import asyncio

        self._async_token = _current_experiment.set(self)
        import queue

        self._event_loop = asyncio.get_running_loop()
        self._running_tasks: queue.Queue[Any] = queue.Queue()
        return self

    async def __aexit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        _current_experiment.reset(self._async_token)
        await self._await_for_tasks()
        if exc_type is None:
            self._validate_added_roles()

    def _wait_for_tasks(self) -> None:
        """Waits for every launch (also those added meanwhile); raises the first error."""
        import concurrent.futures

        first: Optional[BaseException] = None
        cancelled = 0
        while not self._running_tasks.empty():
            try:
                self._running_tasks.get_nowait().result()
            except concurrent.futures.CancelledError:
                cancelled += 1
            except Exception as error:
                first = self._keep_first(first, error)
        self._report_cancelled(cancelled)
        if first is not None:
            raise first

    async def _await_for_tasks(self) -> None:
        import asyncio

        first: Optional[BaseException] = None
        cancelled = 0
        while not self._running_tasks.empty():
            try:
                await asyncio.wrap_future(self._running_tasks.get_nowait())
            except asyncio.CancelledError:
                cancelled += 1
            except Exception as error:
                first = self._keep_first(first, error)
        self._report_cancelled(cancelled)
        if first is not None:
            raise first

    @staticmethod
    def _keep_first(first: Optional[BaseException], error: BaseException) -> BaseException:
        if first is None:
            return error
        if error is first:  # A unit's launch fails with its generator's error: one error, seen twice.
            return first
        _log().error("another launch failed too (only the first error is raised): %r", error, exc_info=error)
        return first

    def _report_cancelled(self, count: int) -> None:
        if count:
            _log().warning("Ignored %d cancelled task(s) of experiment %s.", count, self._id_for_messages())

    def _id_for_messages(self) -> Any:
        try:
            return self.experiment_id
        except (AttributeError, NotImplementedError):
            return "?"

    def _validate_added_roles(self) -> None:
        """Warns when the experiment got no work unit, which is seldom what was meant."""
        if not any(issubclass(role, WorkUnitRole) for role, count in self._roles_added().items() if count):
            _log().warning(
                "No work units were added to this experiment (%s); only auxiliary units, if any.",
                self._id_for_messages(),
            )

    def _roles_added(self) -> collections.Counter[type]:
        counter = self.__dict__.get("_added_roles")
        if counter is None:
            counter = self.__dict__["_added_roles"] = collections.Counter()
        return counter

    def _create_task(self, awaitable: Awaitable[Any]) -> Any:
        """Schedules ``awaitable`` on the experiment's loop (thread-safe); the launch's concurrent future."""
        import asyncio

        loop = getattr(self, "_event_loop", None)
        if loop is None or not loop.is_running():
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise RuntimeError("the experiment's event loop is not running; add units inside `with experiment:`")
        coroutine = awaitable if asyncio.iscoroutine(awaitable) else _as_coroutine(awaitable)
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        self._running_tasks.put_nowait(future)
        return future

    # ---- packaging -------------------------------------------------------------------------------
    @classmethod
    def package(cls, packageables: Sequence[Packageable] = ()) -> Sequence[Executable]:
        """Packages ``packageables`` (and anything queued by ``package_async``); executables in order."""
        if cls._async_packager is None:
            raise NotImplementedError(f"{cls.__name__} does not package")
        return cls._async_packager.package(packageables)

    @classmethod
    def package_async(cls, packageable: Packageable) -> Awaitable[Executable]:
        """An awaitable of ``packageable``'s executable.

        With a batching packager (``_async_packager``), the request is queued and built by the
        next ``package()`` call, as in XManager; otherwise it is packaged when awaited.
        """
        if cls._async_packager is not None:
            return cls._async_packager.add(packageable)
        return _package_when_awaited(cls, packageable)

    # ---- adding work -----------------------------------------------------------------------------
    def add(
        self,
        job: JobType,
        args: Optional[Mapping[str, Any]] = None,
        *,
        role: ExperimentUnitRole = WorkUnitRole(),
        identity: str = "",
    ) -> UnitFuture:
        """Creates a unit running ``job`` with ``args`` and launches it.

        ``job`` is a Job, a JobGroup, ``async def generator(work_unit, **args)``, a JobConfig or
        an ``AuxiliaryUnitJob`` (whose role wins). For a Job, ``args`` is ``{'args': ...,
        'env_vars': ...}`` or (ours) the job's arguments directly; for a JobGroup, a mapping from
        member name to those. Returns a future of the unit: ``await`` it, or ``.result()``.
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
        _refuse_nul_psets([pset for pset, digest in zip(psets, hashes) if digest not in done],
                          self._upcoming_work_unit_id())
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
        _check_job_type(job)
        if isinstance(job, AuxiliaryUnitJob):
            role = job.role
        if _overrides(self, Experiment, "_create_work_unit"):
            future = self._add_in_place(job, args, role, identity, pset)
        else:
            future = self._add_as_task(job, args, role, identity)
        self._roles_added()[type(role)] += 1
        return future

    def _add_in_place(
        self, job: JobType, args: Any, role: ExperimentUnitRole, identity: str, pset: Optional[PsetInfo]
    ) -> UnitFuture:
        """Our protocol: the unit is created with its parameters, and its jobs launch now."""
        if isinstance(job, (Job, JobGroup)):
            jobs = job_operators.named_jobs(job, args)  # Validates before a unit is created.
            refuse_nul_bytes(jobs, self._upcoming_work_unit_id())
            params = job_operators.unit_parameters(jobs, grouped=isinstance(job, JobGroup))
            unit = self._create_work_unit(role, identity, params, pset)
            try:
                unit._launch_jobs(jobs, gang=isinstance(job, JobGroup))
            except BaseException as error:  # The unit fails with the reason; the caller sees it too.
                unit._generator_finished(error if isinstance(error, Exception) else None)
                raise
            unit._generator_finished(None)
            return UnitFuture.resolved(unit)
        if isinstance(job, JobConfig):
            raise TypeError(f"{type(self).__name__} cannot launch a {type(job).__name__}")
        if args is not None and not isinstance(args, Mapping):
            raise TypeError("args for a job generator must be a mapping of keyword arguments")
        unit = self._create_work_unit(role, identity, dict(args or {}), pset)
        run = self._run_generator(unit, job, dict(args or {}))
        loop = running_loop()
        if loop is None:
            import asyncio

            try:
                asyncio.run(run)
            except Exception:  # Recorded on the unit by _run_generator; reported at the end.
                pass
            return UnitFuture.resolved(unit)
        task = loop.create_task(run)
        self._track_task(task)
        return UnitFuture(task)

    @staticmethod
    async def _run_generator(unit: ExperimentUnit, generator: Callable[..., Any], args: dict[str, Any]) -> Any:
        """Runs a job generator for ``unit`` (with the unit current), then the launches it started."""
        _current_experiment.set(unit.experiment)
        _current_experiment_unit.set(unit)
        try:
            await generator(unit, **args)
            while unit._launch_tasks:
                await await_launch(unit._launch_tasks.pop(0))
        except Exception as error:
            unit._generator_finished(error)
            raise
        unit._generator_finished(None)
        return unit

    def _add_as_task(self, job: JobType, args: Any, role: ExperimentUnitRole, identity: str) -> UnitFuture:
        """XManager's protocol: the unit is created (its id reserved now) and launched by a task."""
        import concurrent.futures

        reload = self._should_reload_experiment_unit(role)
        if reload:
            created = self._get_experiment_unit(self.experiment_id, identity, role, args)
        else:
            created = self._create_experiment_unit(args, role, identity)
        # Mirrors the launch below, so that the unit's wait_until_complete also awaits it.
        launched: concurrent.futures.Future[Any] = concurrent.futures.Future()

        async def launch() -> ExperimentUnit:
            import asyncio

            await asyncio.sleep(0)  # One loop turn first: a launch cancelled right after add() does not start.
            unit = await created
            unit._launch_tasks.append(launched)
            try:
                await unit.add(job, args, identity=identity)
            except Exception as error:
                if reload:
                    _log().error("could not reload the experiment unit (identity %r): %s", identity, error)
                    raise
                _log().error("stopping the experiment unit (identity %r), whose launch failed: %s", identity, error)
                _stop_quietly(unit, failed=not isinstance(job, AuxiliaryUnitJob), message=f"launch failed: {error!r}")
                raise
            except DebugInterrupt:
                _stop_quietly(unit, failed=False, message="launch interrupted by debug mode")
            return unit

        def finished(done: Any) -> None:
            _copy_outcome(done, launched)
            if inspect.iscoroutine(created) and inspect.getcoroutinestate(created) == inspect.CORO_CREATED:
                created.close()  # The launch was cancelled before it started.

        try:
            future = self._create_task(launch())
        except RuntimeError:
            if inspect.iscoroutine(created):
                created.close()
            raise
        future.add_done_callback(finished)
        return UnitFuture(future)

    def _create_work_unit(
        self, role: ExperimentUnitRole, identity: str, params: dict[str, Any], pset: Optional[PsetInfo] = None
    ) -> ExperimentUnit:
        """Our protocol: a new unit with its parameters (the args that describe it) and, in a sweep, its pset."""
        raise NotImplementedError

    def _create_experiment_unit(
        self, args: Optional[Mapping[str, Any]], role: ExperimentUnitRole, identity: str
    ) -> Awaitable[ExperimentUnit]:
        """XManager's protocol: starts creating a unit now (ids in call order); an awaitable of it."""
        raise NotImplementedError

    def _get_experiment_unit(
        self, experiment_id: int, identity: str, role: ExperimentUnitRole, args: Optional[Mapping[str, Any]] = None
    ) -> Awaitable[ExperimentUnit]:
        """XManager's protocol: an existing unit by identity (for backends that reload units)."""
        raise NotImplementedError

    def _upcoming_work_unit_id(self) -> Optional[int]:
        """The id the next ``_create_work_unit`` gives (for messages about a unit not yet created), if known."""
        return None

    def _should_reload_experiment_unit(self, role: ExperimentUnitRole) -> bool:
        """Whether ``add`` updates an existing unit in place instead of creating one."""
        return False

    def _completed_pset_hashes(self) -> set[str]:
        """Hashes of psets that completed in this experiment (what a resumed sweep skips)."""
        return set()

    def _sweep_counters(self) -> tuple[int, int]:
        """The next ``run_seq`` and ``pset_seq`` for a sweep added to this experiment."""
        return 0, 0

    def _track_task(self, task: Any) -> None:
        """Our protocol: a job generator's task on the caller's loop, which leaving the context awaits."""
        self.__dict__.setdefault("_generator_tasks", []).append(task)

    # ---- reading ---------------------------------------------------------------------------------
    @property
    def work_units(self) -> Mapping[int, WorkUnit]:
        raise NotImplementedError

    @property
    def work_unit_count(self) -> int:
        return len(self.work_units)

    @property
    def context(self) -> MetadataContext:
        return MetadataContext(creator=_user(), annotations=ContextAnnotations())


async def _settle_tasks() -> None:
    """Lets the loop's remaining tasks (launches being cancelled) finish before the loop closes."""
    import asyncio

    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.gather(*others, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


def _stop_quietly(unit: ExperimentUnit, *, failed: bool, message: str) -> None:
    try:
        if failed:
            unit.stop(mark_as_failed=True, message=message)
        else:
            unit.stop(message=message)
    except Exception as error:  # The launch error matters more; this one is only logged.
        _log().error("could not stop the experiment unit: %r", error)


def _copy_outcome(source: Any, target: Any) -> None:
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


async def _package_when_awaited(cls: type[Experiment], packageable: Packageable) -> Executable:
    return cls.package([packageable])[0]


def create_experiment(experiment_title: Optional[str] = None) -> Experiment:
    """XManager's abstract factory; each backend has its own (``xm_local.create_experiment``)."""
    raise NotImplementedError("use a backend's create_experiment, e.g. xm_local.create_experiment")


def get_experiment(experiment_id: int) -> Experiment:
    """XManager's abstract lookup; each backend has its own (``xm_local.get_experiment``)."""
    raise NotImplementedError("use a backend's get_experiment, e.g. xm_local.get_experiment")


__all__ = [
    "AuxiliaryUnit", "AuxiliaryUnitJob", "AuxiliaryUnitRole", "ContextAnnotations", "DebugInterrupt", "Experiment",
    "ExperimentFailedError", "ExperimentUnit", "ExperimentUnitError", "ExperimentUnitFailedError",
    "ExperimentUnitNotCompletedError", "ExperimentUnitRole", "ExperimentUnitStatus", "Importance", "LaunchedJob",
    "MetadataContext", "NotFoundError", "PsetInfo", "ReloadError", "UnitFuture", "WorkUnit",
    "WorkUnitCompletedAwaitable", "WorkUnitRole", "get_xid_from_context", "run_in_asyncio_loop", "running_loop",
]
