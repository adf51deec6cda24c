"""Credentials, project and the ``JobServiceClient`` for one (endpoint, project, location).

Credentials come from the standard Google configuration (``google.auth.default()``:
``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``, or the
metadata server on Google Cloud). The API endpoint is ``<location>-aiplatform.googleapis.com``
unless ``Vertex(api_endpoint=...)`` or ``XM_VERTEX_API_ENDPOINT`` says otherwise (private
endpoints, tests). ``google.cloud.aiplatform_v1`` takes seconds to import, so it is imported
here, inside functions, and only when a Vertex job is launched or polled.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any, Optional

import attrs
from xmanager.executors.api import ServiceUnavailableError

if TYPE_CHECKING:
    from xmanager.executors.vertex.executor import Vertex

ENDPOINT_ENV = "XM_VERTEX_API_ENDPOINT"
PROJECT_ENVS = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
REGION_ENV = "GOOGLE_CLOUD_REGION"
DEFAULT_LOCATION = "us-central1"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CREDENTIALS_HINT = (
    "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run "
    "`gcloud auth application-default login`"
)


class VertexConfigError(ServiceUnavailableError):
    """Vertex AI cannot be used as configured: credentials, project, or API server (says how to fix it)."""


@attrs.frozen
class Target:
    """Where CustomJobs go: the API server, the project and the region."""

    endpoint: str
    project: str
    location: str

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"


_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


def location_of(executor: Vertex) -> str:
    """The region: ``Vertex(location)``, ``requirements.location``, ``GOOGLE_CLOUD_REGION``, else us-central1."""
    for where, value in (
        ("Vertex(location=...)", executor.location),
        ("JobRequirements(location=...)", executor.requirements.location),
        (REGION_ENV, os.environ.get(REGION_ENV)),
    ):
        if value:
            if not _REGION.match(value):
                raise VertexConfigError(f"{where} is {value!r}: Vertex AI needs a region such as 'us-central1' "
                                        "(not a zone such as 'us-central1-a')")
            return str(value)
    return DEFAULT_LOCATION


def endpoint_for(location: str, explicit: Optional[str] = None) -> str:
    return explicit or os.environ.get(ENDPOINT_ENV) or f"{location}-aiplatform.googleapis.com"


def default_credentials() -> tuple[Any, Optional[str]]:
    """``google.auth.default()``, its failure turned into one error that says how to log in."""
    import google.auth
    from google.auth import exceptions

    try:
        return google.auth.default(scopes=list(SCOPES))
    except exceptions.DefaultCredentialsError as error:
        message = f"no Google Cloud credentials found for Vertex AI: {CREDENTIALS_HINT} ({error})"
        raise VertexConfigError(message) from None


def project_of(explicit: Optional[str], discovered: Optional[str]) -> str:
    project = explicit or next((os.environ[name] for name in PROJECT_ENVS if os.environ.get(name)), None) or discovered
    if not project:
        raise VertexConfigError(
            "no Google Cloud project for Vertex AI: pass Vertex(project='my-project'), set GOOGLE_CLOUD_PROJECT, "
            "or run `gcloud config set project my-project`"
        )
    return project


class Clients:
    """One ``JobServiceClient`` per API endpoint, with credentials found once."""

    def __init__(self) -> None:
        self._credentials: Optional[tuple[Any, Optional[str]]] = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()  # Launches and polls may come from different threads.

    def credentials(self) -> tuple[Any, Optional[str]]:
        with self._lock:
            if self._credentials is None:
                self._credentials = default_credentials()
            return self._credentials

    def target(self, executor: Vertex) -> Target:
        """The target of an executor: project and credentials are resolved (and checked) here."""
        location = location_of(executor)
        _, discovered = self.credentials()
        return Target(endpoint_for(location, executor.api_endpoint), project_of(executor.project, discovered), location)

    def client(self, endpoint: str) -> Any:
        with self._lock:
            client = self._clients.get(endpoint)
            if client is None:
                from google.api_core.client_options import ClientOptions
                from google.cloud.aiplatform_v1.services.job_service import JobServiceClient

                credentials, _ = self.credentials()
                client = JobServiceClient(credentials=credentials, client_options=ClientOptions(api_endpoint=endpoint))
                self._clients[endpoint] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.transport.close()
