"""Requirements -> worker pools, machine/accelerator checks, labels, console links (pure functions)."""

import pytest
from xmanager import xm
from xmanager.executors.vertex import job_spec
from xmanager.executors.vertex.executor import Vertex
from xmanager.executors.vertex.job_spec import PoolJob, VertexSpecError, machine_spec, worker_pools

GiB = 2**30


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ({}, {"machine_type": "n1-standard-4"}),
        ({"cpu": 6}, {"machine_type": "n1-standard-8"}),
        ({"cpu": 8, "ram": 50 * GiB}, {"machine_type": "n1-highmem-8"}),
        ({"cpu": 2, "ram": 100 * GiB}, {"machine_type": "n1-highmem-16"}),
        ({"t4": 1}, {"machine_type": "n1-standard-4", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}),
        ({"v100": 8, "cpu": 30}, {"machine_type": "n1-standard-32", "accelerator_type": "NVIDIA_TESLA_V100",
                                  "accelerator_count": 8}),
        ({"a100": 8}, {"machine_type": "a2-highgpu-8g", "accelerator_type": "NVIDIA_TESLA_A100",
                       "accelerator_count": 8}),
        ({"a100_80gib": 2}, {"machine_type": "a2-ultragpu-2g", "accelerator_type": "NVIDIA_A100_80GB",
                             "accelerator_count": 2}),
        ({"l4_24th": 1, "cpu": 20}, {"machine_type": "g2-standard-32", "accelerator_type": "NVIDIA_L4",
                                "accelerator_count": 1}),
        ({"h100": 8}, {"machine_type": "a3-highgpu-8g", "accelerator_type": "NVIDIA_H100_80GB",
                       "accelerator_count": 8}),
        ({"tpu_v5e": 4}, {"machine_type": "ct5lp-hightpu-4t", "accelerator_type": "TPU_V5_LITEPOD",
                          "accelerator_count": 4}),
        ({"tpu_v3": 8}, {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V3", "accelerator_count": 8}),
    ],
)
def test_machine_from_requirements(requirements, expected):
    assert machine_spec(xm.JobRequirements(requirements)) == expected


@pytest.mark.parametrize(
    ("requirements", "machine_type", "words"),
    [
        ({"b300": 1}, None, ["does not offer", "b300"]),
        ({"local_gpu": 1}, None, ["does not offer", "local_gpu"]),
        ({"tpu_v6e": 4}, None, ["does not offer", "tpu_v6e"]),
        ({"t4": 3}, None, ["t4", "1, 2, 4", "not 3"]),
        ({"a100": 3}, None, ["a100", "1, 2, 4, 8, 16", "not 3"]),
        ({"a100": 1, "cpu": 20}, None, ["a2-highgpu-1g", "12 vCPUs", "20 vCPUs"]),
        ({"cpu": 200}, None, ["no N1 machine", "200 vCPUs"]),
        ({"a100": 1}, "n1-standard-8", ["N1 machines take", "a100", "a2-highgpu"]),
        ({"t4": 1}, "a2-highgpu-1g", ["a2-highgpu-1g", "1 x a100", "1 x t4"]),
        ({}, "a2-highgpu-1g", ["comes with 1 x a100", "no accelerator"]),
        ({"cpu": 16}, "n1-standard-8", ["8 vCPUs", "16 vCPUs"]),
        ({}, "n1-standard-7", ["not a n1 machine type"]),
        ({}, "N1 standard", ["not a machine type"]),
    ],
)
def test_impossible_machines_are_refused_with_the_reason(requirements, machine_type, words):
    with pytest.raises(VertexSpecError) as error:
        machine_spec(xm.JobRequirements(requirements), machine_type)
    for word in words:
        assert word in str(error.value)


def test_explicit_machine_types():
    assert machine_spec(xm.JobRequirements(t4=2), "n1-highmem-16") == {
        "machine_type": "n1-highmem-16", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2}
    # A family without a table is left to Vertex to check.
    assert machine_spec(xm.JobRequirements(cpu=4), "e2-standard-4") == {"machine_type": "e2-standard-4"}


def test_the_executor_refuses_impossible_requirements_when_built():
    with pytest.raises(VertexSpecError, match="b300"):
        Vertex(requirements=xm.JobRequirements(b300=1))
    with pytest.raises(ValueError, match="location"):
        Vertex(location="Europe West")
    with pytest.raises(ValueError, match="gs://"):
        Vertex(base_output_directory="/tmp/out")
    with pytest.raises(ValueError, match="base_output_directory"):
        Vertex(tensorboard="projects/1/locations/us-central1/tensorboards/2")
    with pytest.raises(ValueError, match="label key 'Team'"):
        Vertex(labels={"Team": "x"})
    with pytest.raises(ValueError, match="timeout_seconds"):
        Vertex(timeout_seconds=0)


def _job(replicas=None, **resources):
    return PoolJob("reg.example/x:1", ("--n=1",), {"A": "1"}, xm.JobRequirements(resources, replicas=replicas))


def test_worker_pools_of_a_single_job_with_replicas():
    pools = worker_pools([_job(replicas=4, t4=1)])
    assert [pool["replica_count"] for pool in pools] == [1, 3]
    assert pools[0]["container_spec"] == {"image_uri": "reg.example/x:1", "args": ["--n=1"],
                                          "env": [{"name": "A", "value": "1"}]}
    assert pools[1]["machine_spec"]["accelerator_type"] == "NVIDIA_TESLA_T4"


def test_worker_pools_of_a_job_group():
    pools = worker_pools([_job(cpu=4), _job(replicas=2, v100=2), _job(replicas=3)])
    assert [pool["replica_count"] for pool in pools] == [1, 2, 3]
    assert [pool["machine_spec"]["machine_type"] for pool in pools] == ["n1-standard-4"] * 3
    with pytest.raises(VertexSpecError, match="chief"):
        worker_pools([_job(replicas=2), _job()])
    with pytest.raises(VertexSpecError, match="at most 4 worker pools"):
        worker_pools([_job() for _ in range(5)])


def test_custom_job_and_console_url():
    body = job_spec.custom_job("xm-1-2-train", worker_pools([_job()]), labels={"xm-experiment": "1"},
                               service_account="sa@p.iam.gserviceaccount.com", timeout_seconds=3600,
                               base_output_directory="gs://b/out")
    assert body["labels"] == {"xm-experiment": "1"}
    assert body["job_spec"]["scheduling"] == {"timeout": "3600s"}
    assert body["job_spec"]["base_output_directory"] == {"output_uri_prefix": "gs://b/out"}
    assert job_spec.console_url("projects/123/locations/europe-west4/customJobs/987", "my-proj") == (
        "https://console.cloud.google.com/vertex-ai/locations/europe-west4/training/987?project=my-proj"
    )
    with pytest.raises(ValueError, match="not a CustomJob"):
        job_spec.console_url("projects/1/locations/x/trainingPipelines/2", "p")
