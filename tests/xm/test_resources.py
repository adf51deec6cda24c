"""JobRequirements, ResourceType and friends, pinned to XManager 0.8.5's values, reprs and errors."""

import math
import pickle

import pytest
from xmanager import xm
from xmanager.xm.resources import ResourceDict, ResourceType, replica_count, requested, resource_key

#: XManager's resource ids, in its member order (aliases left out).
XM_IDS = {
    "CPU": 100002, "MEMORY": 39, "EPHEMERAL_STORAGE": 100003, "LOCAL_GPU": 100006,
    "P4": 21, "T4": 22, "L4_24TH": 68, "P100": 14, "V100": 17, "A100": 46, "A100_80GIB": 66,
    "H100": 70, "H100_MEGA": 113, "H200": 86, "B200": 87, "B300": 112, "GB200": 89, "GB300": 100,
    "VR200": 110, "B40_48TH": 93,
    "TPU_V2": 3, "TPU_V3": 16, "TPU_V4": 34, "TPU_V5E": 60, "TPU_V5P": 59, "TPU_V6E": 63, "TPU_V7X": 92,
}
GPUS = {"P4", "T4", "L4_24TH", "P100", "V100", "A100", "A100_80GIB", "H100", "H100_MEGA", "H200", "B200", "B300",
        "GB200", "GB300", "VR200", "B40_48TH"}
TPUS = {"TPU_V2", "TPU_V3", "TPU_V4", "TPU_V5E", "TPU_V5P", "TPU_V6E", "TPU_V7X"}
HASWELL = xm.Architecture.HASWELL


def test_members_values_and_order():
    assert [(m.name, m.value) for m in ResourceType] == list(XM_IDS.items())
    assert list(ResourceType.__members__) == [
        "CPU", "MEMORY", "RAM", "EPHEMERAL_STORAGE", "DISK", *list(XM_IDS)[3:]]
    assert ResourceType.RAM is ResourceType.MEMORY and ResourceType.DISK is ResourceType.EPHEMERAL_STORAGE
    assert ResourceType.V100.value == 17 and ResourceType(17) is ResourceType.V100
    assert str(ResourceType.V100) == "V100" and f"{ResourceType.V100}" == "V100"
    assert repr(ResourceType.V100) == "<ResourceType.V100: 17>"
    assert repr(ResourceType.RAM) == "<ResourceType.MEMORY: 39>"
    assert all(pickle.loads(pickle.dumps(member)) is member for member in ResourceType)
    for gone in ("L4", "A10G"):
        assert not hasattr(ResourceType, gone)
    assert [name for name in dir(ResourceType.V100) if not name.startswith("__")] == ["architecture", "name", "value"]


@pytest.mark.parametrize("value", ["v100", "17", True, 170])
def test_value_lookup_takes_ids_only(value):
    with pytest.raises(ValueError, match=f"^{value!r} is not a valid ResourceType$"):
        ResourceType(value)


@pytest.mark.parametrize(("name", "kind"), [
    ("cpu", ResourceType.CPU), ("Cpu", ResourceType.CPU), ("ram", ResourceType.MEMORY), ("Disk", ResourceType.DISK),
    ("a100_80GiB", ResourceType.A100_80GIB), ("l4_24th", ResourceType.L4_24TH), ("tpu_v3", ResourceType.TPU_V3),
])
def test_name_lookup_in_any_case(name, kind):
    assert ResourceType[name] is kind


@pytest.mark.parametrize("name", ["l4", "a10g", "v2", "v3", " cpu", "cpus"])
def test_unknown_names(name):
    with pytest.raises(KeyError) as info:
        ResourceType[name]
    assert info.value.args == (f"Unknown ResourceType {name!r}",)
    with pytest.raises(KeyError):
        xm.JobRequirements({name: 1})


def test_name_lookup_of_a_non_string():
    with pytest.raises(AttributeError, match="'int' object has no attribute 'upper'"):
        ResourceType[17]
    with pytest.raises(KeyError, match="Unknown ServiceTier 'gold'"):
        xm.ServiceTier["gold"]
    assert xm.ServiceTier["batch"] is xm.ServiceTier.BATCH
    assert [(t.name, t.value) for t in xm.ServiceTier] == [("PROD", 200), ("BATCH", 100), ("FREEBIE", 25)]


