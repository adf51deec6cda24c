"""Job manifests: requirements -> resources, accelerators -> selectors/tolerations, all schema-valid."""

import json
import re
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
from xmanager import xm
from xmanager.executors.kubernetes import manifests
from xmanager.executors.kubernetes.executor import Kubernetes, Toleration
from xmanager.executors.kubernetes.manifests import PlacementError

VERSION = kubernetes_validate.latest_version()
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _manifest(executor, *, name="xm-1-2-train-abc123", command=("python", "-m", "train"), args=("--lr=0.1",)):
    return manifests.job_manifest(
        executor, name=name, namespace="team", job_labels=manifests.labels(1, 2, "train"), image="reg:5000/x@sha256:" + "a" * 64,
        command=command, args=args, env={"XM_WORK_UNIT_ID": "2", "A": "b c"},
    )


def _valid(manifest):
    kubernetes_validate.validate(manifest, VERSION, strict=True)  # Raises with the offending field.
    return manifest


def test_cpu_memory_and_storage_become_requests_and_the_memory_limit():
    manifest = _valid(_manifest(Kubernetes(requirements=xm.JobRequirements(cpu=1.5, ram=2 * xm.GiB, disk=10 * xm.GiB),
                                           cloud_provider="GENERIC")))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "1500m", "memory": str(2 * 2**30), "ephemeral-storage": str(10 * 2**30)},
        "limits": {"memory": str(2 * 2**30)},
    }
    assert manifests.cpu_quantity(4) == "4"
    assert manifest["spec"]["backoffLimit"] == 0
    assert manifest["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "nodeSelector" not in manifest["spec"]["template"]["spec"]


def test_the_command_is_wrapped_and_env_includes_the_results_path():
    manifest = _valid(_manifest(Kubernetes()))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert container["command"][3:] == ["xm-job", "python", "-m", "train"]
    assert container["args"] == ["--lr=0.1"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {"XM_WORK_UNIT_ID": "2", "A": "b c", "XM_RESULTS_PATH": manifests.RESULTS_PATH}
    assert container["volumeMounts"] == [{"name": "xm", "mountPath": "/xm"}]
    # No known command: the image's entrypoint runs, unwrapped.
    bare = _valid(_manifest(Kubernetes(), command=()))["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in bare and bare["args"] == ["--lr=0.1"]


def test_labels_on_the_job_and_its_pods():
    manifest = _valid(_manifest(Kubernetes()))
    expected = {"app.kubernetes.io/managed-by": "xmanager", "xmanager.io/experiment-id": "1",
                "xmanager.io/work-unit-id": "2", "xmanager.io/job": "train"}
    assert manifest["metadata"]["labels"] == expected
    assert manifest["spec"]["template"]["metadata"]["labels"] == expected
    assert manifest["metadata"]["namespace"] == "team"


@pytest.mark.parametrize("kind, label", [("t4", "nvidia-tesla-t4"), ("a100", "nvidia-tesla-a100"), ("h100", "nvidia-h100-80gb")])
def test_gke_gpus_get_the_gke_accelerator_selector_a_limit_and_a_toleration(kind, label):
    manifest = _valid(_manifest(Kubernetes(requirements=xm.JobRequirements({kind: 2}))))
    pod = manifest["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": label}
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_gke_tpus_need_a_topology_and_get_the_tpu_selectors():
    executor = Kubernetes(requirements=xm.JobRequirements(tpu_v5e=4), tpu_topology="2x2")
    pod = _valid(_manifest(executor))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                                   "cloud.google.com/gke-tpu-topology": "2x2"}
    assert pod["containers"][0]["resources"]["limits"] == {"google.com/tpu": "4"}
    with pytest.raises(PlacementError, match=r"tpu_v4 on GKE needs tpu_topology"):
        Kubernetes(requirements=xm.JobRequirements(tpu_v4=4))


def test_generic_clusters_take_any_gpu_or_the_users_node_selector():
    pod = _valid(_manifest(Kubernetes(requirements=xm.JobRequirements(local_gpu=1), cloud_provider="GENERIC")))
    assert pod["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "nodeSelector" not in pod["spec"]["template"]["spec"]
    executor = Kubernetes(requirements=xm.JobRequirements(t4=1), cloud_provider="GENERIC",
                          node_selector={"gpu.product": "Tesla-T4"},
                          tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}])
    spec = _valid(_manifest(executor))["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"gpu.product": "Tesla-T4"}
    assert {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"} in spec["tolerations"]


@pytest.mark.parametrize("kwargs, message", [
    ({"requirements": xm.JobRequirements(t4=1), "cloud_provider": "GENERIC"}, r"GENERIC'\) cannot pick t4 GPUs.*local_gpu=1"),
    ({"requirements": xm.JobRequirements(tpu_v4=8), "cloud_provider": "GENERIC"}, r"tpu_v4 needs cloud_provider='GOOGLE"),
    ({"requirements": xm.JobRequirements(tpu_v3=8), "tpu_topology": "2x2"}, r"GKE offers no tpu_v3 node pools"),
    ({"requirements": xm.JobRequirements(b300=1)}, r"GKE offers no b300 GPUs"),
    ({"requirements": xm.JobRequirements(t4=0)}, r"t4=0.0 must be a whole number"),
])
def test_accelerators_the_target_cannot_provide_fail_when_the_executor_is_made(kwargs, message):
    with pytest.raises(PlacementError, match=message):
        Kubernetes(**kwargs)


def test_other_bad_executor_settings_name_the_argument():
    with pytest.raises(ValueError, match=r"namespace='Team_A'"):
        Kubernetes(namespace="Team_A")
    with pytest.raises(ValueError, match="cloud_provider"):
        Kubernetes(cloud_provider="AWS")
    with pytest.raises(ValueError, match="backoff_limit"):
        Kubernetes(backoff_limit=-1)
    with pytest.raises(ValueError, match="effect"):
        Toleration("x", effect="Sometimes")


def test_replicas_make_an_indexed_job_and_pod_options_are_passed():
    executor = Kubernetes(requirements=xm.JobRequirements(cpu=1, replicas=4), service_account="trainer",
                          image_pull_secrets=["regcred"], image_pull_policy="Always", active_deadline_seconds=3600,
                          backoff_limit=2)
    manifest = _valid(_manifest(executor))
    spec = manifest["spec"]
    assert (spec["parallelism"], spec["completions"], spec["completionMode"]) == (4, 4, "Indexed")
    assert spec["activeDeadlineSeconds"] == 3600 and spec["backoffLimit"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "trainer"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"


def test_schema_validation_catches_a_broken_manifest():
    broken = _manifest(Kubernetes())
    broken["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": ["2"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        _valid(broken)


def test_job_names_are_dns_labels_of_at_most_63_characters():
    short = manifests.job_name(12, 3, "server", "a1b2c3")
    assert short == "xm-12-3-server-a1b2c3"
    long_a = manifests.job_name(1712345678901, 123456, "Group.Member_With.A.Very/Long NAME" * 3, "a1b2c3")
    long_b = manifests.job_name(1712345678901, 123456, "Group.Member_With.A.Very/Long NAME" * 4, "a1b2c3")
    for name in (short, long_a, long_b):
        assert len(name) <= 63 and DNS_LABEL.match(name), name
    assert long_a != long_b
    assert manifests.labels(1, 2, "a.B_c")["xmanager.io/job"] == "a-b-c"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs /bin/sh to run the results wrapper")
def test_the_wrapper_keeps_the_exit_code_and_prints_results_as_the_last_line(tmp_path):
    results = tmp_path / "results.json"
    job = ("python3", "-c", "import json,os,sys; print('working', sys.argv[1:], end='');"
           "json.dump({'loss': 0.5, 'note': 'a\\nb'}, open(os.environ['XM_RESULTS_PATH'], 'w')); sys.exit(3)")
    if shutil.which("python3") is None:
        pytest.skip("needs python3 on PATH")
    done = subprocess.run(["/bin/sh", "-c", manifests.WRAPPER, "xm-job", *job, "--x=1 2"], capture_output=True,
                          text=True, env={"XM_RESULTS_PATH": str(results), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 3
    assert done.stdout.startswith("working ['--x=1 2']")
    assert done.stdout.rstrip("\n").splitlines()[-1].startswith(manifests.RESULTS_MARKER)
    assert manifests.parse_results(done.stdout) == {"loss": 0.5, "note": "a\nb"}
    # Without a results file, nothing is added.
    quiet = subprocess.run(["/bin/sh", "-c", manifests.WRAPPER, "xm-job", "echo", "hi"], capture_output=True, text=True,
                           env={"XM_RESULTS_PATH": str(tmp_path / "none.json"), "PATH": "/usr/bin:/bin"})
    assert (quiet.returncode, quiet.stdout) == (0, "hi\n")


def test_parse_results_takes_the_last_marker_and_rejects_non_objects():
    log = f"x\n{manifests.RESULTS_MARKER}{json.dumps({'a': 1})}\n{manifests.RESULTS_MARKER}{json.dumps({'a': 2})}\n"
    assert manifests.parse_results(log) == {"a": 2}
    assert manifests.parse_results("no results here\n") is None
    with pytest.raises(ValueError, match="list"):
        manifests.parse_results(f"{manifests.RESULTS_MARKER}[1, 2]\n")


def test_the_executor_classes_load_without_the_kubernetes_client():
    code = ("import sys\nfrom xmanager import xm_local\nfrom xmanager.executors import kubernetes\n"
            "executor = xm_local.Kubernetes(cloud_provider='GENERIC')\nkubernetes.plugin, kubernetes.ClusterConfig\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'docker', 'urllib3'))\n"
            "print(heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_xmanagers_tpu_capability_and_service_account_flag_reach_the_pod():
    from absl.testing import flagsaver
    from xmanager import xm_flags  # noqa: F401 - defines --xm_k8s_service_account_name.
    from xmanager.executors.kubernetes.executor import TpuCapability

    tpu = Kubernetes(requirements=xm.JobRequirements(tpu_v5e=4), tpu_topology="2x2", tpu_capability=TpuCapability("2.15.0"))
    template = _valid(_manifest(tpu))["spec"]["template"]
    assert template["metadata"]["annotations"] == {"tf-version.cloud-tpus.google.com": "2.15.0"}
    assert "serviceAccountName" not in template["spec"]  # Flag not given: Kubernetes' default account.
    with flagsaver.flagsaver(xm_k8s_service_account_name="trainer"):
        from absl import flags

        flags.FLAGS["xm_k8s_service_account_name"].present = 1
        try:
            pod = _manifest(Kubernetes(cloud_provider="GENERIC"))["spec"]["template"]["spec"]
            own = _manifest(Kubernetes(cloud_provider="GENERIC", service_account="mine"))["spec"]["template"]["spec"]
        finally:
            flags.FLAGS["xm_k8s_service_account_name"].present = 0
    assert pod["serviceAccountName"] == "trainer" and own["serviceAccountName"] == "mine"
