"""xmanager.cloud: XManager's cloud entry points mapped onto our executors; missing services are one error."""

import asyncio
import json
import subprocess
import sys

import pytest
from xmanager import xm, xm_local
from xmanager.cloud import auth, build_image, kubernetes, utils, vertex
from xmanager.executors.api import ServiceUnavailableError


@pytest.fixture
def no_google_cloud(monkeypatch, tmp_path):
    """No project, no credentials, no metadata server."""
    for name in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")


def test_importing_the_cloud_modules_loads_no_google_sdk():
    code = ("import sys; from xmanager.cloud import auth, build_image, kubernetes, utils, vertex; "
            "print([m for m in ('google.cloud.aiplatform_v1', 'kubernetes', 'docker') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_credentials_the_default_client_says_how_to_log_in(no_google_cloud):
    client = vertex.get_default_client()
    with pytest.raises(ServiceUnavailableError, match="no Google Cloud credentials found"):
        asyncio.run(client.get_or_create_tensorboard("cifar10"))
    with pytest.raises(ServiceUnavailableError, match="needs a Google Cloud project"):
        auth.get_project_name()


def test_auth_names_the_project_account_and_bucket(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
    assert auth.get_project_name() == "proj"
    assert auth.get_service_account() == "xmanager@proj.iam.gserviceaccount.com"
    monkeypatch.delenv("GOOGLE_CLOUD_BUCKET_NAME", raising=False)
    with pytest.raises(ValueError, match="GOOGLE_CLOUD_BUCKET_NAME"):
        auth.get_bucket()
    monkeypatch.setenv("GOOGLE_CLOUD_BUCKET_NAME", "bucket")
    assert auth.get_bucket() == "bucket"


def test_cluster_spec_helpers(monkeypatch):
    monkeypatch.delenv("CLUSTER_SPEC", raising=False)
    assert utils.get_master_address_port() == ("127.0.0.1", "29500") and utils.get_world_size_rank() == (1, 0)
    placeholder = utils.get_workerpool_address("workerpool0")
    assert utils.map_workerpool_address_args([f"--master={placeholder}"]) == [f"--master={placeholder}"]
    [spec0, spec1] = utils.create_cluster_specs(["a:1", "b:2"])
    monkeypatch.setenv("CLUSTER_SPEC", spec1)
    assert json.loads(spec0)["task"] == {"type": "workerpool0", "index": 0}
    assert utils.get_master_address_port() == ("a", "1")
    assert utils.map_workerpool_address_args([f"--master={placeholder}", "x"]) == ["--master=a:1", "x"]
    assert utils.get_world_size_rank() == (2, 2)  # Pool 1's task index 1, after pool 0's one replica.


def test_machine_specs_come_from_the_vertex_executor():
    job = xm.Job(_vertex_executable(), xm_local.Vertex(xm.JobRequirements(t4=1)))
    spec = vertex.get_machine_spec(job)
    assert spec["accelerator_type"] == "NVIDIA_TESLA_T4" and spec["accelerator_count"] == 1
    assert vertex.cpu_ram_to_machine_type(4, 15 * xm.GiB).startswith("n1-")


def _vertex_executable():
    from xmanager.executors.vertex import VertexExecutable

    return VertexExecutable(name="x", image_uri="gcr.io/p/x@sha256:" + "0" * 64)


def test_kubernetes_pod_settings_follow_the_executor():
    executor = xm_local.Kubernetes(xm.JobRequirements(local_gpu=1), "GOOGLE_KUBERNETES_ENGINE", xm_local.TpuCapability("2.12.0"))
    assert kubernetes.requirements_from_executor(executor) == {"limits": {"nvidia.com/gpu": "1"}}
    assert kubernetes.annotations_from_executor(executor) == {"tf-version.cloud-tpus.google.com": "2.12.0"}
    assert kubernetes.annotations_from_executor(xm_local.Kubernetes()) == {}
    assert kubernetes.convert_to_valid_label("-My Label!-") == "My-Label"


def test_default_steps_fit_our_python_container_layout():
    steps = build_image.default_steps("app", use_deep_module=True)
    assert steps[0] == "COPY app/ /workdir/app" and steps[1] == "WORKDIR /workdir"
    assert build_image.default_steps("app", use_deep_module=False)[1] == "WORKDIR /workdir/app"
