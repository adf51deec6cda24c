"""Resource requirements of a job: CPUs, memory, one kind of accelerator with its topology, replicas.

``JobRequirements(cpu=2, ram=4 * xm.GiB, v100=1)`` checks names and amounts when it is built,
so a typo fails in the launch script, not on the cluster. Names are case-insensitive and know
XManager's aliases (``ram``, ``disk``). An accelerator amount may be a topology (``tpu_v3='4x4'``,
``gb200='4x18x2'``), optionally with a ``*N`` number of slices (``gb300='4x18*3'``); a
multi-host GPU topology implies the number of replicas.

Member values are our lowercase names (what executors print and send); XManager's numeric
resource ids are accepted too, so ``ResourceType(17)`` and ``GpuType(17)`` are V100.
"""

from __future__ import annotations

import enum
import functools
import math
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Optional, Union

#: Our short names for TPUs, beside the enums' own aliases (RAM, DISK, L4).
_ALIASES = {"V2": "TPU_V2", "V3": "TPU_V3"}


class _ByNameAnyCase(enum.EnumMeta):
    """Enum lookup by name ignoring case (``ResourceType['cpu']``); unknown names raise KeyError."""

    def __getitem__(cls, name: Any) -> Any:
        if isinstance(name, str):
            key = name.strip().upper()
            key = _ALIASES.get(key, key)
            members = cls.__members__
            if key in members:
                return members[key]
        known = ", ".join(sorted(n.lower() for n in cls.__members__))
        raise KeyError(f"unknown {cls.__name__} {name!r}; known: {known}")


class Architecture(enum.Enum):
    """CPU architecture a job runs on."""

    HASWELL = 1
    ARM = 2


class ResourceType(enum.Enum, metaclass=_ByNameAnyCase):
    """A countable resource: CPU (vCPUs), memory and disk (bytes), and each accelerator model."""

    CPU = "cpu"
    MEMORY = "memory"
    RAM = "memory"
    EPHEMERAL_STORAGE = "ephemeral_storage"
    DISK = "ephemeral_storage"
    # GPUs. LOCAL_GPU is "any GPU of this machine".
    LOCAL_GPU = "local_gpu"
    P4 = "p4"
    T4 = "t4"
    L4_24TH = "l4"
    L4 = "l4"
    P100 = "p100"
    V100 = "v100"
    A100 = "a100"
    A100_80GIB = "a100_80gib"
    A10G = "a10g"
    H100 = "h100"
    H100_MEGA = "h100_mega"
    H200 = "h200"
    B200 = "b200"
    B300 = "b300"
    GB200 = "gb200"
    GB300 = "gb300"
    VR200 = "vr200"
    B40_48TH = "b40_48th"
    # TPUs.
    TPU_V2 = "tpu_v2"
    TPU_V3 = "tpu_v3"
    TPU_V4 = "tpu_v4"
    TPU_V5E = "tpu_v5e"
    TPU_V5P = "tpu_v5p"
    TPU_V6E = "tpu_v6e"
    TPU_V7X = "tpu_v7x"

    @classmethod
    def _missing_(cls, value: object) -> Optional[ResourceType]:
        if isinstance(value, int) and not isinstance(value, bool):
            return _BY_XM_ID.get(value)
        return None

    @classmethod
    def lookup(cls, name: Union[str, ResourceType]) -> ResourceType:
        """The member for a name in any case or an alias; a member is returned as is."""
        return name if isinstance(name, ResourceType) else cls[name]

    def architecture(self) -> Architecture:
        """The CPU architecture that hosts this accelerator; ValueError when there is no fixed one."""
        try:
            return _ARCHITECTURES[self]
        except KeyError:
            raise ValueError(f"no architecture is known for {self}") from None

    @property
    def is_gpu(self) -> bool:
        return self is ResourceType.LOCAL_GPU or self in GpuType

    @property
    def is_tpu(self) -> bool:
        return self in TpuType

    @property
    def is_accelerator(self) -> bool:
        return self in AcceleratorType

    def __str__(self) -> str:
        return self.name


