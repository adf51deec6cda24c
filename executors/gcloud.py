"""The Google Cloud project of this machine, for defaults that name it (XManager's ``gcr.io/PROJECT/NAME`` images).

The project comes from ``GOOGLE_CLOUD_PROJECT`` / ``CLOUDSDK_CORE_PROJECT``, else from the
application-default credentials (``google.auth.default()``, imported only here). No project
is a :class:`ServiceUnavailableError` that says how to give one.
"""

from __future__ import annotations

import os
import re

from xmanager.executors.api import ServiceUnavailableError

PROJECT_ENVS = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
HOW_TO = ("set GOOGLE_CLOUD_PROJECT with credentials in GOOGLE_APPLICATION_CREDENTIALS, or run "
          "`gcloud auth application-default login`")


def project(purpose: str) -> str:
    """The project's id; ``purpose`` says what needs it, for the error."""
    for name in PROJECT_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    try:
        import google.auth
        from google.auth import exceptions
    except ImportError:
        raise ServiceUnavailableError(
            f"{purpose} needs a Google Cloud project: none is set and google-auth is not installed "
            "(pip install google-auth); or set GOOGLE_CLOUD_PROJECT"
        ) from None
    try:
        _, found = google.auth.default()
    except exceptions.DefaultCredentialsError:
        raise ServiceUnavailableError(
            f"{purpose} needs a Google Cloud project: no Google Cloud credentials or project found; {HOW_TO}"
        ) from None
    if not found:
        raise ServiceUnavailableError(f"{purpose} needs a Google Cloud project: the credentials name none; {HOW_TO}")
    return str(found)


def default_repository(name: str, purpose: str) -> str:
    """XManager's default image repository ``gcr.io/PROJECT/NAME``."""
    repository = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-") or "image"
    return f"gcr.io/{project(purpose)}/{repository}"