def test_architectures():
    assert ResourceType.GB200.architecture() is xm.Architecture.ARM
    assert ResourceType.V100.architecture() is HASWELL and ResourceType.TPU_V7X.architecture() is HASWELL
    arm = {m.name for m in ResourceType if m.name in GPUS | TPUS and m.architecture() is xm.Architecture.ARM}
    assert arm == {"GB200", "GB300", "VR200"}
    for kind in ("CPU", "MEMORY", "EPHEMERAL_STORAGE", "LOCAL_GPU"):
        with pytest.raises(ValueError, match=f"^No Architecture mapped for {kind}.$"):
            ResourceType[kind].architecture()
    assert ResourceType.__RESOURCE_TYPE_TO_ARCHITECTURE__[89] is xm.Architecture.ARM


def test_subsets():
    assert {m.name for m in xm.GpuType} == GPUS
    assert {m.name for m in xm.TpuType} == TPUS
    assert {m.name for m in xm.AcceleratorType} == GPUS | TPUS | {"LOCAL_GPU"}
    assert xm.GpuType.V100 is ResourceType.V100 and xm.TpuType["tpu_v4"] is ResourceType.TPU_V4
    assert xm.GpuType(17) is ResourceType.V100 and xm.GpuType(ResourceType.T4) is ResourceType.T4
    assert ResourceType.LOCAL_GPU not in xm.GpuType and 17 not in xm.GpuType and "v100" not in xm.GpuType
    assert xm.GpuType.contains(ResourceType.T4) and not xm.TpuType.contains(ResourceType.T4)
    assert xm.GpuType.__name__ == "GpuType" and type(xm.GpuType).__name__ == "EnumSubsetMetaclass"
    assert repr(xm.GpuType) == "<class 'xmanager.xm.resources._enum_subset.<locals>.EnumSubset'>"
    assert not isinstance(ResourceType.V100, xm.GpuType)
    with pytest.raises(ValueError, match="^3 is not a valid GpuType$"):
        xm.GpuType(3)
    with pytest.raises(ValueError, match="^999 is not a valid ResourceType$"):
        xm.GpuType(999)
    with pytest.raises(AttributeError, match="^type object 'GpuType' has no attribute 'cpu'$"):
        xm.GpuType["cpu"]
    with pytest.raises(AttributeError):
        xm.GpuType.CPU  # noqa: B018
    with pytest.raises(TypeError):
        len(xm.GpuType)


def test_amounts_are_floats_and_topologies_count_chips():
    req = xm.JobRequirements(cpu=2, ram=4 * xm.GiB, v100="1")
    assert dict(req.task_requirements) == {ResourceType.CPU: 2.0, ResourceType.MEMORY: 4.0 * 2**30,
                                           ResourceType.V100: 1.0}
    assert isinstance(req.task_requirements[ResourceType.CPU], float)
    assert repr(req) == "xm.JobRequirements(cpu=2.0, memory=4294967296.0, v100=1.0, architecture=Architecture.HASWELL)"
    assert req.accelerator is ResourceType.V100 and req.topology == xm.Topology("1")
    tpu = xm.JobRequirements(tpu_v3="4x4")
    assert tpu.task_requirements[ResourceType.TPU_V3] == 16 and isinstance(tpu.task_requirements[ResourceType.TPU_V3], int)
    assert repr(tpu) == "xm.JobRequirements(tpu_v3=xm.Topology('4x4'), architecture=Architecture.HASWELL)"
    assert repr(xm.JobRequirements(gb200="4x18")) == "xm.JobRequirements(gb200=72, architecture=Architecture.ARM, replicas=18)"
    assert repr(xm.JobRequirements(cpu=True)) == "xm.JobRequirements(cpu=1.0)"
    assert repr(xm.JobRequirements(local_gpu=1)) == "xm.JobRequirements(local_gpu=1.0)"  # No fixed architecture.


@pytest.mark.parametrize("amount", [-1, -0.5, math.nan, math.inf, "inf"])
def test_odd_amounts_of_non_accelerators_are_kept(amount):
    value = xm.JobRequirements(cpu=amount).task_requirements[ResourceType.CPU]
    assert value == float(amount) or math.isnan(value)


@pytest.mark.parametrize(("amount", "shown"), [
    (0.5, "0.5"), (1.5, "1.5"), (-1, "-1"), (math.nan, "nan"), (math.inf, "inf"), (1_000_000, "1e+06"),
])
def test_accelerator_counts_must_print_as_a_topology(amount, shown):
    with pytest.raises(xm.InvalidTpuTopologyError) as info:
        xm.JobRequirements(v100=amount)
    assert str(info.value) == f"Invalid TPU topology: {shown}."


