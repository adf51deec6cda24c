"""Reaching the API server: kubeconfig (HTTP and HTTPS), in-cluster service account, explicit server,
and the errors for missing or broken credentials. Every call goes through the real ``kubernetes`` client."""

import pytest
from xmanager.executors.kubernetes.config import ClusterConfig, KubernetesError, connect, explain


def _list_jobs(connection, namespace="default"):
    from kubernetes import client

    return client.BatchV1Api(connection.api_client).list_namespaced_job(namespace, _request_timeout=(5, 10))


def test_kubeconfig_from_the_environment_with_a_bearer_token(kubeconfig, api_server):
    connection = connect(ClusterConfig())
    assert connection.host == api_server.url
    assert connection.namespace == "default"
    assert "kubeconfig" in connection.source and kubeconfig in connection.source
    assert _list_jobs(connection).items == []
    assert api_server.calls("GET", "jobs")  # The server saw (and accepted) the token.


def test_kubeconfig_context_namespace_and_an_explicit_file(api_server, tmp_path, monkeypatch, write_kubeconfig):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    path = write_kubeconfig(tmp_path / "other", api_server.url, namespace="research", context="lab")
    connection = connect(ClusterConfig(kubeconfig=path, context="lab"))
    assert connection.namespace == "research"
    with pytest.raises(KubernetesError, match=r"context.*nope|nope.*context"):
        connect(ClusterConfig(kubeconfig=path, context="nope"))


def test_kubeconfig_over_https_checks_the_servers_certificate(tls_api_server, tls_files, tmp_path, write_kubeconfig):
    cert, _ = tls_files
    trusted = write_kubeconfig(tmp_path / "trusted", tls_api_server.url, ca_file=cert)
    assert _list_jobs(connect(ClusterConfig(kubeconfig=trusted))).items == []
    untrusted = connect(ClusterConfig(kubeconfig=write_kubeconfig(tmp_path / "untrusted", tls_api_server.url)))
    with pytest.raises(Exception) as caught:
        _list_jobs(untrusted)
    error = explain(caught.value, untrusted, "list Jobs")
    assert "TLS verification" in str(error) and "certificate-authority" in str(error)


def test_a_missing_kubeconfig_outside_a_pod_says_how_to_get_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubernetesError, match=r"absent does not exist and this is not a pod.*get-credentials"):
        connect(ClusterConfig())


def test_a_kubeconfig_user_without_credentials_is_refused_before_any_call(api_server, tmp_path, write_kubeconfig):
    path = write_kubeconfig(tmp_path / "anon", api_server.url, token=None)
    with pytest.raises(KubernetesError, match="has no credentials"):
        connect(ClusterConfig(kubeconfig=path))
    assert api_server.requests == []


def test_a_wrong_token_is_explained_as_a_credentials_problem(api_server, tmp_path, write_kubeconfig):
    connection = connect(ClusterConfig(kubeconfig=write_kubeconfig(tmp_path / "k", api_server.url, token="old")))
    with pytest.raises(Exception) as caught:
        _list_jobs(connection)
    message = str(explain(caught.value, connection, "list Jobs"))
    assert "401 Unauthorized" in message and api_server.url in message and "log in again" in message


def test_an_unreachable_server_is_explained(tmp_path, write_kubeconfig):
    import socket

    with socket.socket() as probe:  # A port nobody listens on.
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connection = connect(ClusterConfig(kubeconfig=write_kubeconfig(tmp_path / "k", f"http://127.0.0.1:{port}")))
    with pytest.raises(Exception) as caught:
        _list_jobs(connection)
    message = str(explain(caught.value, connection, "list Jobs"))
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in message


def test_in_cluster_service_account_with_the_clients_own_loader(tls_api_server, tls_files, tmp_path, monkeypatch,
                                                              token):
    cert, _ = tls_files
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(token)
    (account / "namespace").write_text("jobs-ns\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(tls_api_server.port))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    config = ClusterConfig(token_file=str(account / "token"), ca_file=cert)
    assert config.mode() == "in-cluster"  # Detected: in a pod, no kubeconfig.
    connection = connect(config)
    assert connection.host == f"https://127.0.0.1:{tls_api_server.port}"
    assert connection.namespace == "jobs-ns"
    tls_api_server.namespaces.add("jobs-ns")
    assert _list_jobs(connection, "jobs-ns").items == []


def test_in_cluster_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubernetesError, match="KUBERNETES_SERVICE_HOST is not set"):
        connect(ClusterConfig(in_cluster=True))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(KubernetesError, match="service account is unusable.*automountServiceAccountToken"):
        connect(ClusterConfig(in_cluster=True, token_file=str(tmp_path / "missing"), ca_file=str(tmp_path / "ca")))


def test_explicit_server_with_a_token_file(api_server, tmp_path, token):
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    connection = connect(ClusterConfig(api_server=api_server.url, token_file=str(token_file)))
    assert _list_jobs(connection).items == []
    with pytest.raises(KubernetesError, match=r"has no credentials; pass ClusterConfig\(token_file="):
        connect(ClusterConfig(api_server=api_server.url))
    with pytest.raises(KubernetesError, match="cannot read the token file"):
        connect(ClusterConfig(api_server=api_server.url, token_file=str(tmp_path / "nothing")))
    with pytest.raises(ValueError, match="api_server='kube:6443'"):
        ClusterConfig(api_server="kube:6443")


def test_the_config_round_trips_through_json_without_secrets(tmp_path):
    config = ClusterConfig(api_server="https://k:6443", token_file=str(tmp_path / "t"), ca_file="/ca.pem")
    data = config.to_json()
    assert ClusterConfig.from_json(data) == config
    assert "s3cret" not in repr(data)
