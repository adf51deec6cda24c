"""Requirements -> Vertex AI worker pool specs, as plain dicts (no Google SDK imported here).

The dicts have the field names of ``google.cloud.aiplatform_v1.CustomJob`` and become
that message in the backend. Machine types and accelerators are checked against what
Vertex AI custom training offers (the tables below, from Google's published machine
type lists), so an impossible request fails in the launch script, before anything
is submitted. A machine family missing from the tables is passed through unchecked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import attrs
from xmanager.xm.resources import JobRequirements, ResourceType, replica_count, resource_key

GIB = 2**30

#: Our accelerator kinds -> Vertex ``AcceleratorType`` names.
ACCELERATORS: dict[ResourceType, str] = {
    ResourceType.P4: "NVIDIA_TESLA_P4",
    ResourceType.T4: "NVIDIA_TESLA_T4",
    ResourceType.P100: "NVIDIA_TESLA_P100",
    ResourceType.V100: "NVIDIA_TESLA_V100",
    ResourceType.A100: "NVIDIA_TESLA_A100",
    ResourceType.A100_80GIB: "NVIDIA_A100_80GB",
    ResourceType.L4_24TH: "NVIDIA_L4",
    ResourceType.H100: "NVIDIA_H100_80GB",
    ResourceType.H200: "NVIDIA_H200_141GB",
    ResourceType.B200: "NVIDIA_B200",
    ResourceType.GB200: "NVIDIA_GB200",
    ResourceType.TPU_V2: "TPU_V2",
    ResourceType.TPU_V3: "TPU_V3",
    ResourceType.TPU_V4: "TPU_V4_POD",
    ResourceType.TPU_V5E: "TPU_V5_LITEPOD",
}


@attrs.frozen
class Machine:
    """One machine type: vCPUs, memory (GiB) and the accelerator counts it takes."""

    name: str
    cpus: int
    memory_gib: float
    accelerator: Optional[ResourceType] = None
    counts: tuple[int, ...] = ()


def _fixed(accelerator: ResourceType, rows: Sequence[tuple[str, int, float, int]]) -> list[Machine]:
    return [Machine(name, cpus, memory, accelerator, (count,)) for name, cpus, memory, count in rows]


#: Machines whose accelerator and count are fixed by the machine type.
FIXED_MACHINES: list[Machine] = [
    *_fixed(ResourceType.A100, [("a2-highgpu-1g", 12, 85, 1), ("a2-highgpu-2g", 24, 170, 2),
                                ("a2-highgpu-4g", 48, 340, 4), ("a2-highgpu-8g", 96, 680, 8),
                                ("a2-megagpu-16g", 96, 1360, 16)]),
    *_fixed(ResourceType.A100_80GIB, [("a2-ultragpu-1g", 12, 170, 1), ("a2-ultragpu-2g", 24, 340, 2),
                                      ("a2-ultragpu-4g", 48, 680, 4), ("a2-ultragpu-8g", 96, 1360, 8)]),
    *_fixed(ResourceType.L4_24TH, [("g2-standard-4", 4, 16, 1), ("g2-standard-8", 8, 32, 1),
                              ("g2-standard-12", 12, 48, 1), ("g2-standard-16", 16, 64, 1),
                              ("g2-standard-32", 32, 128, 1), ("g2-standard-24", 24, 96, 2),
                              ("g2-standard-48", 48, 192, 4), ("g2-standard-96", 96, 384, 8)]),
    *_fixed(ResourceType.H100, [("a3-highgpu-1g", 26, 234, 1), ("a3-highgpu-2g", 52, 468, 2),
                                ("a3-highgpu-4g", 104, 936, 4), ("a3-highgpu-8g", 208, 1872, 8)]),
    *_fixed(ResourceType.H200, [("a3-ultragpu-8g", 224, 2952, 8)]),
    *_fixed(ResourceType.B200, [("a4-highgpu-8g", 224, 3968, 8)]),
    *_fixed(ResourceType.GB200, [("a4x-highgpu-4g", 140, 884, 4)]),
    *_fixed(ResourceType.TPU_V2, [("cloud-tpu", 96, 334, 8)]),
    *_fixed(ResourceType.TPU_V4, [("ct4p-hightpu-4t", 240, 407, 4)]),
    *_fixed(ResourceType.TPU_V5E, [("ct5lp-hightpu-1t", 24, 48, 1), ("ct5lp-hightpu-4t", 112, 192, 4),
                                   ("ct5lp-hightpu-8t", 224, 384, 8)]),
]
# TPU v3 also runs on the "cloud-tpu" machine type, with 8 cores.
FIXED_MACHINES.append(Machine("cloud-tpu", 96, 334, ResourceType.TPU_V3, (8,)))

#: N1 machines: the GPUs that attach to them, with the counts allowed.
N1_GPUS: dict[ResourceType, tuple[int, ...]] = {
    ResourceType.T4: (1, 2, 4),
    ResourceType.P4: (1, 2, 4),
    ResourceType.P100: (1, 2, 4),
    ResourceType.V100: (1, 2, 4, 8),
}
#: N1 shapes: (name prefix, GiB per vCPU); sizes in vCPUs.
N1_SHAPES = (("n1-standard", 3.75), ("n1-highmem", 6.5))
N1_SIZES = (4, 8, 16, 32, 64, 96)
DEFAULT_MACHINE = "n1-standard-4"

_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
MAX_POOLS = 4


class VertexSpecError(ValueError):
    """A job cannot be expressed as a Vertex AI CustomJob (the message says what to change)."""


def _n1_machines() -> list[Machine]:
    """Smallest first; at one size, standard before highmem."""
    return [Machine(f"{prefix}-{size}", size, size * per_cpu) for size in N1_SIZES for prefix, per_cpu in N1_SHAPES]


def _known(name: str) -> list[Machine]:
    return [m for m in [*FIXED_MACHINES, *_n1_machines()] if m.name == name]


def _describe(requirements: JobRequirements) -> str:
    return repr(requirements)


def _fits(machine: Machine, cpus: float, memory: float) -> bool:
    return machine.cpus >= cpus and machine.memory_gib * GIB >= memory


def machine_spec(requirements: JobRequirements, machine_type: Optional[str] = None) -> dict[str, Any]:
    """The ``machine_spec`` of a job: a machine type that fits the CPUs, memory and accelerator.

    With ``machine_type`` given, it is checked against the accelerator (known families only).
    """
    # As XManager's: a negative amount fits any machine; NaN and infinity fit none.
    cpus = requirements.task_requirements.get(ResourceType.CPU, 0)
    memory = requirements.task_requirements.get(ResourceType.MEMORY, 0)
    kind = requirements.accelerator
    count = math.ceil(requirements.task_requirements[kind]) if kind is not None else 0
    if kind is not None and kind not in ACCELERATORS:
        offered = ", ".join(sorted(resource_key(k) for k in ACCELERATORS))
        raise VertexSpecError(
            f"Vertex AI does not offer the accelerator {resource_key(kind)!r} for custom training "
            f"(requirements {_describe(requirements)}); use one of: {offered}"
        )
    if kind is not None and count == 0:
        kind = None
    if machine_type is not None:
        if not isinstance(machine_type, str) or not _MACHINE_TYPE.match(machine_type):
            raise VertexSpecError(f"Vertex(machine_type={machine_type!r}): not a machine type such as 'n1-standard-8'")
        return _checked(machine_type, kind, count, cpus, memory)
    if kind is None or kind in N1_GPUS:
        if kind is not None and count not in N1_GPUS[kind]:
            raise VertexSpecError(
                f"Vertex AI attaches {resource_key(kind)} GPUs in counts {_counts(N1_GPUS[kind])}, not {count}"
            )
        for machine in _n1_machines():
            if _fits(machine, cpus, memory):
                return _spec(machine.name, kind, count)
        raise VertexSpecError(
            f"no N1 machine has {cpus:g} vCPUs and {memory / GIB:g} GiB (the largest, n1-highmem-96, has 96 vCPUs "
            "and 624 GiB); lower the requirements or pass Vertex(machine_type=...)"
        )
    options = [m for m in FIXED_MACHINES if m.accelerator is kind]
    with_count = [m for m in options if count in m.counts]
    if not with_count:
        counts = sorted({c for m in options for c in m.counts})
        raise VertexSpecError(
            f"Vertex AI offers {resource_key(kind)} in counts {_counts(counts)} per machine, not {count} "
            f"(machines: {', '.join(sorted({m.name for m in options}))})"
        )
    for machine in with_count:
        if _fits(machine, cpus, memory):
            return _spec(machine.name, kind, count)
    best = with_count[-1]
    raise VertexSpecError(
        f"{best.name} ({count} x {resource_key(kind)}) has {best.cpus} vCPUs and {best.memory_gib:g} GiB; "
        f"the job asks for {cpus:g} vCPUs and {memory / GIB:g} GiB"
    )


def _checked(machine_type: str, kind: Optional[ResourceType], count: int, cpus: float, memory: float) -> dict[str, Any]:
    known = _known(machine_type)
    family = machine_type.split("-")[0]
    if not known and family not in {"n1", "a2", "a3", "a4", "a4x", "g2", "ct4p", "ct5lp", "cloud"}:
        return _spec(machine_type, kind, count)  # A family we have no table for: Vertex checks it.
    if not known:
        raise VertexSpecError(f"Vertex(machine_type={machine_type!r}): not a {family} machine type Vertex AI offers")
    if family == "n1":
        machine = known[0]
        if kind is not None and kind not in N1_GPUS:
            raise VertexSpecError(
                f"Vertex(machine_type={machine_type!r}): N1 machines take {', '.join(map(resource_key, N1_GPUS))} "
                f"GPUs, not {resource_key(kind)}; {_suggest(kind)}"
            )
        if kind is not None and count not in N1_GPUS[kind]:
            raise VertexSpecError(f"Vertex AI attaches {resource_key(kind)} GPUs in counts {_counts(N1_GPUS[kind])}, "
                                  f"not {count}")
    else:
        matching = [m for m in known if m.accelerator is kind and count in m.counts]
        if not matching:
            machine = known[0]
            assert machine.accelerator is not None
            wanted = f"{count} x {resource_key(kind)}" if kind is not None else "no accelerator"
            raise VertexSpecError(
                f"Vertex(machine_type={machine_type!r}) comes with {machine.counts[0]} x {resource_key(machine.accelerator)}; "
                f"the job asks for {wanted}"
            )
        machine = matching[0]
    if not _fits(machine, cpus, memory):
        raise VertexSpecError(
            f"Vertex(machine_type={machine_type!r}) has {machine.cpus} vCPUs and {machine.memory_gib:g} GiB; "
            f"the job asks for {cpus:g} vCPUs and {memory / GIB:g} GiB"
        )
    return _spec(machine_type, kind, count)


def _suggest(kind: ResourceType) -> str:
    names = sorted({m.name for m in FIXED_MACHINES if m.accelerator is kind})
    return f"{resource_key(kind)} runs on {', '.join(names)}" if names else "leave machine_type unset"


def _counts(counts: Sequence[int]) -> str:
    return ", ".join(map(str, counts))


def _spec(machine_type: str, kind: Optional[ResourceType], count: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"machine_type": machine_type}
    if kind is not None:
        spec["accelerator_type"] = ACCELERATORS[kind]
        spec["accelerator_count"] = count
    return spec


@attrs.frozen
class PoolJob:
    """One job of a unit as a worker pool: its image, argv tail, environment and machine."""

    image_uri: str
    args: tuple[str, ...]
    env: Mapping[str, str]
    requirements: JobRequirements
    machine_type: Optional[str] = None
    boot_disk_size_gb: Optional[int] = None


def worker_pools(jobs: Sequence[PoolJob]) -> list[dict[str, Any]]:
    """One worker pool per job, in order (the first is the chief, with one replica).

    A single job with ``replicas=N`` becomes a chief pool and a pool of ``N - 1`` workers
    running the same container (Vertex requires one replica in the first pool).
    """
    if not jobs:
        raise VertexSpecError("a work unit needs at least one job")
    pools: list[dict[str, Any]] = []
    for index, job in enumerate(jobs):
        replicas = replica_count(job.requirements)
        pool = _pool(job)
        if index == 0 and replicas > 1:
            if len(jobs) > 1:
                raise VertexSpecError(
                    f"the first job of a JobGroup is Vertex's chief pool and runs one replica, not {replicas}; "
                    "put a job with replicas=1 first"
                )
            pools.append({**pool, "replica_count": 1})
            pools.append({**pool, "replica_count": replicas - 1})
            continue
        pools.append({**pool, "replica_count": replicas})
    if len(pools) > MAX_POOLS:
        raise VertexSpecError(
            f"a Vertex AI CustomJob has at most {MAX_POOLS} worker pools; this unit needs {len(pools)}"
        )
    return pools


def _pool(job: PoolJob) -> dict[str, Any]:
    container: dict[str, Any] = {"image_uri": job.image_uri, "args": list(job.args)}
    if job.env:
        container["env"] = [{"name": name, "value": value} for name, value in job.env.items()]
    pool: dict[str, Any] = {
        "machine_spec": machine_spec(job.requirements, job.machine_type), "container_spec": container,
    }
    if job.boot_disk_size_gb is not None:
        pool["disk_spec"] = {"boot_disk_size_gb": job.boot_disk_size_gb}
    return pool


def check_labels(labels: Mapping[str, str], where: str = "Vertex(labels=...)") -> dict[str, str]:
    """Labels as Vertex accepts them (lowercase letters, digits, ``_`` and ``-``; 63 characters)."""
    checked = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL.match(key):
            raise VertexSpecError(f"{where}: label key {key!r} must be 1-63 lowercase letters, digits, _ or -, "
                                  "starting with a letter")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise VertexSpecError(f"{where}: label {key!r} has value {value!r}; values are up to 63 lowercase "
                                  "letters, digits, _ or -")
        checked[key] = value
    return checked


def custom_job(
    display_name: str,
    pools: list[dict[str, Any]],
    *,
    labels: Mapping[str, str],
    service_account: Optional[str] = None,
    network: Optional[str] = None,
    tensorboard: Optional[str] = None,
    base_output_directory: Optional[str] = None,
    timeout_seconds: Optional[int] = None,
) -> dict[str, Any]:
    """The whole ``CustomJob`` message as a dict."""
    job_spec: dict[str, Any] = {"worker_pool_specs": pools}
    if service_account:
        job_spec["service_account"] = service_account
    if network:
        job_spec["network"] = network
    if tensorboard:
        job_spec["tensorboard"] = tensorboard
    if base_output_directory:
        job_spec["base_output_directory"] = {"output_uri_prefix": base_output_directory}
    if timeout_seconds:
        job_spec["scheduling"] = {"timeout": f"{int(timeout_seconds)}s"}
    return {"display_name": display_name[:128], "labels": dict(labels), "job_spec": job_spec}


def console_url(name: str, project: str) -> str:
    """The Cloud console page of a CustomJob (``projects/P/locations/L/customJobs/ID``)."""
    parts = name.split("/")
    if len(parts) != 6 or parts[2] != "locations" or parts[4] != "customJobs":
        raise ValueError(f"not a CustomJob resource name: {name!r}")
    return f"https://console.cloud.google.com/vertex-ai/locations/{parts[3]}/training/{parts[5]}?project={project}"
