"""Resource requirements of a job: CPUs, memory, one kind of accelerator with its topology, replicas.

Behaves as XManager 0.8.5's ``xm`` resources: ``ResourceType`` members carry XManager's numeric
ids (``ResourceType.V100.value == 17``), names are looked up in any case (``ResourceType['v100']``)
with the aliases ``RAM`` and ``DISK``, and ``JobRequirements`` parses and checks amounts as
XManager does, with its error types and messages. An accelerator amount may be a topology
(``tpu_v3='4x4'``, ``gb200='4x18'``), optionally with ``*N`` slices (``gb300='4x18*3'``); a
multi-host GPU topology implies the number of replicas.

Executors name resources with :func:`resource_key` (``'v100'``, ``'l4'``, ``'local_gpu'``), not
with member values. :func:`requested` and :func:`replica_count` read amounts and refuse what
XManager stores unchecked but a cluster would reject (a negative CPU count, ``replicas=-3``).
"""

from __future__ import annotations

import enum
import functools
import math
import numbers
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, Optional, Union


class _CaseInsensitiveLookup(enum.EnumMeta):
    """``Enum['name']`` in any case; an unknown name raises ``KeyError("Unknown <Enum> 'name'")``."""

    def __getitem__(cls, name: str) -> Any:
        try:
            return super().__getitem__(name.upper())
        except KeyError:
            raise KeyError(f"Unknown {cls.__name__} {name!r}")  # noqa: B904 - chained as XManager's is.


class Architecture(enum.Enum):
    """CPU architecture a job runs on."""

    HASWELL = 1
    ARM = 2


class ResourceType(enum.Enum, metaclass=_CaseInsensitiveLookup):
    """A countable resource: CPU (vCPUs), memory and disk (bytes), and each accelerator model.

    Values are XManager's resource ids; ``str()`` is the name.
    """

    #: Resource id -> the CPU architecture hosting it, set below the class (not a member).
    __RESOURCE_TYPE_TO_ARCHITECTURE__: ClassVar[dict[int, Architecture]]

    CPU = 100002
    MEMORY = 39
    RAM = 39
    EPHEMERAL_STORAGE = 100003
    DISK = 100003
    # GPUs. LOCAL_GPU is "any GPU of this machine".
    LOCAL_GPU = 100006
    P4 = 21
    T4 = 22
    L4_24TH = 68
    P100 = 14
    V100 = 17
    A100 = 46
    A100_80GIB = 66
    H100 = 70
    H100_MEGA = 113
    H200 = 86
    B200 = 87
    B300 = 112
    GB200 = 89
    GB300 = 100
    VR200 = 110
    B40_48TH = 93
    # TPUs.
    TPU_V2 = 3
    TPU_V3 = 16
    TPU_V4 = 34
    TPU_V5E = 60
    TPU_V5P = 59
    TPU_V6E = 63
    TPU_V7X = 92

    def architecture(self) -> Architecture:
        """The CPU architecture hosting this accelerator; ValueError for CPU, memory, disk and LOCAL_GPU."""
        table = ResourceType.__RESOURCE_TYPE_TO_ARCHITECTURE__
        if self.value not in table:
            raise ValueError(f"No Architecture mapped for {self}.")
        return table[self.value]

    def __str__(self) -> str:
        return self.name


_NOT_HOSTED = {"CPU", "MEMORY", "EPHEMERAL_STORAGE", "LOCAL_GPU"}
_ARM_HOSTED = {"GB200", "GB300", "VR200"}
# Host architecture by resource id, for every accelerator model (XManager keeps the same table there).
ResourceType.__RESOURCE_TYPE_TO_ARCHITECTURE__ = {
    member.value: Architecture.ARM if member.name in _ARM_HOSTED else Architecture.HASWELL
    for member in ResourceType
    if member.name not in _NOT_HOSTED
}


class ServiceTier(enum.Enum, metaclass=_CaseInsensitiveLookup):
    """How much availability a job is promised (and pays for): PROD > BATCH > FREEBIE."""

    PROD = 200
    BATCH = 100
    FREEBIE = 25


_DEFAULT_SERVICE_TIER = ServiceTier.PROD


