"""Resource requirements of a job: CPUs, memory, accelerators, replicas.

``JobRequirements(cpu=2, ram=4 * xm.GiB, T4=1)`` validates names and amounts when it
is built, so a typo fails in the launch script, not on the cluster.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Optional, Union


class ResourceType(enum.Enum):
    """Kinds of resources. Lookup by name is case-insensitive and knows aliases (RAM, DISK)."""

    CPU = "cpu"
    MEMORY = "memory"
    EPHEMERAL_STORAGE = "ephemeral_storage"
    LOCAL_GPU = "local_gpu"
    # GPUs.
    P4 = "p4"
    T4 = "t4"
    P100 = "p100"
    V100 = "v100"
    A100 = "a100"
    A100_80GIB = "a100_80gib"
    A10G = "a10g"
    L4 = "l4"
    H100 = "h100"
    H200 = "h200"
    B200 = "b200"
    GB200 = "gb200"
    GB300 = "gb300"
    # TPUs.
    TPU_V2 = "tpu_v2"
    TPU_V3 = "tpu_v3"
    TPU_V4 = "tpu_v4"
    TPU_V5E = "tpu_v5e"
    TPU_V5P = "tpu_v5p"
    TPU_V6E = "tpu_v6e"
    TPU_V7X = "tpu_v7x"

    @classmethod
    def lookup(cls, name: Union[str, ResourceType]) -> ResourceType:
        if isinstance(name, ResourceType):
            return name
        key = name.strip().lower()
        key = _ALIASES.get(key, key)
        for member in cls:
            if member.value == key:
                return member
        valid = ", ".join(sorted({m.name.lower() for m in cls} | set(_ALIASES)))
        raise ValueError(f"unknown resource {name!r}; known resources: {valid}")

    @property
    def is_gpu(self) -> bool:
        return self in _GPUS

    @property
    def is_tpu(self) -> bool:
        return self.name.startswith("TPU_")

    @property
    def is_accelerator(self) -> bool:
        return self.is_gpu or self.is_tpu


_ALIASES = {"ram": "memory", "disk": "ephemeral_storage", "v2": "tpu_v2", "v3": "tpu_v3"}
_GPUS = frozenset(
    m for m in ResourceType if m.name in {
        "LOCAL_GPU", "P4", "T4", "P100", "V100", "A100", "A100_80GIB", "A10G", "L4",
        "H100", "H200", "B200", "GB200", "GB300",
    }
)

ResourceDict = dict[ResourceType, float]


class JobRequirements:
    """What a job needs. Amounts must be non-negative numbers; at most one accelerator kind.

    Parameters
    ----------
    resources:
        A mapping from resource name or :class:`ResourceType` to an amount.
    replicas:
        How many copies of the job to run (executors that support it).
    location:
        A placement hint (zone, partition, node pool), executor-specific.
    **kw_resources:
        Resources by keyword, e.g. ``cpu=2, ram=4 * xm.GiB, t4=1``.
    """

    __slots__ = ("task_requirements", "accelerator", "replicas", "location", "service_tier")

    def __init__(
        self,
        resources: Optional[Mapping[Union[str, ResourceType], float]] = None,
        *,
        replicas: Optional[int] = None,
        location: Optional[str] = None,
        service_tier: Optional[str] = None,
        **kw_resources: float,
    ) -> None:
        merged: ResourceDict = {}
        for source in (resources or {}, kw_resources):
            for name, amount in source.items():
                kind = ResourceType.lookup(name)
                if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                    raise TypeError(f"resource {kind.value}: amount must be a number, got {amount!r}")
                if not math.isfinite(amount) or amount < 0:
                    raise ValueError(f"resource {kind.value}: amount must be a finite number >= 0, got {amount}")
                if kind in merged:
                    raise ValueError(f"resource {kind.value} is given twice")
                merged[kind] = amount
        accelerators = [kind for kind in merged if kind.is_accelerator]
        if len(accelerators) > 1:
            names = ", ".join(k.value for k in accelerators)
            raise ValueError(f"a job can request one accelerator kind, got {names}")
        if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1):
            raise ValueError(f"replicas must be a positive integer, got {replicas!r}")
        self.task_requirements = merged
        self.accelerator: Optional[ResourceType] = accelerators[0] if accelerators else None
        self.replicas = replicas
        self.location = location
        self.service_tier = service_tier

    def get(self, kind: Union[str, ResourceType], default: float = 0) -> float:
        return self.task_requirements.get(ResourceType.lookup(kind), default)

    def merge(self, other: JobRequirements) -> JobRequirements:
        """A new requirement set: ``other``'s values (and accelerator kind) win."""
        mine = self.task_requirements
        if other.accelerator is not None:  # The other's accelerator replaces ours.
            mine = {kind: amount for kind, amount in mine.items() if not kind.is_accelerator}
        resources = {**mine, **other.task_requirements}
        return JobRequirements(
            resources,
            replicas=other.replicas if other.replicas is not None else self.replicas,
            location=other.location or self.location,
            service_tier=other.service_tier or self.service_tier,
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k.value: v for k, v in self.task_requirements.items()}
        for key in ("replicas", "location", "service_tier"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobRequirements) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items(), key=lambda kv: kv[0])))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"JobRequirements({inner})"
