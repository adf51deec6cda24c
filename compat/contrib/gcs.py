"""Google Cloud Storage output paths: the ``--xm_gcs_path`` flag, and ``gs://`` <-> ``/gcs/`` (gcsfuse) forms.

Only string handling: nothing here talks to Cloud Storage.
"""

from __future__ import annotations

import datetime
import getpass
import posixpath

import attrs
from absl import app
from xmanager import xm_flags

_GS_PREFIX = "gs://"
_GCS_PREFIX = "/gcs/"
_FORMATS = "gs://bucket/directory or /gcs/path format"

_default_bucket_name = "<Your bucket>"
#: The Cloud console, for links to a path (a module attribute so tests can point it elsewhere).
gcp_website_url = "https://console.cloud.google.com"


@attrs.frozen
class GcsVolume:
    """A Cloud Storage folder mounted into a job's container at ``mount_path``."""

    bucket: str
    directory_path: str
    mount_path: str


def suggestion(project_name: str) -> str:
    """A fresh ``gs://`` folder name for ``project_name``: bucket placeholder, user, name and a timestamp."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return posixpath.join(_GS_PREFIX, _default_bucket_name, getpass.getuser(), f"{project_name}-{stamp}")


def get_gcs_path_or_fail(project_name: str) -> str:
    """``--xm_gcs_path``; a missing or malformed value raises ``app.UsageError`` with a suggestion."""
    path = xm_flags.value(xm_flags.GCS_PATH)
    if not path:
        raise app.UsageError(f"--xm_gcs_path is missing. Suggestion: --xm_gcs_path={suggestion(project_name)}")
    if not is_gcs_path(path):
        raise app.UsageError(
            f"--xm_gcs_path not in {_FORMATS}. Suggestion: --xm_gcs_path={suggestion(project_name)}"
        )
    return str(path)


def is_gs_path(path: str) -> bool:
    """``gs://...``."""
    return path.startswith(_GS_PREFIX)


def is_gcs_fuse_path(path: str) -> bool:
    """``/gcs/...`` (a gcsfuse mount)."""
    return path.startswith(_GCS_PREFIX)


def is_gcs_path(path: str) -> bool:
    """Either form."""
    return is_gs_path(path) or is_gcs_fuse_path(path)


def _bucket_and_directory(path: str) -> str:
    for prefix in (_GS_PREFIX, _GCS_PREFIX):
        if path.startswith(prefix):
            return path[len(prefix):]
    raise ValueError(f"Path not in {_FORMATS}: {path!r}")


def get_gcs_url(path: str) -> str:
    """The Cloud console page of ``path``."""
    return f"{gcp_website_url}/storage/browser/{_bucket_and_directory(path)}"


def get_gcs_fuse_path(path: str) -> str:
    """``path`` as ``/gcs/bucket/directory``."""
    return _GCS_PREFIX + _bucket_and_directory(path)


def get_gs_path(path: str) -> str:
    """``path`` as ``gs://bucket/directory``."""
    return _GS_PREFIX + _bucket_and_directory(path)


def path_to_volume(path: str, mount_point: str) -> GcsVolume:
    """The volume that mounts Cloud Storage folder ``path`` at the absolute ``mount_point``."""
    bucket, _, directory = _bucket_and_directory(path).partition("/")
    if not bucket:
        raise ValueError(f"Path not in {_FORMATS}: {path!r} names no bucket")
    if not mount_point or not posixpath.isabs(mount_point):
        raise ValueError(f"Mount point is not a valid path: {mount_point!r} (it must be absolute)")
    return GcsVolume(bucket=bucket, directory_path=directory, mount_path=mount_point)