def _enum_subset(name: str, members: Iterable[ResourceType]) -> Any:
    """A class used like an enum of some ResourceType members: ``GpuType.V100 is ResourceType.V100``.

    ``GpuType['v100']``, ``GpuType(17)``, iteration, ``in`` and ``GpuType.contains(kind)`` work;
    ``len()`` does not, as in XManager.
    """
    wanted = frozenset(members)
    chosen = [member for member in ResourceType if member in wanted]

    class EnumSubsetMetaclass(type):
        def __getitem__(cls, item: str) -> ResourceType:
            member = ResourceType[item]
            if member not in chosen:
                raise AttributeError(f"type object '{cls.__name__}' has no attribute '{item}'")
            return member

        def __iter__(cls) -> Iterator[ResourceType]:
            return iter(chosen)

        def contains(cls, value: ResourceType) -> bool:
            return value in chosen

    class EnumSubset(metaclass=EnumSubsetMetaclass):
        def __new__(cls, value: int) -> ResourceType:  # type: ignore[misc]
            member = ResourceType(value)
            if member not in chosen:
                raise ValueError(f"{value} is not a valid {cls.__name__}")
            return member

    EnumSubset.__name__ = name
    for key, member in ResourceType.__members__.items():
        if member in chosen:
            setattr(EnumSubset, key, member)
    return EnumSubset


TpuType = _enum_subset("TpuType", [member for member in ResourceType if member.name.startswith("TPU_")])
GpuType = _enum_subset("GpuType", [
    member for member in ResourceType if member.name not in _NOT_HOSTED and not member.name.startswith("TPU_")
])
AcceleratorType = _enum_subset("AcceleratorType", [ResourceType.LOCAL_GPU, *TpuType, *GpuType])


class ResourceDict(MutableMapping[ResourceType, float]):
    """Amounts by ResourceType, with ``+`` (per resource) and ``*`` by a number (every amount)."""

    def __init__(self) -> None:
        self.__dict: dict[ResourceType, float] = {}

    def __getitem__(self, key: ResourceType) -> float:
        return self.__dict[key]

    def get(self, key: ResourceType, default: Any = None) -> Any:
        # Without the KeyError the Mapping mixin's get raises and catches (it is asked once per launched job).
        return self.__dict.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.__dict

    def __setitem__(self, key: ResourceType, value: float) -> None:
        self.__dict[key] = value

    def __delitem__(self, key: ResourceType) -> None:
        del self.__dict[key]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self.__dict)

    def __len__(self) -> int:
        return len(self.__dict)

    def __add__(self, other: Mapping[ResourceType, float]) -> ResourceDict:
        total = ResourceDict()
        for key in [*self.keys(), *other.keys()]:
            total[key] = self.get(key, 0) + other.get(key, 0)
        return total

    def __mul__(self, factor: float) -> ResourceDict:
        scaled = ResourceDict()
        for key, value in self.items():
            scaled[key] = value * factor
        return scaled

    def __rmul__(self, factor: float) -> ResourceDict:
        return self * factor

    def __str__(self) -> str:
        return ", ".join(sorted(f"{key}: {value}" for key, value in self.items()))


class InvalidTpuTopologyError(Exception):
    """A topology string that is not ``N``, ``NxM``, ... optionally with ``_twisted`` / ``_untwisted``."""


# Digits, single 'x' separators (a trailing one passes here and fails in int()), an optional suffix.
_TOPOLOGY = re.compile(r"\d+(?:x\d+)*x?(?:_(?:un)?twisted)?")


class Topology:
    """How accelerators are connected: ``'4'`` (4 devices on a host), ``'4x4'``, ``'2x2x1'``, ``'4x4_twisted'``."""

    def __init__(self, name: str) -> None:
        if not _TOPOLOGY.fullmatch(name):
            raise InvalidTpuTopologyError(f"Invalid TPU topology: {name}.")
        self._name = name
        self.dimensions = [int(size) for size in name.split("_")[0].split("x")]

    @property
    def chip_count(self) -> int:
        return functools.reduce(operator.mul, self.dimensions)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"xm.Topology({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topology) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


