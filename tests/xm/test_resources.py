"""JobRequirements and ResourceType: names, amounts, topologies, accelerators, replicas, merge."""

import math

import pytest
from xmanager import xm
from xmanager.xm.resources import ResourceType


def test_cpu_and_ram_keywords():
    req = xm.JobRequirements(cpu=2, ram=4 * xm.GiB)
    assert req.task_requirements == {ResourceType.CPU: 2, ResourceType.MEMORY: 4 * 2**30}
    assert req.get("cpu") == 2
    assert req.get("memory") == 4 * 2**30
    assert req.get("RAM") == 4 * 2**30
    assert req.get(ResourceType.MEMORY) == 4 * 2**30
    assert req.accelerator is None and req.topology is None and req.architecture is None
    assert req.replicas == 1
    assert req.service_tier is xm.ServiceTier.PROD


@pytest.mark.parametrize("name", ["cpu", "CPU", "Cpu", " cpu "])
def test_lookup_case_insensitive(name):
    assert ResourceType.lookup(name) is ResourceType.CPU
    assert xm.JobRequirements({name: 1}).get("cpu") == 1


@pytest.mark.parametrize(
    ("alias", "kind"),
    [
        ("ram", ResourceType.MEMORY),
        ("RAM", ResourceType.MEMORY),
        ("disk", ResourceType.EPHEMERAL_STORAGE),
        ("v2", ResourceType.TPU_V2),
        ("V3", ResourceType.TPU_V3),
        ("a100_80gib", ResourceType.A100_80GIB),
        ("A100_80GiB", ResourceType.A100_80GIB),
        ("l4", ResourceType.L4_24TH),
    ],
)
def test_lookup_aliases(alias, kind):
    assert ResourceType.lookup(alias) is kind
    assert ResourceType[alias] is kind


def test_lookup_passes_resource_type_through():
    assert ResourceType.lookup(ResourceType.T4) is ResourceType.T4
    assert xm.JobRequirements({ResourceType.T4: 1}).get("t4") == 1


def test_values_are_our_names_and_xmanager_ids_are_accepted():
    assert ResourceType.V100.value == "v100" and str(ResourceType.V100) == "V100"
    assert ResourceType(17) is ResourceType.V100
    assert ResourceType("tpu_v3") is ResourceType(16) is ResourceType.TPU_V3
    with pytest.raises(ValueError):
        ResourceType(170)


def test_unknown_resource_lists_known():
    with pytest.raises(KeyError) as info:
        xm.JobRequirements(cpus=2)
    message = str(info.value)
    assert "'cpus'" in message
    for known in ("cpu", "memory", "ram", "t4", "a100", "tpu_v4"):
        assert known in message
    with pytest.raises(KeyError, match="gpu9000"):
        xm.JobRequirements().get("gpu9000")


@pytest.mark.parametrize("amount", [-1, -0.5, math.nan, math.inf])
def test_negative_and_non_finite_amounts_rejected(amount):
    with pytest.raises(ValueError, match="cpu"):
        xm.JobRequirements(cpu=amount)


@pytest.mark.parametrize("amount", [None, True, False, [1], object(), "lots"])
def test_non_amounts_rejected(amount):
    with pytest.raises(ValueError, match="memory"):
        xm.JobRequirements(ram=amount)


def test_amounts_become_floats_and_strings_are_read():
    req = xm.JobRequirements(cpu="2", ram=0)
    assert req.get("cpu") == 2.0 and isinstance(req.get("cpu"), float)
    assert req.get("ram") == 0


def test_same_resource_twice_rejected():
    with pytest.raises(ValueError, match="twice"):
        xm.JobRequirements({"cpu": 1}, CPU=2)
    with pytest.raises(ValueError, match="memory"):
        xm.JobRequirements({"memory": 1}, ram=2)


@pytest.mark.parametrize(
    "resources",
    [{"t4": 1, "v100": 1}, {"a100": 1, "tpu_v4": 4}, {"v2": 8, "v3": 8}, {"local_gpu": 1, "h100": 1}],
)
def test_two_accelerator_kinds_rejected(resources):
    with pytest.raises(ValueError, match="accelerator"):
        xm.JobRequirements(resources)


@pytest.mark.parametrize(
    ("resources", "accelerator"),
    [
        ({"cpu": 4, "A100": 2}, ResourceType.A100),
        ({"t4": 1}, ResourceType.T4),
        ({"v3": 8}, ResourceType.TPU_V3),
        ({"local_gpu": 1}, ResourceType.LOCAL_GPU),
        ({"cpu": 4, "ram": 1, "disk": 10}, None),
    ],
)
def test_accelerator_detected(resources, accelerator):
    assert xm.JobRequirements(resources).accelerator is accelerator


def test_topologies():
    req = xm.JobRequirements(tpu_v3="4x4")
    assert req.topology == xm.Topology("4x4") and req.get("tpu_v3") == 16
    assert req.architecture is xm.Architecture.HASWELL
    assert xm.JobRequirements(v100=2).topology == xm.Topology("2")
    assert xm.Topology("2x2x1_twisted").chip_count == 4
    for bad in ("4x", "x4", "four", "4x4_bent"):
        with pytest.raises(xm.InvalidTpuTopologyError):
            xm.Topology(bad)
    with pytest.raises(ValueError, match="not an accelerator"):
        xm.JobRequirements(cpu="2x2")