#: XManager's numeric resource ids (its enum values), accepted by ``ResourceType(id)``.
_XM_IDS = {
    "CPU": 100002, "MEMORY": 39, "EPHEMERAL_STORAGE": 100003, "LOCAL_GPU": 100006,
    "P4": 21, "T4": 22, "L4_24TH": 68, "P100": 14, "V100": 17, "A100": 46, "A100_80GIB": 66,
    "H100": 70, "H100_MEGA": 113, "H200": 86, "B200": 87, "B300": 112, "GB200": 89, "GB300": 100,
    "VR200": 110, "B40_48TH": 93,
    "TPU_V2": 3, "TPU_V3": 16, "TPU_V4": 34, "TPU_V5E": 60, "TPU_V5P": 59, "TPU_V6E": 63, "TPU_V7X": 92,
}
_BY_XM_ID = {number: ResourceType[name] for name, number in _XM_IDS.items()}

_ARM_HOSTED = {"GB200", "GB300", "VR200"}
#: The host architecture of each accelerator model XManager knows (not LOCAL_GPU: any GPU here).
_ARCHITECTURES = {
    member: Architecture.ARM if member.name in _ARM_HOSTED else Architecture.HASWELL
    for member in ResourceType
    if member.name in _XM_IDS and member.name not in {"CPU", "MEMORY", "EPHEMERAL_STORAGE", "LOCAL_GPU"}
}


class ServiceTier(enum.Enum, metaclass=_ByNameAnyCase):
    """How much availability a job is promised (and pays for): PROD > BATCH > FREEBIE."""

    PROD = 200
    BATCH = 100
    FREEBIE = 25


_DEFAULT_SERVICE_TIER = ServiceTier.PROD


class _SubsetMeta(type):
    """The class of a named subset of ResourceType members, usable like an enum of its own."""

    _members: frozenset[ResourceType]

    def __getitem__(cls, name: str) -> ResourceType:
        member = ResourceType[name]
        if member not in cls._members:
            raise AttributeError(f"{cls.__name__} has no member {name!r}")
        return member

    def __iter__(cls) -> Iterator[ResourceType]:
        return iter(sorted(cls._members, key=lambda member: member.name))

    def __contains__(cls, value: object) -> bool:
        return value in cls._members

    def __len__(cls) -> int:
        return len(cls._members)

    def __repr__(cls) -> str:
        return f"<resource subset {cls.__name__}>"


def _subset(name: str, members: Iterable[ResourceType]) -> Any:
    """A class whose attributes are the given members: ``GpuType.V100 is ResourceType.V100``."""
    chosen = frozenset(members)

    def construct(cls: Any, value: Any) -> ResourceType:
        member = ResourceType(value)
        if member not in chosen:
            raise ValueError(f"{value!r} is not a valid {name}")
        return member

    namespace: dict[str, Any] = {"_members": chosen, "__new__": construct}
    namespace.update({key: member for key, member in ResourceType.__members__.items() if member in chosen})
    return _SubsetMeta(name, (), namespace)


TpuType = _subset("TpuType", [m for m in ResourceType if m.name.startswith("TPU_")])
GpuType = _subset("GpuType", [
    ResourceType.P4, ResourceType.T4, ResourceType.L4_24TH, ResourceType.P100, ResourceType.V100,
    ResourceType.A100, ResourceType.A100_80GIB, ResourceType.A10G, ResourceType.H100, ResourceType.H100_MEGA,
    ResourceType.H200, ResourceType.B200, ResourceType.B300, ResourceType.GB200, ResourceType.GB300,
    ResourceType.VR200, ResourceType.B40_48TH,
])
AcceleratorType = _subset("AcceleratorType", [ResourceType.LOCAL_GPU, *TpuType, *GpuType])