ResourceQuantity = Union[int, float, str, Topology]
#: Amounts by ResourceType, by name, or both. XManager says Mapping[ResourceType | str, ResourceQuantity] alone,
#: which refuses a dict typed with one kind of key (a Mapping's key type is invariant).
ResourceAmounts = Union[
    Mapping[ResourceType, ResourceQuantity],
    Mapping[str, ResourceQuantity],
    Mapping[Union[ResourceType, str], ResourceQuantity],
]


def _quantity(resource: Any, value: Any) -> tuple[float, Optional[Topology], Optional[int]]:
    """``(amount of one slice, its topology, '*N' slices or None)``; ValueError naming ``resource`` if unreadable."""
    try:
        if isinstance(value, str):
            text, star, slices = value.partition("*")
            count = int(slices) if star else None
            if "x" in text:
                topology = Topology(text)
                return topology.chip_count, topology, count
            return float(text), None, count
        if isinstance(value, Topology):
            return value.chip_count, value, None
        return float(value), None, None
    except Exception as error:
        raise ValueError(f"Couldn't parse resource quantity for {resource}. {value!r} was given.") from error


def _replicas(value: Any) -> int:
    """``replicas`` given among the resources: a whole number >= 1 (or a string or float of one)."""
    message = f"replicas must be a positive integer, got {value!r}"
    if isinstance(value, Topology):
        raise ValueError(message)
    try:
        number = float(value)
    except ValueError as error:
        raise ValueError(message) from error
    if not number.is_integer() or number < 1:
        raise ValueError(message)
    return int(number)


class JobRequirements:
    """What one task of a job needs, and how many tasks (replicas) run.

    Attributes: ``task_requirements`` (a ResourceDict), ``accelerator`` and its ``topology``
    (or None), ``architecture``, ``location`` (a placement hint: zone, partition, cluster),
    ``service_tier``, ``replicas`` and ``num_slices``.

    ``resources`` maps names or ResourceTypes to amounts; ``**kw_resources`` gives them by
    keyword (``cpu=2``); ``replicas`` may be among them. An accelerator count must print as a
    topology (``v100=0.5`` raises InvalidTpuTopologyError, as in XManager); other amounts are
    taken as given (executors refuse negative or non-finite ones at launch).
    """

    task_requirements: ResourceDict
    accelerator: Optional[ResourceType]
    architecture: Optional[Architecture]
    topology: Optional[Topology]
    location: Optional[str]

    def __init__(
        self,
        resources: ResourceAmounts = {},  # noqa: B006 - never mutated.
        *,
        architecture: Optional[Architecture] = None,
        location: Optional[str] = None,
        replicas: Optional[int] = None,
        service_tier: Optional[ServiceTier] = None,
        num_slices: Optional[int] = None,
        **kw_resources: ResourceQuantity,
    ) -> None:
        self.location = location
        self._service_tier = service_tier or _DEFAULT_SERVICE_TIER
        self.task_requirements = ResourceDict()
        self.accelerator = None
        self.topology = None
        suffix_slices: Optional[int] = None
        for name, value in [*resources.items(), *kw_resources.items()]:
            if name == "replicas":
                if replicas is not None:
                    raise ValueError("replicas has been specified twice.")
                replicas = _replicas(value)
                continue
            amount, topology, slices = _quantity(name, value)
            if isinstance(name, str):
                kind = ResourceType[name]
            elif isinstance(name, ResourceType):
                kind = name
            else:
                raise TypeError(f"Unsupported resource: {name!r}")
            if kind in AcceleratorType:
                if self.accelerator is not None:
                    raise ValueError("Accelerator already set.")
                self.accelerator = kind
                self.topology = topology or Topology(f"{amount:g}")
                suffix_slices = slices
            elif topology is not None:
                raise ValueError(f"A topology specified for non accelerator resource {kind}.")
            elif slices is not None:
                raise ValueError(f'"*" operator for num_slices specified on non-accelerator resource {kind}.')
            if kind in self.task_requirements:
                raise ValueError(f"{kind} has been specified twice.")
            self.task_requirements[kind] = amount
        self._num_slices = self._slices(num_slices, suffix_slices)
        self.replicas = self._implied_replicas(replicas) or 1
        if architecture is None and self.accelerator is not None:
            architecture = _hosting(self.accelerator)
        self.architecture = architecture
        self._check_architecture()

    def _slices(self, given: Optional[int], suffix: Optional[int]) -> int:
        if suffix is not None:
            if given is not None and given != suffix:
                raise ValueError(
                    f"Specified num_slices={given} which does not match {self.accelerator} suffix ({suffix} slices)."
                )
            given = suffix
        if given is None:
            return 1
        if given < 1:
            raise ValueError(f"num_slices must be positive, got {given}")
        if given > 1 and self.accelerator in TpuType:
            raise ValueError(f"num_slices is not supported for TPUs, got {given} for {self.accelerator}.")
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
                f"For multihost GPUs with topology {topology} and num_slices {self._num_slices}, replicas should be "
                f"either None or {hosts}. Got: {replicas}"
            )
        return hosts

    def _check_architecture(self) -> None:
        if self.architecture is None or self.accelerator is None:
            return
        needed = _hosting(self.accelerator)
        if needed is not None and needed != self.architecture:
            raise ValueError(
                f"Accelerator {self.accelerator} requires architecture {needed}, but {self.architecture} was specified."
            )

    @property
    def service_tier(self) -> ServiceTier:
        return self._service_tier

    @service_tier.setter
    def service_tier(self, value: ServiceTier) -> None:
        self._service_tier = value

    @property
    def num_slices(self) -> int:
        return self._num_slices

    def merge(self, other: JobRequirements) -> JobRequirements:
        """New requirements: ``other``'s resources and accelerator win, then its non-default options.

        As in XManager, the amounts are re-read (a TPU's '4x4' becomes 16 chips) and the service tier
        is not carried over (the result has the default, PROD).
        """
        resources = dict(self.task_requirements)
        if other.accelerator is not None and self.accelerator is not None:
            resources.pop(self.accelerator, None)
        resources.update(other.task_requirements)
        options: dict[str, Any] = {
            "location": other.location if other.location is not None else self.location,
            "architecture": other.architecture if other.architecture is not None else self.architecture,
            "num_slices": other.num_slices if other.num_slices != 1 else self.num_slices,
        }
        if other.replicas != 1 or self.replicas != 1:
            options["replicas"] = other.replicas if other.replicas != 1 else self.replicas
        return JobRequirements(resources, **options)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobRequirements):
            return False
        return (
            self.task_requirements == other.task_requirements
            and self.accelerator == other.accelerator
            and self.topology == other.topology
            and self.location == other.location
            and self.service_tier == other.service_tier
            and self.replicas == other.replicas
            and self.num_slices == other.num_slices
        )

    # Mutable, and unhashable in XManager too. The ignore: typeshed types object.__hash__ as a method, and
    # None is how Python marks a class unhashable (typeshed's own list does the same).
    __hash__ = None  # type: ignore[assignment]

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