def test_multi_host_gpus_imply_replicas_and_slices():
    assert xm.JobRequirements(v100="4x2").replicas == 2
    assert xm.JobRequirements(gb300="4x18*3").num_slices == 3
    assert xm.JobRequirements(gb300="4x18*3").replicas == 54
    with pytest.raises(ValueError, match="replicas"):
        xm.JobRequirements(v100="4x2", replicas=3)
    with pytest.raises(ValueError, match="TPU"):
        xm.JobRequirements(tpu_v4="2x2", num_slices=2)
    with pytest.raises(ValueError, match="contradicts"):
        xm.JobRequirements(gb300="4x18*3", num_slices=2)


def test_architecture_must_fit_the_accelerator():
    assert xm.JobRequirements(gb200=4).architecture is xm.Architecture.ARM
    with pytest.raises(ValueError, match="ARM"):
        xm.JobRequirements(gb200=4, architecture=xm.Architecture.HASWELL)


def test_resource_type_kinds_and_subsets():
    assert ResourceType.T4.is_gpu and ResourceType.T4.is_accelerator and not ResourceType.T4.is_tpu
    assert ResourceType.TPU_V5P.is_tpu and ResourceType.TPU_V5P.is_accelerator
    assert ResourceType.LOCAL_GPU.is_gpu and ResourceType.LOCAL_GPU not in xm.GpuType
    for kind in (ResourceType.CPU, ResourceType.MEMORY, ResourceType.EPHEMERAL_STORAGE):
        assert not kind.is_accelerator
    assert xm.TpuType.TPU_V4 is ResourceType.TPU_V4 and xm.TpuType["tpu_v4"] is ResourceType.TPU_V4
    assert ResourceType.TPU_V4 in list(xm.AcceleratorType)


@pytest.mark.parametrize("replicas", [1, 4, "3"])
def test_replicas_accepted(replicas):
    assert xm.JobRequirements(cpu=1, replicas=replicas).replicas == int(replicas)


@pytest.mark.parametrize("replicas", [0, -1, 1.5, "two", True])
def test_replicas_rejected(replicas):
    with pytest.raises(ValueError, match="replicas"):
        xm.JobRequirements(replicas=replicas)


def test_service_tier_by_enum_or_name():
    assert xm.JobRequirements(service_tier="batch").service_tier is xm.ServiceTier.BATCH
    req = xm.JobRequirements()
    req.service_tier = "FREEBIE"
    assert req.service_tier is xm.ServiceTier.FREEBIE


def test_merge_other_wins():
    base = xm.JobRequirements(cpu=2, ram=4, replicas=2, location="us-a", service_tier="batch")
    override = xm.JobRequirements(cpu=8, t4=1, location="us-b")
    merged = base.merge(override)
    assert merged.task_requirements == {ResourceType.CPU: 8, ResourceType.MEMORY: 4, ResourceType.T4: 1}
    assert merged.accelerator is ResourceType.T4
    assert merged.replicas == 2
    assert merged.location == "us-b"
    assert merged.service_tier is xm.ServiceTier.BATCH  # Other's is the default: ours is kept.
    # Neither operand changed.
    assert base.get("cpu") == 2 and base.location == "us-a"
    assert override.get("ram") == 0 and override.replicas == 1
    assert base.merge(xm.JobRequirements(replicas=5)).replicas == 5


def test_to_dict_equality_and_hash():
    req = xm.JobRequirements(cpu=2, ram=1, replicas=3, location="zone")
    assert req.to_dict() == {"cpu": 2, "memory": 1, "replicas": 3, "location": "zone"}
    same = xm.JobRequirements({"memory": 1}, CPU=2, replicas=3, location="zone")
    assert req == same
    assert hash(req) == hash(same)
    assert req != xm.JobRequirements(cpu=2, ram=1, replicas=3)
    assert req != req.to_dict()
    assert repr(req) == "xm.JobRequirements(cpu=2.0, memory=1.0, location='zone', replicas=3)"


def test_empty_requirements():
    req = xm.JobRequirements()
    assert req.task_requirements == {}
    assert req.to_dict() == {}
    assert req.get("cpu") == 0
    assert req.get("cpu", 1.5) == 1.5


def test_merge_replaces_the_accelerator_kind():
    merged = xm.JobRequirements(t4=1, cpu=2).merge(xm.JobRequirements(v100=2))
    assert merged.accelerator is xm.ResourceType.V100
    assert merged.to_dict() == {"cpu": 2, "v100": 2}


def test_resource_dict_arithmetic():
    first = xm.JobRequirements(cpu=1, t4=1).task_requirements
    second = xm.JobRequirements(cpu=2).task_requirements
    total = 2 * first + second
    assert dict(total) == {ResourceType.CPU: 4, ResourceType.T4: 2}
    assert str(total) == "CPU: 4.0, T4: 2.0"
