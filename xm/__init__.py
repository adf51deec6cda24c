"""The backend-agnostic launch API: what to run, with which args, as which jobs.

``from xmanager import xm`` gives the XManager-compatible names: executable specs
(``Binary``, ``CommandList``, ``PythonContainer``, ``PythonCallable``), ``Job``,
``JobGroup``, ``Packageable`` and the ``binary()``-style factories, ``JobRequirements``,
argument helpers, statuses, errors, and ``report()`` for results from inside a job.
It imports no backend, SDK or database.
"""

from xmanager.xm import job_operators
from xmanager.xm.args import SequentialArgs, ShellSafeArg, UserArgs, merge_args
from xmanager.xm.compute_units import GB, KB, MB, PB, TB, GiB, KiB, MiB, PiB, TiB, vCPU
from xmanager.xm.core import (
    AuxiliaryUnitRole,
    ContextAnnotations,
    Experiment,
    ExperimentFailedError,
    ExperimentUnitError,
    ExperimentUnitFailedError,
    ExperimentUnitNotCompletedError,
    ExperimentUnitRole,
    Importance,
    LaunchedJob,
    MetadataContext,
    NotFoundError,
    PsetInfo,
    UnitFuture,
    WorkUnit,
    WorkUnitCompletedAwaitable,
    WorkUnitRole,
    run_in_asyncio_loop,
)
from xmanager.xm.executables import (
    BazelBinary,
    BazelContainer,
    Binary,
    CommandList,
    Container,
    Dockerfile,
    ModuleName,
    PythonCallable,
    PythonContainer,
    VeBuffer,
    VeKernel,
)
from xmanager.xm.job_blocks import (
    Constraint,
    Executable,
    ExecutableSpec,
    Executor,
    ExecutorSpec,
    Job,
    JobGeneratorType,
    JobGroup,
    JobType,
    Packageable,
    get_args_for_all_jobs,
)
from xmanager.xm.packagables import (
    binary,
    command_list,
    container,
    dockerfile_container,
    python_callable,
    python_container,
    ve_kernel,
)
from xmanager.xm.psets import (
    PsetHashError,
    filter_params_dup_hash,
    filter_params_unique,
    intspace,
    itr2params,
    logspace,
    merge_dicts,
    pgrid,
    plist,
    pset_hash,
    stargrid,
)
from xmanager.xm.report import report, results_path
from xmanager.xm.resources import JobRequirements, ResourceType
from xmanager.xm.status import ExperimentUnitStatus, Status

__all__ = [
    "GB", "KB", "MB", "PB", "TB", "GiB", "KiB", "MiB", "PiB", "TiB", "vCPU",
    "AuxiliaryUnitRole", "BazelBinary", "BazelContainer", "Binary", "CommandList", "Constraint",
    "Container", "ContextAnnotations", "Dockerfile", "Executable", "ExecutableSpec", "Executor",
    "ExecutorSpec", "Experiment", "ExperimentFailedError", "ExperimentUnitError",
    "ExperimentUnitFailedError", "ExperimentUnitNotCompletedError", "ExperimentUnitRole",
    "ExperimentUnitStatus", "Importance", "Job", "JobGeneratorType", "JobGroup", "JobRequirements",
    "JobType", "LaunchedJob", "MetadataContext", "ModuleName", "NotFoundError", "Packageable",
    "PsetHashError", "PsetInfo", "PythonCallable", "PythonContainer", "ResourceType", "SequentialArgs", "ShellSafeArg",
    "Status", "UnitFuture", "UserArgs", "WorkUnit", "WorkUnitCompletedAwaitable", "WorkUnitRole",
    "binary", "command_list", "filter_params_dup_hash", "filter_params_unique", "intspace", "itr2params",
    "logspace", "merge_dicts", "pgrid", "plist", "pset_hash", "stargrid", "container", "dockerfile_container", "get_args_for_all_jobs",
    "job_operators", "merge_args", "python_callable", "python_container", "report", "results_path",
    "run_in_asyncio_loop", "VeBuffer", "VeKernel", "ve_kernel",
]
