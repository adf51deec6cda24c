"""The backend-agnostic launch API: what to run, with which args, as which jobs.

``from xmanager import xm`` gives XManager's names: executable specs (``Binary``,
``PythonContainer``, ...), ``Job``, ``JobGroup``, ``Packageable`` and the ``binary()``-style
factories, ``JobRequirements`` and resource types, experiments and their units, argument
helpers and errors; and ours: ``CommandList`` and ``PythonCallable`` specs, VE kernels, psets
for sweeps, statuses, and ``report()`` for results from inside a job.
It imports no backend, SDK or database.
"""

from xmanager.xm import job_operators
from xmanager.xm.args import SequentialArgs, UserArgs, merge_args
from xmanager.xm.compute_units import GB, KB, MB, PB, TB, GiB, KiB, MiB, PiB, TiB, vCPU
from xmanager.xm.core import (
    AuxiliaryUnit,
    AuxiliaryUnitJob,
    AuxiliaryUnitRole,
    DebugInterrupt,
    Experiment,
    ExperimentFailedError,
    ExperimentUnit,
    ExperimentUnitError,
    ExperimentUnitFailedError,
    ExperimentUnitNotCompletedError,
    ExperimentUnitRole,
    Importance,
    LaunchedJob,
    NotFoundError,
    PsetInfo,
    ReloadError,
    WorkUnit,
    WorkUnitRole,
)
from xmanager.xm.executables import (
    BazelBinary,
    BazelContainer,
    Binary,
    BinaryDependency,
    CommandList,
    Container,
    Dockerfile,
    ModuleName,
    PythonCallable,
    PythonContainer,
    VeBuffer,
    VeKernel,
)
from xmanager.xm.framework_utils import framework_label
from xmanager.xm.futures import UnitFuture, WorkUnitCompletedAwaitable
from xmanager.xm.job_blocks import (
    Constraint,
    Executable,
    ExecutableSpec,
    Executor,
    ExecutorSpec,
    Job,
    JobConfig,
    JobGeneratorType,
    JobGroup,
    JobType,
    Packageable,
    get_args_for_all_jobs,
)
from xmanager.xm.lazy import exports as _exports
from xmanager.xm.metadata_context import ContextAnnotations, MetadataContext
from xmanager.xm.packagables import (
    bazel_binary,
    bazel_container,
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
from xmanager.xm.resources import (
    AcceleratorType,
    Architecture,
    GpuType,
    InvalidTpuTopologyError,
    JobRequirements,
    ResourceDict,
    ResourceQuantity,
    ResourceType,
    ServiceTier,
    Topology,
    TpuType,
)
from xmanager.xm.status import ExperimentUnitStatus, Status
from xmanager.xm.utils import ShellSafeArg, run_in_asyncio_loop
from xmanager.xm.version import __version__

# Submodules XManager's package has loaded by the time it is imported, loaded here on first use.
__getattr__, __dir__ = _exports("xmanager.xm", {"async_packager": None, "id_predictor": None, "search": None})

__all__ = [
    "__version__",
    "GB", "KB", "MB", "PB", "TB", "GiB", "KiB", "MiB", "PiB", "TiB", "vCPU",
    # Experiments and units.
    "AuxiliaryUnit", "AuxiliaryUnitJob", "AuxiliaryUnitRole", "ContextAnnotations", "DebugInterrupt", "Experiment",
    "ExperimentFailedError", "ExperimentUnit", "ExperimentUnitError", "ExperimentUnitFailedError",
    "ExperimentUnitNotCompletedError", "ExperimentUnitRole", "ExperimentUnitStatus", "Importance", "LaunchedJob",
    "MetadataContext", "NotFoundError", "PsetInfo", "ReloadError", "Status", "UnitFuture", "WorkUnit",
    "WorkUnitCompletedAwaitable", "WorkUnitRole", "framework_label", "run_in_asyncio_loop",
    # Jobs, executables and packaging.
    "BazelBinary", "BazelContainer", "Binary", "BinaryDependency", "CommandList", "Constraint", "Container",
    "Dockerfile", "Executable", "ExecutableSpec", "Executor", "ExecutorSpec", "Job", "JobConfig", "JobGeneratorType",
    "JobGroup", "JobType", "ModuleName", "Packageable", "PythonCallable", "PythonContainer", "VeBuffer", "VeKernel",
    "bazel_binary", "bazel_container", "binary", "command_list", "container", "dockerfile_container",
    "get_args_for_all_jobs", "job_operators", "python_callable", "python_container", "ve_kernel",
    # Arguments.
    "SequentialArgs", "ShellSafeArg", "UserArgs", "merge_args",
    # Resources.
    "AcceleratorType", "Architecture", "GpuType", "InvalidTpuTopologyError", "JobRequirements", "ResourceDict",
    "ResourceQuantity", "ResourceType", "ServiceTier", "Topology", "TpuType",
    # Sweeps and results (ours).
    "PsetHashError", "filter_params_dup_hash", "filter_params_unique", "intspace", "itr2params", "logspace",
    "merge_dicts", "pgrid", "plist", "pset_hash", "report", "results_path", "stargrid",
]