def _hosting(kind: ResourceType) -> Optional[Architecture]:
    try:
        return kind.architecture()
    except ValueError:
        return None


# ---- for executors ---------------------------------------------------------------------------

def resource_key(kind: ResourceType) -> str:
    """The name a user writes in ``JobRequirements`` for a resource: ``'cpu'``, ``'memory'``, ``'v100'``, ``'tpu_v4'``."""
    return kind.name.lower()


def requested(requirements: JobRequirements, kind: ResourceType, default: float = 0.0) -> float:
    """The amount of ``kind`` one task asks for (``default`` if none); ValueError if negative or not finite."""
    amount = requirements.task_requirements.get(kind, default)
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not math.isfinite(amount) or amount < 0:
        raise ValueError(f"JobRequirements: {resource_key(kind)}={amount!r} is not an amount (a finite number >= 0)")
    return float(amount)


def replica_count(requirements: JobRequirements) -> int:
    """``requirements.replicas`` as a whole number >= 1; ValueError otherwise (XManager stores it unchecked)."""
    replicas = requirements.replicas
    number = replicas if isinstance(replicas, numbers.Real) and not isinstance(replicas, bool) else math.nan
    if not math.isfinite(number) or not float(number).is_integer() or number < 1:
        raise ValueError(f"JobRequirements: replicas must be a positive integer, got {replicas!r}")
    return int(number)


__all__ = [
    "AcceleratorType", "Architecture", "GpuType", "InvalidTpuTopologyError", "JobRequirements", "ResourceDict",
    "ResourceQuantity", "ResourceType", "ServiceTier", "Topology", "TpuType",
]
