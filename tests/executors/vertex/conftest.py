"""A local Vertex AI JobService over TLS for the session; each test gets credentials pointing at it.

The real GAPIC client opens a TLS channel to ``client_options.api_endpoint``; our server's
certificate is signed by a test CA that ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` names. gRPC reads
that variable once, at the first TLS channel of the process, so it is set for the whole session.
"""

import os

import pytest
import vertex_servicer  # tests/support/: also the contract suite's Vertex AI.
from vertex_servicer import PROJECT, write_key_file


@pytest.fixture(scope="session")
def vertex_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vertex-tls")
    ca_path, key, chain = vertex_servicer.make_tls(str(folder))
    previous = os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH")
    os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = ca_path
    server = vertex_servicer.Server(vertex_servicer.FakeJobService(projects=(PROJECT,)), key, chain)
    yield server
    server.stop()
    if previous is None:
        os.environ.pop("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", None)
    else:
        os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = previous


@pytest.fixture
def no_google_config(tmp_path, monkeypatch):
    """No credentials or project from this machine's own Google configuration."""
    empty = tmp_path / "gcloud-config"
    empty.mkdir()
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(empty))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    from google.auth.compute_engine import _metadata

    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)  # google-auth reads the variable once, at import.
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:1")
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT",
                 "GOOGLE_CLOUD_REGION", "XM_VERTEX_API_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def retry_waits(monkeypatch):
    """The backoff waits the backend asked for, recorded instead of slept (a brief real pause keeps order)."""
    import time

    from xmanager.executors.vertex import retry

    waits = []

    def sleep(seconds, stop=None):
        waits.append(seconds)
        time.sleep(0.001)

    monkeypatch.setattr(retry, "_sleep", sleep)
    return waits


@pytest.fixture
def vertex(vertex_server, no_google_config, retry_waits, tmp_path, monkeypatch):
    """The local JobService, reached through the standard configuration (a key file and the endpoint)."""
    vertex_server.service.reset()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", write_key_file(tmp_path))
    monkeypatch.setenv("XM_VERTEX_API_ENDPOINT", vertex_server.endpoint)
    for name in ("NO_PROXY", "no_proxy"):  # A proxy set for this machine must not catch loopback calls.
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "localhost", "127.0.0.1"])))
    return vertex_server.service