class ResourceDict(MutableMapping):
    """Amounts by ResourceType, with ``+`` (per resource) and ``*`` by a number (every amount)."""

    def __init__(self) -> None:
        self._amounts: dict[ResourceType, float] = {}

    def __getitem__(self, key: ResourceType) -> float:
        return self._amounts[key]

    def __setitem__(self, key: ResourceType, value: float) -> None:
        self._amounts[key] = value

    def __delitem__(self, key: ResourceType) -> None:
        del self._amounts[key]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._amounts)

    def __len__(self) -> int:
        return len(self._amounts)

    def __add__(self, other: ResourceDict) -> ResourceDict:
        total = ResourceDict()
        for key in [*self, *other]:
            total[key] = self.get(key, 0) + other.get(key, 0)
        return total

    def __mul__(self, factor: float) -> ResourceDict:
        scaled = ResourceDict()
        for key, value in self.items():
            scaled[key] = value * factor
        return scaled

    __rmul__ = __mul__

    def __str__(self) -> str:
        return ", ".join(sorted(f"{key}: {value}" for key, value in self.items()))

    def __repr__(self) -> str:
        return f"ResourceDict({{{', '.join(f'{key}: {value!r}' for key, value in self.items())}}})"


class InvalidTpuTopologyError(Exception):
    """A topology string that is not ``N``, ``NxM``, ... optionally with ``_twisted`` / ``_untwisted``."""


_TOPOLOGY = re.compile(r"\d+(x\d+)*(_(un)?twisted)?")


