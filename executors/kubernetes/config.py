"""Where the cluster is and how to log in: kubeconfig, in-cluster service account, or an explicit server.

:class:`ClusterConfig` is plain data (it goes into job handles, so it never holds a
secret: tokens are read from files). :func:`connect` turns it into a ``kubernetes``
API client; :func:`explain` turns the client's failures into one :class:`KubernetesError`
that says what failed and how to fix it. ``kubernetes`` is imported only inside functions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, Optional

import attrs
from xmanager.executors.api import LaunchError

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_KUBECONFIG = "~/.kube/config"


class KubernetesError(LaunchError):
    """A Kubernetes operation failed; the message names what failed and how to fix it."""


@attrs.frozen
class ClusterConfig:
    """How to reach the API server.

    Parameters
    ----------
    kubeconfig, context:
        A kubeconfig file (default: ``$KUBECONFIG``, else ``~/.kube/config``) and one of its
        contexts (default: its current context).
    in_cluster:
        ``True`` uses the pod's service account (``KUBERNETES_SERVICE_HOST``/``_PORT`` and the
        token and CA under ``/var/run/secrets/kubernetes.io/serviceaccount``); ``None`` (default)
        does so only when running in a pod and no kubeconfig exists.
    api_server, token_file, ca_file, verify_ssl:
        An explicit server URL with a bearer token read from ``token_file`` and the server's CA
        certificate. ``token_file``/``ca_file`` also override the in-cluster paths.
    """

    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    in_cluster: Optional[bool] = None
    api_server: Optional[str] = None
    token_file: Optional[str] = None
    ca_file: Optional[str] = None
    verify_ssl: bool = True

    def __attrs_post_init__(self) -> None:
        if self.api_server is not None and not self.api_server.startswith(("http://", "https://")):
            raise ValueError(f"ClusterConfig(api_server={self.api_server!r}): give a URL such as https://host:6443")
        if self.api_server is not None and (self.kubeconfig or self.in_cluster):
            raise ValueError("ClusterConfig: give api_server, or kubeconfig/in_cluster, not both")

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: Optional[Mapping[str, Any]]) -> ClusterConfig:
        return cls(**dict(data or {}))

    def kubeconfig_path(self) -> str:
        path = self.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or DEFAULT_KUBECONFIG
        return os.path.expanduser(path)

    def mode(self) -> str:
        """``"explicit"``, ``"in-cluster"`` or ``"kubeconfig"``."""
        if self.api_server is not None:
            return "explicit"
        if self.in_cluster:
            return "in-cluster"
        if self.in_cluster is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not self.kubeconfig:
            if not os.path.exists(self.kubeconfig_path()):
                return "in-cluster"
        return "kubeconfig"

    def describe(self) -> str:
        mode = self.mode()
        if mode == "explicit":
            return f"api_server {self.api_server}"
        if mode == "in-cluster":
            return "the in-cluster service account"
        return f"kubeconfig {self.kubeconfig_path()}" + (f" (context {self.context})" if self.context else "")


@attrs.frozen
class Connection:
    """An API client plus what error messages need: the server and the default namespace."""

    api_client: Any
    host: str
    namespace: str
    source: str
    #: Connections the client keeps open to the server: at least the calls this backend makes at once.
    pool_size: int = 8


def _read(path: str, what: str, fix: str) -> str:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as error:
        raise KubernetesError(f"Kubernetes: cannot read the {what} {path!r} ({error.strerror}); {fix}") from None


def connect(cluster: ClusterConfig, pool_size: int = 8) -> Connection:
    """An API client for ``cluster``. Raises :class:`KubernetesError` on missing or broken credentials.

    One client is shared by the backend's threads: its urllib3 ``PoolManager`` is thread-safe,
    and ``pool_size`` keeps that many connections open to the server (urllib3 opens more when
    more calls run at once, but then discards them after use, so the pool must be at least the
    number of concurrent calls for connections to be reused). Token refreshes of kubeconfig
    users (exec plugins) are serialised. The rest of ``ApiClient`` builds fresh per-call state.
    """
    if not isinstance(pool_size, int) or pool_size < 1:
        raise ValueError(f"connect(pool_size={pool_size!r}): must be an int >= 1")
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from urllib3.util.retry import Retry

    configuration = client.Configuration()
    namespace = "default"
    mode = cluster.mode()
    source = cluster.describe()
    if mode == "explicit":
        if not cluster.token_file:
            raise KubernetesError(
                f"Kubernetes: {source} has no credentials; pass ClusterConfig(token_file=...) naming a file "
                "that holds a bearer token (e.g. from `kubectl create token <service-account>`)"
            )
        assert cluster.api_server is not None
        configuration.host = cluster.api_server.rstrip("/")
        token = _read(cluster.token_file, "token file", "pass the path of a file holding a bearer token")
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    elif mode == "in-cluster":
        from kubernetes.config import incluster_config

        token_file = cluster.token_file or os.path.join(SERVICE_ACCOUNT_DIR, "token")
        ca_file = cluster.ca_file or os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise KubernetesError(
                "Kubernetes: in_cluster=True but KUBERNETES_SERVICE_HOST is not set, so this is not a pod; "
                "use a kubeconfig (ClusterConfig(kubeconfig=...)) outside the cluster"
            )
        try:
            incluster_config.InClusterConfigLoader(token_file, ca_file).load_and_set(configuration)
        except ConfigException as error:
            raise KubernetesError(
                f"Kubernetes: the in-cluster service account is unusable ({error}); check that the pod mounts its "
                f"service-account token ({token_file}) and CA ({ca_file}) (automountServiceAccountToken)"
            ) from None
        namespace_file = os.path.join(os.path.dirname(token_file), "namespace")
        if os.path.exists(namespace_file):
            namespace = _read(namespace_file, "namespace file", "") or namespace
    else:
        from kubernetes.config import kube_config

        path = cluster.kubeconfig_path()
        if not os.path.exists(path):
            raise KubernetesError(
                f"Kubernetes: no cluster configuration: {path} does not exist and this is not a pod "
                "(KUBERNETES_SERVICE_HOST unset). Get credentials (e.g. `gcloud container clusters get-credentials`), "
                "set $KUBECONFIG, or pass Kubernetes(cluster=ClusterConfig(kubeconfig=... | api_server=...))"
            )
        try:
            loader = kube_config._get_kube_config_loader(filename=path, active_context=cluster.context)
            loader.load_and_set(configuration)
        except (ConfigException, ValueError, TypeError) as error:
            raise KubernetesError(f"Kubernetes: {source} is unusable: {error}") from None
        namespace = loader.current_context.get("context", {}).get("namespace") or namespace
        has_credentials = configuration.api_key or configuration.cert_file or configuration.username
        if not has_credentials:
            raise KubernetesError(
                f"Kubernetes: {source} has no credentials for its user (no token, client certificate, "
                "exec plugin or password); log in again (e.g. `gcloud container clusters get-credentials`) "
                "or fix the user entry of the context"
            )
    if cluster.ca_file and mode != "in-cluster":
        configuration.ssl_ca_cert = os.path.expanduser(cluster.ca_file)
    if not cluster.verify_ssl:
        configuration.verify_ssl = False
    # A failed connection is retried once (an unreachable server fails in well under a second, not after urllib3's
    # 3 retries); answers are never retried by urllib3 (it would sleep out a 429/503 Retry-After itself): that is
    # what xmanager.executors.kubernetes.retry does, with a cap.
    configuration.retries = Retry(total=1, respect_retry_after_header=False)
    configuration.connection_pool_maxsize = pool_size
    hook = configuration.refresh_api_key_hook
    if hook is not None:  # Token refresh (exec plugins) runs once at a time, not in every thread at once.
        lock = threading.Lock()

        def refresh(config: Any) -> None:
            with lock:
                hook(config)

        configuration.refresh_api_key_hook = refresh
    return Connection(client.ApiClient(configuration), configuration.host, namespace, source, pool_size)


def explain(error: BaseException, connection: Connection, action: str) -> KubernetesError:
    """One clear error for a failed API call: what failed (``action``) and how to fix it."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError, SSLError
    from xmanager.executors.kubernetes.retry import gave_up

    where = f"the Kubernetes API server at {connection.host} (from {connection.source})"
    if isinstance(error, ApiException):
        message = _api_message(error)
        status = error.status
        if status == 401:
            text = (f"{where} rejected our credentials (401 Unauthorized) while trying to {action}; the token or "
                    "certificate is missing or expired: log in again (e.g. `gcloud container clusters get-credentials`)")
        elif status == 403 and "exceeded quota" in message:
            text = (f"{where} refused to {action} (403 Forbidden: {message}); the namespace's ResourceQuota is used "
                    "up: wait for running Jobs to end, delete finished ones, or ask for a larger quota")
        elif status == 403:
            text = (f"{where} forbade us to {action} (403 Forbidden: {message}); grant the account RBAC rights on "
                    "jobs, pods and pods/log in that namespace")
        elif status == 404 and "namespaces" in message:
            text = f"could not {action}: {message} (404); create the namespace or pass Kubernetes(namespace=...)"
        elif status == 422:
            text = f"{where} refused the Job manifest while trying to {action} (422 Invalid): {message}"
        elif status == 429:
            text = f"could not {action}: {where} kept answering 429 Too Many Requests: {message}"
        else:
            text = f"could not {action}: {where} answered {status} {error.reason}: {message}"
        return KubernetesError(text + gave_up(error))
    reason = getattr(error, "reason", None)
    if isinstance(error, SSLError) or isinstance(reason, SSLError):
        return KubernetesError(f"could not {action}: TLS verification of {where} failed ({error}); give the "
                               "server's CA certificate (certificate-authority in kubeconfig or ClusterConfig(ca_file=))")
    if isinstance(error, (HTTPError, OSError)):
        reason = reason or error
        return KubernetesError(f"could not {action}: cannot reach {where} ({reason}); check that the cluster is up "
                               "and that the configuration points at the right server and context")
    return KubernetesError(f"could not {action}: {type(error).__name__}: {error}")


def _api_message(error: Any) -> str:
    import json

    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return str(error.body or error.reason)
    return str(body.get("message") or error.reason) if isinstance(body, dict) else str(body)