def test_zero_accelerators():
    assert xm.JobRequirements(t4=0).topology == xm.Topology("0")


@pytest.mark.parametrize(("name", "value", "cause"), [
    ("memory", None, TypeError), ("memory", [1], TypeError), ("cpu", "lots", ValueError),
    ("tpu_v3", "4xq", xm.InvalidTpuTopologyError), ("tpu_v3", "4x", ValueError), ("gpu9000", "x", Exception),
    ("cpu", "2*", ValueError),
])
def test_unreadable_amounts(name, value, cause):
    with pytest.raises(ValueError) as info:
        xm.JobRequirements({name: value})
    assert str(info.value) == f"Couldn't parse resource quantity for {name}. {value!r} was given."
    assert isinstance(info.value.__cause__, cause)


def test_resource_keys_of_other_types():
    with pytest.raises(TypeError, match=r"^Unsupported resource: 17$"):
        xm.JobRequirements({17: 1})
    assert xm.JobRequirements({ResourceType.T4: 1}).accelerator is ResourceType.T4


@pytest.mark.parametrize(("resources", "message"), [
    ({"cpu": 1, "CPU": 2}, "CPU has been specified twice."),
    ({"memory": 1, "ram": 2}, "MEMORY has been specified twice."),
    ({"t4": 1, "v100": 1}, "Accelerator already set."),
    ({"v100": 1, ResourceType.V100: 1}, "Accelerator already set."),
    ({"cpu": "2x2"}, "A topology specified for non accelerator resource CPU."),
    ({"cpu": "2*2"}, '"*" operator for num_slices specified on non-accelerator resource CPU.'),
    ({"replicas": 2.5}, "replicas must be a positive integer, got 2.5"),
    ({"replicas": 0}, "replicas must be a positive integer, got 0"),
    ({"replicas": "two"}, "replicas must be a positive integer, got 'two'"),
    ({"v100": "4x2", "replicas": 3},
     "For multihost GPUs with topology xm.Topology('4x2') and num_slices 1, replicas should be either None or 2. Got: 3"),
    ({"gb300": "4x18*3", "num_slices": 2}, "Specified num_slices=2 which does not match GB300 suffix (3 slices)."),
    ({"tpu_v4": "2x2", "num_slices": 2}, "num_slices is not supported for TPUs, got 2 for TPU_V4."),
    ({"num_slices": 0}, "num_slices must be positive, got 0"),
    ({"gb200": 4, "architecture": HASWELL},
     "Accelerator GB200 requires architecture Architecture.ARM, but Architecture.HASWELL was specified."),
])
def test_errors_as_xmanager_words_them(resources, message):
    options = {key: resources.pop(key) for key in ("num_slices", "architecture") if key in resources}
    with pytest.raises(ValueError) as info:
        xm.JobRequirements(resources, **options)
    assert str(info.value) == message


def test_replicas():
    assert xm.JobRequirements({"replicas": "3"}).replicas == 3
    assert xm.JobRequirements({"replicas": True}).replicas == 1
    # The keyword is stored as given (0 and None mean 1), as in XManager.
    assert xm.JobRequirements(replicas=0).replicas == 1
    assert xm.JobRequirements(replicas=-3).replicas == -3
    assert xm.JobRequirements(replicas="3").replicas == "3"
    with pytest.raises(ValueError, match="^replicas has been specified twice.$"):
        xm.JobRequirements({"replicas": 2}, replicas=2)
    assert xm.JobRequirements(gb300="4x18*3").replicas == 54
    assert xm.JobRequirements(v100="8*2").replicas == 2
    assert xm.JobRequirements(b40_48th="2x2").replicas == 1


def test_service_tier_is_stored_as_given():
    assert xm.JobRequirements().service_tier is xm.ServiceTier.PROD
    assert repr(xm.JobRequirements(service_tier=xm.ServiceTier.BATCH)) == (
        "xm.JobRequirements(service_tier=xm.ServiceTier.BATCH)")
    assert xm.JobRequirements(service_tier="batch").service_tier == "batch"
    req = xm.JobRequirements()
    req.service_tier = xm.ServiceTier.FREEBIE
    assert req.service_tier is xm.ServiceTier.FREEBIE


