"""Images built here are pushed to VertexSpec(push_image_tag) and the CustomJob runs them by digest.

Uses the private Docker engine and registry of ``tests/support/docker_support.py`` (skipped, with
the reason, where dockerd cannot run) and the local JobService.
"""

import urllib.request

import docker_support
import pytest
from xmanager import xm, xm_local

pytestmark = pytest.mark.integration

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


@pytest.fixture
def engine(request, monkeypatch):
    return docker_support.use_engine(request, monkeypatch)


def test_a_dockerfile_is_built_pushed_and_run_by_digest(vertex, engine, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('training')\n")
    (app / "Dockerfile").write_text(f"FROM {engine.python_image}\nCOPY main.py /app/main.py\n")
    repository = f"{engine.registry}/xm/vertex-trainer"
    with xm_local.create_experiment("vertex-image") as experiment:
        [executable] = experiment.package(
            [xm.dockerfile_container(xm_local.Vertex.Spec(push_image_tag=repository), str(app))]
        )
        experiment.add(xm.Job(executable, xm_local.Vertex(), args={"steps": 10}))
    [job] = vertex.created()
    image_uri = job.job_spec.worker_pool_specs[0].container_spec.image_uri
    assert image_uri.startswith(f"{repository}@sha256:")
    digest = image_uri.rsplit("@", 1)[1]
    # The registry serves exactly that manifest.
    request = urllib.request.Request(f"http://{engine.registry}/v2/xm/vertex-trainer/manifests/{digest}",
                                     headers={"Accept": MANIFEST_TYPES}, method="HEAD")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Docker-Content-Digest"] == digest
