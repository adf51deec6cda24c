"""Where Vertex calls go: region, endpoint and project, from the executor or the environment."""

import pytest
from xmanager import xm
from xmanager.executors.vertex.client import VertexConfigError, endpoint_for, location_of, project_of
from xmanager.executors.vertex.executor import Vertex


def test_region_comes_from_the_executor_then_requirements_then_environment(no_google_config, monkeypatch):
    assert location_of(Vertex()) == "us-central1"
    monkeypatch.setenv("GOOGLE_CLOUD_REGION", "asia-east1")
    assert location_of(Vertex()) == "asia-east1"
    assert location_of(Vertex(requirements=xm.JobRequirements(location="europe-west1"))) == "europe-west1"
    assert location_of(Vertex(location="us-east4", requirements=xm.JobRequirements(location="europe-west1"))) == (
        "us-east4")
    with pytest.raises(VertexConfigError, match=r"JobRequirements\(location=...\) is 'us-central1-a'.*not a zone"):
        location_of(Vertex(requirements=xm.JobRequirements(location="us-central1-a")))


def test_endpoint_is_regional_unless_overridden(no_google_config, monkeypatch):
    assert endpoint_for("europe-west4") == "europe-west4-aiplatform.googleapis.com"
    assert endpoint_for("europe-west4", "private.example:443") == "private.example:443"
    monkeypatch.setenv("XM_VERTEX_API_ENDPOINT", "localhost:8443")
    assert endpoint_for("europe-west4") == "localhost:8443"


def test_project_comes_from_the_executor_then_environment_then_credentials(no_google_config, monkeypatch):
    assert project_of(None, "from-credentials") == "from-credentials"
    monkeypatch.setenv("CLOUDSDK_CORE_PROJECT", "from-gcloud")
    assert project_of(None, "from-credentials") == "from-gcloud"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    assert project_of(None, "from-credentials") == "from-env"
    assert project_of("explicit", "from-credentials") == "explicit"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    monkeypatch.delenv("CLOUDSDK_CORE_PROJECT")
    with pytest.raises(VertexConfigError, match="gcloud config set project"):
        project_of(None, None)
