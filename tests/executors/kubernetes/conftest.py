"""Fixtures: a fake Kubernetes API server on loopback (HTTP, or HTTPS with a throwaway CA) and
kubeconfig files pointing at it. The tests drive the real ``kubernetes`` client."""

import shutil
import subprocess

import fake_apiserver  # tests/support/: also the contract suite's Kubernetes.
import pytest

TOKEN = "s3cret-token"


def write_kubeconfig(path, server_url, *, token=TOKEN, namespace=None, ca_file=None, context="fake"):
    cluster = f"    server: {server_url}\n" + (f"    certificate-authority: {ca_file}\n" if ca_file else "")
    user = f"    token: {token}\n" if token else "    {}\n"
    text = (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: fake\n  cluster:\n{cluster}"
        f"users:\n- name: tester\n  user:\n{user}"
        f"contexts:\n- name: {context}\n  context:\n    cluster: fake\n    user: tester\n"
        + (f"    namespace: {namespace}\n" if namespace else "")
        + f"current-context: {context}\n"
    )
    path.write_text(text)
    return str(path)


@pytest.fixture(name="write_kubeconfig")
def write_kubeconfig_fixture():
    """``write_kubeconfig(path, server_url, token=..., namespace=..., ca_file=..., context=...)``."""
    return write_kubeconfig


@pytest.fixture
def token():
    return TOKEN


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (its own CA), made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a certificate for the HTTPS fake API server")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def api_server():
    server = fake_apiserver.FakeApiServer(token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def tls_api_server(tls_files):
    server = fake_apiserver.FakeApiServer(token=TOKEN, tls=tls_files).start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(api_server, tmp_path, monkeypatch):
    """$KUBECONFIG names a file whose current context is the fake server with our bearer token."""
    path = write_kubeconfig(tmp_path / "kubeconfig", api_server.url)
    monkeypatch.setenv("KUBECONFIG", path)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path
