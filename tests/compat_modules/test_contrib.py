"""xmanager.contrib: XManager's helpers on our executors (behaviour the wheel's own tests do not pin)."""

import json

import pytest
from absl import app
from absl.testing import flagsaver
from xmanager import xm, xm_local
from xmanager.contrib import addressing, framework_defaults, gcs, parameter_controller, tensorboard, tpu, xm_tensorflow
from xmanager.executors.api import LaunchError


def test_k8s_pod_domain_defaults():
    assert addressing.k8s_pod_domain("w", 7, 2) == "7-2-w.experiments.default.svc.cluster.local:2222"


def test_framework_names_are_read_loosely():
    read = framework_defaults._get_framework
    assert read("PyTorch-Lightning") is framework_defaults.MLFramework.PYTORCH
    assert read("tensorflow 1.15") is framework_defaults.MLFramework.TF1
    assert read("objax") is framework_defaults.MLFramework.UNKNOWN
    tpu_image = framework_defaults.base_image("torch", xm.ResourceType.TPU_V3)
    assert "tpu-pytorch" in tpu_image and "pytorch-gpu" in framework_defaults.base_image("torch", None)


def test_gcs_flag_and_path_forms():
    with pytest.raises(app.UsageError, match="--xm_gcs_path is missing. Suggestion: --xm_gcs_path=gs://"):
        gcs.get_gcs_path_or_fail("proj")
    with flagsaver.flagsaver(xm_gcs_path="/gcs/b/d"):
        assert gcs.get_gcs_path_or_fail("proj") == "/gcs/b/d"
    with flagsaver.flagsaver(xm_gcs_path="s3://b/d"):
        with pytest.raises(app.UsageError, match="not in gs://bucket/directory or /gcs/path format"):
            gcs.get_gcs_path_or_fail("proj")
    assert gcs.get_gs_path("/gcs/b/d") == "gs://b/d" and gcs.get_gcs_fuse_path("gs://b/d") == "/gcs/b/d"
    assert gcs.path_to_volume("gs://b/d/e", "/mnt") == gcs.GcsVolume("b", "d/e", "/mnt")
    with pytest.raises(ValueError, match="Mount point is not a valid path"):
        gcs.path_to_volume("gs://b/d", "mnt")


def test_tensorboard_job_args_and_spec():
    args = tensorboard.TensorboardProvider.get_tensorboard_job_args("logs", additional_args={"port": 7000})
    assert args == {"logdir": "logs", "port": 7000, "host": "0.0.0.0", "load_fast": "false"}
    spec = tensorboard.TensorboardProvider.get_tensorboard_packageable(timeout_secs=30)
    assert spec.base_image == "tensorflow/tensorflow" and spec.entrypoint.commands == ["timeout 30s tensorboard"]
    with pytest.raises(RuntimeError):
        tensorboard.TensorboardProvider.get_tensorboard_packageable(timeout_secs=-1)


def test_tpu_instructions_install_libtpu():
    steps = tpu.tpuvm_docker_instructions()
    assert any("/lib/libtpu.so" in step for step in steps) and all(step.startswith("RUN ") for step in steps)


def _k8s_executable():
    from xmanager.executors.kubernetes import KubernetesImage

    return KubernetesImage(name="w", image="registry.example/w@sha256:" + "0" * 64)


class _Unit:
    work_unit_id = 3


class _Experiment:
    experiment_id = 11


def test_multi_worker_mirrored_strategy_gives_each_worker_the_cluster():
    executor = xm_local.Kubernetes(cloud_provider="GENERIC")
    builder = xm_tensorflow.MultiWorkerMirroredStrategyBuilder(_Experiment(), _k8s_executable(), executor, num_workers=2)
    group = builder.create_job_group(_Unit(), {"lr": 0.1})
    assert sorted(group.jobs) == ["worker-0", "worker-1"]
    config = json.loads(group.jobs["worker-1"].env_vars["TF_CONFIG"])
    assert config["task"] == {"type": "worker", "index": 1}
    assert config["cluster"]["worker"][0] == "11-3-worker-0.experiments.default.svc.cluster.local:2222"


def test_parameter_server_strategy_needs_kubernetes_executors():
    local = xm_local.Local()
    builder = xm_tensorflow.ParameterServerStrategyBuilder(
        _Experiment(), _k8s_executable(), local, _k8s_executable(), local, _k8s_executable(), local)
    with pytest.raises(NotImplementedError, match="Kubernetes"):
        builder.create_job_group(_Unit(), {})


def test_a_remote_parameter_controller_is_refused_in_one_error():
    @parameter_controller.controller(executor=xm_local.Kubernetes(cloud_provider="GENERIC"))
    async def drive(experiment):
        raise AssertionError("not run")

    with pytest.raises(LaunchError, match="controller on Kubernetes would run as a remote job"):
        drive()


def test_a_local_parameter_controller_drives_the_experiment(script):
    job = script("import sys\nsys.exit(0)\n")
    seen = []

    @parameter_controller.controller(executor=xm_local.Local())
    async def drive(experiment, rounds):
        [executable] = experiment.package([xm.binary(xm_local.Local.Spec(), job)])
        for _ in range(rounds):
            unit = await experiment.add(xm.Job(executable, xm_local.Local()))
            await unit.wait_until_complete()
            seen.append(unit.work_unit_id)

    with xm_local.create_experiment("controller") as experiment:
        experiment.add(drive(rounds=2))
    assert len(seen) == 2
