"""A PythonContainer for Kubernetes through a real Docker engine and registry: built, pushed (digest-pinned),
referenced by the Job, and -- standing in for the kubelet -- run by Docker with exactly the Job's command,
args and env, so the results wrapper is checked in a real container and its log feeds the results."""

import os

import docker_support
import pytest
from xmanager import xm, xm_local
from xmanager.executors.kubernetes import manifests

pytestmark = pytest.mark.integration


@pytest.fixture
def docker_host(request, monkeypatch):
    """The session's private Docker engine and registry (skipped with the reason when Docker cannot run)."""
    return docker_support.use_engine(request, monkeypatch)

TRAIN = """
import json, os, sys
print("args", sys.argv[1:], flush=True)
lr = float(sys.argv[1].split("=", 1)[1])
with open(os.environ["XM_RESULTS_PATH"], "w") as out:
    json.dump({"lr": lr, "loss": lr * 2}, out)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""


def _run_like_the_kubelet(client, container):
    """Runs the Job's container spec in Docker (the emptyDir at /xm is a tmpfs); returns (exit code, log)."""
    env = {item["name"]: item["value"] for item in container["env"]}
    run = client.containers.run(container["image"], entrypoint=container["command"], command=container.get("args", []),
                                environment=env, tmpfs={manifests.RESULTS_DIR: ""}, detach=True)
    try:
        code = run.wait(timeout=120)["StatusCode"]
        return code, run.logs().decode()
    finally:
        run.remove(force=True)


def test_a_python_container_is_pushed_and_its_results_come_back_through_the_pod_log(docker_host, kubeconfig,
                                                                                  api_server, tmp_path):
    app = tmp_path / "trainer"
    app.mkdir()
    (app / "train.py").write_text(TRAIN)
    repository = f"{docker_host.registry}/xm/trainer"
    with xm_local.create_experiment("k8s image") as experiment:
        [executable] = experiment.package([xm.python_container(
            executor_spec=xm_local.Kubernetes.Spec(push_image_tag=repository), entrypoint=xm.ModuleName("train"),
            path=str(app), base_image=docker_host.python_image)])
        assert executable.image.startswith(f"{repository}@sha256:")
        assert executable.command == ("python", "-m", "train")
        job = xm.Job(executable, xm_local.Kubernetes(cloud_provider="GENERIC"))
        experiment.add(job, args={"lr": 0.25})
        experiment.add(job, args={"lr": 0.5})
    names = api_server.job_names()
    assert len(names) == 2
    for name in names:
        container = api_server.job(name)["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == executable.image
        code, log = _run_like_the_kubelet(docker_host.client, container)
        assert code == 0, log
        assert "args ['--lr=" in log
        api_server.start_job(name)
        api_server.finish_job(name, exit_code=code, log=log)
    experiment.wait_until_complete()
    frame = experiment.to_dataframe().sort_values("lr")
    assert frame["loss"].tolist() == [0.5, 1.0]
    assert frame["_status"].tolist() == ["completed", "completed"]
    # A failing job keeps its exit code through the wrapper and still reports its results.
    failing = dict(container, env=[*container["env"], {"name": "EXIT_CODE", "value": "4"}])
    code, log = _run_like_the_kubelet(docker_host.client, failing)
    assert code == 4 and manifests.parse_results(log)["lr"] in (0.25, 0.5)
    assert os.path.basename(repository) == "trainer"