def test_equality_and_no_hash():
    req = xm.JobRequirements(cpu=2, ram=1, replicas=3, location="zone")
    assert req == xm.JobRequirements({"memory": 1}, CPU=2, replicas=3, location="zone")
    assert req != xm.JobRequirements(cpu=2, ram=1, replicas=3)
    assert xm.JobRequirements(cpu=1, architecture=xm.Architecture.ARM) == xm.JobRequirements(cpu=1)
    assert req != {"cpu": 2}
    assert repr(req) == "xm.JobRequirements(cpu=2.0, memory=1.0, location='zone', replicas=3)"
    with pytest.raises(TypeError, match="unhashable type: 'JobRequirements'"):
        hash(req)
    assert not hasattr(req, "get") and not hasattr(req, "to_dict")


def test_merge():
    base = xm.JobRequirements(cpu=2, ram=4, t4=1, replicas=2, location="us-a",
                              service_tier=xm.ServiceTier.BATCH)
    merged = base.merge(xm.JobRequirements(cpu=8, v100=2, location="us-b"))
    assert dict(merged.task_requirements) == {ResourceType.CPU: 8, ResourceType.MEMORY: 4, ResourceType.V100: 2}
    assert (merged.accelerator, merged.replicas, merged.location) == (ResourceType.V100, 2, "us-b")
    assert merged.service_tier is xm.ServiceTier.PROD  # XManager's merge does not carry the tier.
    assert base.merge(xm.JobRequirements(replicas=5)).replicas == 5
    # Amounts are read again: a TPU topology becomes its chip count.
    assert xm.JobRequirements(tpu_v3="4x4").merge(xm.JobRequirements(cpu=1)).topology == xm.Topology("16")


def test_topology():
    assert xm.Topology("2x2x1_twisted").dimensions == [2, 2, 1] and xm.Topology("4x4").chip_count == 16
    assert repr(xm.Topology("8")) == "xm.Topology('8')" and xm.Topology("8") != "8"
    for bad in ("x4", "four", "4x4_bent", "4xx4", ""):
        with pytest.raises(xm.InvalidTpuTopologyError, match=f"^Invalid TPU topology: {bad}.$"):
            xm.Topology(bad)
    with pytest.raises(ValueError, match="invalid literal for int"):
        xm.Topology("4x")
    with pytest.raises(TypeError):
        xm.Topology(4)
    assert not issubclass(xm.InvalidTpuTopologyError, ValueError)


def test_resource_dict():
    first = xm.JobRequirements(cpu=1, t4=1).task_requirements
    total = 2 * first + xm.JobRequirements(cpu=2).task_requirements
    assert isinstance(total, ResourceDict) and dict(total) == {ResourceType.CPU: 4, ResourceType.T4: 2}
    assert str(total) == "CPU: 4.0, T4: 2.0"
    assert str(first + {ResourceType.CPU: 3}) == "CPU: 4.0, T4: 1.0"
    assert first == {ResourceType.CPU: 1, ResourceType.T4: 1}
    assert repr(first).startswith("<xmanager.xm.resources.ResourceDict object at ")
    assert vars(ResourceDict()) == {"_ResourceDict__dict": {}}


def test_helpers_for_executors():
    assert resource_key(ResourceType.L4_24TH) == "l4_24th"  # What users write; Slurm maps it to gres "l4".
    assert [resource_key(kind) for kind in (ResourceType.CPU, ResourceType.RAM, ResourceType.LOCAL_GPU,
                                            ResourceType.A100_80GIB, ResourceType.TPU_V5E)] == [
        "cpu", "memory", "local_gpu", "a100_80gib", "tpu_v5e"]
    req = xm.JobRequirements(cpu=2, replicas=3)
    assert requested(req, ResourceType.CPU) == 2.0 and requested(req, ResourceType.MEMORY) == 0.0
    assert requested(req, ResourceType.MEMORY, 5) == 5.0 and replica_count(req) == 3
    for amount in (-1, math.nan, math.inf):
        with pytest.raises(ValueError, match="cpu="):
            requested(xm.JobRequirements(cpu=amount), ResourceType.CPU)
    for replicas in (-3, 2.5, "3"):
        with pytest.raises(ValueError, match="replicas must be a positive integer"):
            replica_count(xm.JobRequirements(replicas=replicas))
