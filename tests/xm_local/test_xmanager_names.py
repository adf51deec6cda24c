"""xm_local has XManager 0.8.5's public names, and its executors take XManager's arguments in XManager's order."""

import inspect

import pytest
from xmanager import xm, xm_local

#: XManager's xm_local.__all__ (its lazy loader's exports).
XMANAGER_NAMES = [
    "auth", "Caip", "CaipSpec", "DockerOptions", "Kubernetes", "KubernetesSpec", "Local", "LocalSpec",
    "TensorboardCapability", "TpuCapability", "Vertex", "VertexSpec", "create_experiment", "get_experiment",
    "list_experiments",
]
#: Leading parameters (name, default) of XManager's classes; ours may add more after them.
XMANAGER_PARAMETERS = {
    "Local": ["requirements", "docker_options", "experimental_stream_output"],
    "DockerOptions": ["ports", "volumes", "mount_gcs_path", "interactive"],
    "Vertex": ["requirements", "tensorboard"],
    "Kubernetes": ["requirements", "cloud_provider", "tpu_capability"],
    "TensorboardCapability": ["name", "base_output_directory"],
    "TpuCapability": ["tpu_runtime_version"],
    "VertexSpec": ["push_image_tag"],
    "KubernetesSpec": ["push_image_tag"],
}


@pytest.mark.parametrize("name", XMANAGER_NAMES)
def test_every_xmanager_name_exists(name):
    assert getattr(xm_local, name) is not None and name in xm_local.__all__


@pytest.mark.parametrize(("name", "parameters"), sorted(XMANAGER_PARAMETERS.items()))
def test_xmanagers_parameters_lead_in_order(name, parameters):
    signature = inspect.signature(getattr(xm_local, name))
    positional = [p.name for p in signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional[: len(parameters)] == parameters


def test_xmanagers_call_forms_are_accepted():
    requirements = xm.JobRequirements(t4=1)
    board = xm_local.TensorboardCapability(name="projects/p/locations/l/tensorboards/1", base_output_directory="bkt/e/1")
    vertex = xm_local.Vertex(requirements, tensorboard=board)
    assert vertex.tensorboard_name == board.name and vertex.output_directory == "gs://bkt/e/1"
    kubernetes = xm_local.Kubernetes(requirements, "GOOGLE_KUBERNETES_ENGINE", xm_local.TpuCapability("nightly"))
    assert kubernetes.tpu_capability.tpu_runtime_version == "nightly"
    local = xm_local.Local(xm.JobRequirements(local_gpu=2), experimental_stream_output=True,
                           docker_options=xm_local.DockerOptions(ports=None, volumes=None, interactive=True))
    assert local.docker_options.interactive and local.docker_options.mount_gcs_path
    assert xm_local.Caip is xm_local.Vertex and xm_local.CaipSpec is xm_local.VertexSpec


def test_a_tensorboard_without_an_output_folder_uses_the_default_bucket(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_BUCKET_NAME", "bucket")
    assert xm_local.Vertex(tensorboard=xm_local.TensorboardCapability("tb")).output_directory == "gs://bucket"
    monkeypatch.delenv("GOOGLE_CLOUD_BUCKET_NAME")
    with pytest.raises(ValueError, match="needs base_output_directory"):
        xm_local.Vertex(tensorboard=xm_local.TensorboardCapability("tb"))