class Topology:
    """How accelerators are connected: ``'4'`` (4 devices on a host), ``'4x4'``, ``'2x2x1'``, ``'4x4_twisted'``."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _TOPOLOGY.fullmatch(name):
            raise InvalidTpuTopologyError(f"invalid accelerator topology {name!r}; expected e.g. '8', '4x4' or '2x2x1'")
        self._name = name
        self.dimensions = [int(size) for size in name.split("_")[0].split("x")]

    @property
    def name(self) -> str:
        return self._name

    @property
    def chip_count(self) -> int:
        return functools.reduce(operator.mul, self.dimensions)

    def __repr__(self) -> str:
        return f"xm.Topology({self._name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topology) and other._name == self._name

    def __hash__(self) -> int:
        return hash(self._name)


ResourceQuantity = Union[int, float, str, Topology]


def _amount(resource: str, value: Any) -> tuple[float, Optional[Topology], Optional[int]]:
    """``(amount of one slice, its topology, number of slices or None)`` from a resource quantity."""
    if isinstance(value, Topology):
        return float(value.chip_count), value, None
    if isinstance(value, bool):
        raise ValueError(f"resource {resource}: {value!r} is not an amount")
    try:
        if isinstance(value, str):
            text, star, slices = value.partition("*")
            count = int(slices) if star else None
            if "x" in text:
                topology = Topology(text)
                return float(topology.chip_count), topology, count
            return float(text), None, count
        amount = float(value)
    except InvalidTpuTopologyError:
        raise
    except (TypeError, ValueError) as error:
        raise ValueError(f"resource {resource}: cannot read an amount from {value!r}") from error
    return amount, None, None


def _replicas(value: Any) -> int:
    """A positive whole number of replicas (from a number or a string of one)."""
    if isinstance(value, (bool, Topology)):
        raise ValueError(f"replicas must be a positive integer, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"replicas must be a positive integer, got {value!r}") from None
    if not number.is_integer() or number < 1:
        raise ValueError(f"replicas must be a positive integer, got {value!r}")
    return int(number)


def _service_tier(value: Union[ServiceTier, str, None]) -> ServiceTier:
    if value is None:
        return _DEFAULT_SERVICE_TIER
    return value if isinstance(value, ServiceTier) else ServiceTier[value]


class JobRequirements:
    """What one task of a job needs, and how many tasks (replicas) run.

    Attributes: ``task_requirements`` (a ResourceDict), ``accelerator`` and its ``topology``
    (or None), ``architecture``, ``location`` (a placement hint: zone, partition, cluster),
    ``service_tier``, ``replicas`` and ``num_slices``.

    ``resources`` maps names or ResourceTypes to amounts; ``**kw_resources`` gives them by
    keyword (``cpu=2``). ``replicas`` may also be given in ``resources``. Raises KeyError for
    an unknown resource and ValueError for a bad amount, a resource given twice, two kinds of
    accelerator, or replicas that contradict a multi-host topology. Unlike XManager, negative
    and non-finite amounts are refused too.
    """

    def __init__(
        self,
        resources: Mapping[Union[ResourceType, str], ResourceQuantity] = {},  # noqa: B006 - never mutated.
        *,
        architecture: Optional[Architecture] = None,
        location: Optional[str] = None,
        replicas: Optional[int] = None,
        service_tier: Union[ServiceTier, str, None] = None,
        num_slices: Optional[int] = None,
        **kw_resources: ResourceQuantity,
    ) -> None:
        self.location = location
        self._service_tier = _service_tier(service_tier)
        self.task_requirements = ResourceDict()
        self.accelerator: Optional[ResourceType] = None
        self.topology: Optional[Topology] = None
        if replicas is not None:
            replicas = _replicas(replicas)
        suffix_slices: Optional[int] = None
        for name, value in [*resources.items(), *kw_resources.items()]:
            if name == "replicas":
                if replicas is not None:
                    raise ValueError("replicas has been specified twice.")
                replicas = _replicas(value)
                continue
            kind = ResourceType.lookup(name)
            amount, topology, slices = _amount(kind.name.lower(), value)
            if not math.isfinite(amount) or amount < 0:
                raise ValueError(f"resource {kind.name.lower()}: amount must be a finite number >= 0, got {value!r}")
            if kind in AcceleratorType:
                if self.accelerator is not None:
                    raise ValueError(f"a job uses one kind of accelerator; got {self.accelerator} and {kind}")
                self.accelerator = kind
                # A fractional count has no topology; executors refuse it with their own reasons.
                self.topology = topology or (Topology(f"{amount:g}") if amount.is_integer() else None)
                suffix_slices = slices
            elif topology is not None:
                raise ValueError(f"resource {kind.name.lower()} is not an accelerator; it takes no topology ({value!r})")
            elif slices is not None:
                raise ValueError(f"resource {kind.name.lower()} is not an accelerator; it takes no '*' slice count")
            if kind in self.task_requirements:
                raise ValueError(f"resource {kind.name.lower()} has been specified twice.")
            self.task_requirements[kind] = amount
        self._num_slices = self._slices(num_slices, suffix_slices)
        self.replicas = self._implied_replicas(replicas) or 1
        if architecture is None and self.accelerator is not None:
            architecture = _ARCHITECTURES.get(self.accelerator)
        self.architecture: Optional[Architecture] = architecture
        self._check_architecture()

    def _slices(self, given: Optional[int], suffix: Optional[int]) -> int:
        if suffix is not None:
            if given is not None and given != suffix:
                raise ValueError(f"num_slices={given} contradicts the '*{suffix}' of {self.accelerator}")
            given = suffix
        if given is None:
            return 1
        if given < 1:
            raise ValueError(f"num_slices must be positive, got {given}")
        if given > 1 and self.accelerator in TpuType:
            raise ValueError(f"num_slices is not supported for TPUs ({self.accelerator}), got {given}")
        return given

    def _implied_replicas(self, replicas: Optional[int]) -> Optional[int]:
        """A multi-host GPU topology (or several slices) fixes the replica count: one per host."""
        topology = self.topology
        if self.accelerator not in GpuType or topology is None or self.accelerator is ResourceType.B40_48TH:
            return replicas
        if len(topology.dimensions) == 1 and self._num_slices == 1:
            return replicas
        hosts = math.prod(topology.dimensions[1:]) * self._num_slices
        if replicas is not None and replicas != hosts:
            raise ValueError(
                f"{self.accelerator}={topology.name!r} with num_slices={self._num_slices} runs on {hosts} hosts; "
                f"replicas must be {hosts} or left out, got {replicas}"
            )
        return hosts

    def _check_architecture(self) -> None:
        if self.architecture is None or self.accelerator is None:
            return
        needed = _ARCHITECTURES.get(self.accelerator)
        if needed is not None and needed != self.architecture:
            raise ValueError(f"{self.accelerator} runs on {needed}, not on {self.architecture}")

    @property
    def service_tier(self) -> ServiceTier:
        return self._service_tier

    @service_tier.setter
    def service_tier(self, value: Union[ServiceTier, str]) -> None:
        self._service_tier = _service_tier(value)

    @property
    def num_slices(self) -> int:
        return self._num_slices

    def get(self, kind: Union[str, ResourceType], default: float = 0) -> float:
        """The amount of ``kind`` (a name or a ResourceType), or ``default``."""
        return self.task_requirements.get(ResourceType.lookup(kind), default)

    def merge(self, other: JobRequirements) -> JobRequirements:
        """New requirements: ``other``'s resources, accelerator and set (non-default) options win."""
        resources: dict[ResourceType, Any] = dict(self.task_requirements)
        if other.accelerator is not None and self.accelerator is not None:
            resources.pop(self.accelerator, None)
        resources.update(other.task_requirements)
        options: dict[str, Any] = {
            "location": other.location if other.location is not None else self.location,
            "architecture": other.architecture if other.architecture is not None else self.architecture,
            "num_slices": other.num_slices if other.num_slices != 1 else self.num_slices,
            "service_tier": other.service_tier if other.service_tier != _DEFAULT_SERVICE_TIER else self.service_tier,
        }
        if other.replicas != 1 or self.replicas != 1:
            options["replicas"] = other.replicas if other.replicas != 1 else self.replicas
        return JobRequirements(resources, **options)

    def to_dict(self) -> dict[str, Any]:
        """Resources by lowercase name, then the options that differ from their defaults."""
        out: dict[str, Any] = {kind.name.lower(): amount for kind, amount in self.task_requirements.items()}
        if self.location is not None:
            out["location"] = self.location
        if self.service_tier != _DEFAULT_SERVICE_TIER:
            out["service_tier"] = self.service_tier.name.lower()
        if self.replicas != 1:
            out["replicas"] = self.replicas
        if self.num_slices != 1:
            out["num_slices"] = self.num_slices
        return out

    def _key(self) -> tuple[Any, ...]:
        return (
            tuple(sorted((kind.name, amount) for kind, amount in self.task_requirements.items())),
            self.accelerator, self.topology, self.location, self.service_tier, self.replicas, self.num_slices,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobRequirements) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = []
        for kind, amount in self.task_requirements.items():
            shown = self.topology if kind in TpuType else amount
            parts.append(f"{kind.name.lower()}={shown!r}")
        if self.location:
            parts.append(f"location={self.location!r}")
        if self.architecture:
            parts.append(f"architecture={self.architecture}")
        if self.service_tier != _DEFAULT_SERVICE_TIER:
            parts.append(f"service_tier=xm.{self.service_tier}")
        if self.replicas != 1:
            parts.append(f"replicas={self.replicas}")
        if self.num_slices != 1:
            parts.append(f"num_slices={self.num_slices}")
        return f"xm.JobRequirements({', '.join(parts)})"


__all__ = [
    "AcceleratorType", "Architecture", "GpuType", "InvalidTpuTopologyError", "JobRequirements", "ResourceDict",
    "ResourceQuantity", "ResourceType", "ServiceTier", "Topology", "TpuType",
]
