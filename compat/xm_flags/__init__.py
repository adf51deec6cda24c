"""XManager's ``--xm_*`` launch flags, so documented XManager command lines work here.

``xmanager launch`` (and ``from xmanager import xm_local``) defines them. Each flag has
XManager's name, type and default; which ones change what this launcher does is said in
its help text and in ``docs/xmanager.md``. The rest are accepted and have no effect,
because the machinery they tune (Cloud Build, tmux, XManager's own Docker wrapper) is not
part of this launcher.
"""

from __future__ import annotations

from typing import Any, TypeVar

from absl import flags

T = TypeVar("T")

_NO_OP = "Accepted for XManager compatibility; no effect here."

# ---- images and cloud ----------------------------------------------------------------------------
BUILD_IMAGE_LOCALLY = flags.DEFINE_boolean(
    "xm_build_image_locally", True,
    "Build images on the local Docker engine (always so here: --noxm_build_image_locally, i.e. Google "
    "Cloud Build, is refused with an error).",
)
USE_DOCKER_COMMAND = flags.DEFINE_boolean(
    "xm_use_docker_command", True, f"Build with the `docker` command instead of the SDK. {_NO_OP}"
)
SHOW_DOCKER_COMMAND_PROGRESS = flags.DEFINE_boolean(
    "xm_show_docker_command_progress", False, f"Show `docker build` output. {_NO_OP}"
)
WRAP_LATE_BINDINGS = flags.DEFINE_boolean(
    "xm_wrap_late_bindings", False, f"Resolve late-bound addresses inside the container's entrypoint. {_NO_OP}"
)
CLOUD_BUILD_TIMEOUT_SECONDS = flags.DEFINE_integer(
    "xm_cloud_build_timeout_seconds", 1200, f"Cloud Build time limit. {_NO_OP}"
)
USE_CLOUD_BUILD_CACHE = flags.DEFINE_boolean("xm_use_cloud_build_cache", False, f"Cloud Build cache. {_NO_OP}")
USE_KANIKO = flags.DEFINE_boolean("xm_use_kaniko", False, f"Kaniko on Cloud Build. {_NO_OP}")
KANIKO_CACHE_TTL = flags.DEFINE_string("xm_kaniko_cache_ttl", "336h", f"Kaniko cache lifetime. {_NO_OP}")
GCP_SERVICE_ACCOUNT_NAME = flags.DEFINE_string(
    "xm_gcp_service_account_name", "xmanager",
    "When given, Vertex AI jobs without Vertex(service_account=...) run as "
    "NAME@PROJECT.iam.gserviceaccount.com (only the part before '@').",
)
K8S_SERVICE_ACCOUNT_NAME = flags.DEFINE_string(
    "xm_k8s_service_account_name", "default",
    "The pods' Kubernetes service account when Kubernetes(service_account=...) is not set.",
)

# ---- the store and local jobs ----------------------------------------------------------------------
DB_YAML_CONFIG_PATH = flags.DEFINE_string(
    "xm_db_yaml_config_path", None,
    "An XManager database YAML file (sql_connector: sqlite | generic, sql_connection_settings: backend, "
    "driver, username, password, host, port, db_name); it becomes the store's URL for this launch.",
)
UPGRADE_DB = flags.DEFINE_boolean(
    "xm_upgrade_db", False, "Upgrade the database schema. The store is always migrated on open here; no effect."
)
BAZEL_COMMAND = flags.DEFINE_string(
    "xm_bazel_command", "bazel",
    "The command that runs Bazel for xm.BazelBinary / xm.BazelContainer (split like a shell would, so "
    "startup options may follow the program).",
)
USE_MULTIPLEXER = flags.DEFINE_boolean("xm_use_multiplexer", None, f"Run local jobs in tmux. {_NO_OP}")
OPEN_MULTIPLEXER_WINDOW = flags.DEFINE_integer(
    "xm_open_multiplexer_window", None, f"The tmux window to switch to. {_NO_OP}"
)
SUBPROCESS_DOCKER = flags.DEFINE_bool(
    "xm_subprocess_docker_impl", False, f"Run containers through the `docker` command. {_NO_OP}"
)

LAUNCH_SCRIPT = flags.DEFINE_string(
    "xm_launch_script", None,
    "The launch script's path; relative paths in executable specs resolve against its folder. "
    "`xmanager launch` sets it, as XManager's CLI does.",
)

# ---- contrib --------------------------------------------------------------------------------------
GCS_PATH = flags.DEFINE_string(
    "xm_gcs_path", None, "The gs://bucket/directory (or /gcs/bucket/directory) xmanager.contrib.gcs hands out."
)


def value(holder: flags.FlagHolder[T]) -> T:
    """The flag's current value, also before flags are parsed (then its default, or what a test set)."""
    # FlagHolder.value refuses unparsed flags. The ignore: absl types Flag.value as Optional[Any], while
    # the holder's T already includes None where the flag may be None (absl's FlagHolder.default does the same).
    return flags.FLAGS[holder.name].value  # type: ignore[return-value]


def is_present(holder: flags.FlagHolder[Any]) -> bool:
    """Whether the flag was given on the command line."""
    return bool(flags.FLAGS[holder.name].present)


def should_use_multiplexer() -> bool:
    """XManager's rule for tmux use; kept for scripts that call it (jobs never run in tmux here)."""
    explicit = value(USE_MULTIPLEXER)
    if explicit is not None:
        return bool(explicit)
    return value(OPEN_MULTIPLEXER_WINDOW) is not None


__all__ = [
    "BAZEL_COMMAND", "BUILD_IMAGE_LOCALLY", "CLOUD_BUILD_TIMEOUT_SECONDS", "DB_YAML_CONFIG_PATH", "GCP_SERVICE_ACCOUNT_NAME",
    "GCS_PATH", "K8S_SERVICE_ACCOUNT_NAME", "KANIKO_CACHE_TTL", "LAUNCH_SCRIPT", "OPEN_MULTIPLEXER_WINDOW", "SHOW_DOCKER_COMMAND_PROGRESS",
    "SUBPROCESS_DOCKER", "UPGRADE_DB", "USE_CLOUD_BUILD_CACHE", "USE_DOCKER_COMMAND", "USE_KANIKO", "USE_MULTIPLEXER",
    "WRAP_LATE_BINDINGS", "is_present", "should_use_multiplexer", "value",
]
