"""Google Cloud credentials, project, bucket and service account, as XManager's ``xmanager.cloud.auth`` names them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Optional

from xmanager import xm_flags
from xmanager.executors.api import ServiceUnavailableError

_DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
BUCKET_ENV = "GOOGLE_CLOUD_BUCKET_NAME"


def _default(scopes: Optional[Sequence[str]] = None) -> tuple[Any, Optional[str]]:
    from xmanager.executors.vertex.client import default_credentials

    if scopes is None:
        return default_credentials()
    import google.auth
    from google.auth import exceptions

    try:
        return google.auth.default(scopes=list(scopes))
    except exceptions.DefaultCredentialsError as error:
        raise ServiceUnavailableError(f"no Google Cloud credentials found ({error})") from None


def get_project_name() -> Optional[str]:
    """The project of ``GOOGLE_CLOUD_PROJECT`` or of the application-default credentials."""
    from xmanager.executors import gcloud

    return gcloud.project("xmanager.cloud.auth.get_project_name()")


def get_project_number() -> str:
    """The project's number, from the Cloud Resource Manager API (needs its client library)."""
    project = get_project_name()
    try:
        from google.cloud import resourcemanager_v3
    except ImportError:
        raise ServiceUnavailableError(
            f"the number of project {project!r} comes from the Cloud Resource Manager API: "
            "pip install google-cloud-resource-manager"
        ) from None
    client = resourcemanager_v3.ProjectsClient(credentials=get_creds())
    return client.get_project(name=f"projects/{project}").name.split("/", 1)[1]


def get_creds(scopes: Sequence[str] = _DEFAULT_SCOPES) -> Any:
    """The application-default credentials with ``scopes``."""
    credentials, _ = _default(scopes)
    return credentials


def enable_apis() -> None:
    """XManager enables its Google Cloud APIs here; this launcher leaves that to ``gcloud services enable``."""
    raise ServiceUnavailableError(
        "enabling Google Cloud APIs is not done by this launcher: run `gcloud services enable "
        "aiplatform.googleapis.com container.googleapis.com containerregistry.googleapis.com`"
    )


def get_service_account() -> str:
    """``--xm_gcp_service_account_name`` in the project: ``NAME@PROJECT.iam.gserviceaccount.com``.

    XManager also creates the account and grants it roles when it can; here it must exist.
    """
    name = str(xm_flags.value(xm_flags.GCP_SERVICE_ACCOUNT_NAME)).split("@", 1)[0]
    return f"{name}@{get_project_name()}.iam.gserviceaccount.com"


def get_bucket() -> str:
    """``$GOOGLE_CLOUD_BUCKET_NAME``; unset raises ``ValueError`` saying how to make one."""
    bucket = os.environ.get(BUCKET_ENV)
    if bucket:
        return bucket
    raise ValueError(
        f"${BUCKET_ENV} is not set: export {BUCKET_ENV}=<bucket> (create one with "
        f"`gcloud storage buckets create --location=us-central1 gs://<bucket>`)"
    )
