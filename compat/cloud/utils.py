"""Cluster details inside a Vertex AI job (``CLUSTER_SPEC``), and XManager's late-bound worker-pool addresses."""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from xmanager.executors.api import ServiceUnavailableError

#: ``%objectname(workerpool0)%`` in an arg or env var stands for that pool's first address.
_LATE_BINDING = re.compile(r"%objectname\(([^)]*)\)%")
_METADATA_ZONE = "http://metadata.google.internal/computeMetadata/v1/instance/zone"
_log = logging.getLogger(__name__)


def _cluster_spec() -> dict[str, Any] | None:
    text = os.environ.get("CLUSTER_SPEC")
    return json.loads(text) if text else None


def get_master_address_port() -> tuple[str, str]:
    """The first replica of ``workerpool0`` as (address, port); ``("127.0.0.1", "29500")`` outside a cluster."""
    spec = _cluster_spec()
    pools = (spec or {}).get("cluster", {})
    if not pools.get("workerpool0"):
        return "127.0.0.1", "29500"
    address, port = pools["workerpool0"][0].rsplit(":", 1)
    return address, port


def get_world_size_rank() -> tuple[int, int]:
    """(replicas in all pools, this replica's rank counting pools in order); ``(1, 0)`` outside a cluster."""
    spec = _cluster_spec()
    if not spec:
        return 1, 0
    task = spec["task"]
    size, rank = 0, 0
    for pool, members in spec["cluster"].items():
        if pool == task["type"]:
            rank = size + int(task["index"])
        size += len(members)
    return size, rank


def create_cluster_specs(workers: Sequence[str]) -> list[str]:
    """One ``CLUSTER_SPEC`` JSON per worker, each worker its own pool ``workerpool<i>``."""
    cluster = {f"workerpool{i}": [domain] for i, domain in enumerate(workers)}
    return [
        json.dumps({"cluster": cluster, "task": {"type": f"workerpool{i}", "index": i}}) for i in range(len(workers))
    ]


def get_workerpool_address(workerpool: str) -> str:
    """A placeholder for ``workerpool``'s address, replaced inside the job by :func:`map_workerpool_address_args`."""
    return f"%objectname({workerpool})%"


def _resolve(text: str, pools: dict[str, list[str]]) -> str:
    return _LATE_BINDING.sub(lambda match: pools[match.group(1)][0], text)


def map_workerpool_address_args(args: list[str]) -> list[str]:
    """``args`` with every placeholder replaced from ``CLUSTER_SPEC`` (unchanged outside a cluster)."""
    spec = _cluster_spec()
    if spec is None:
        return list(args)
    return [_resolve(arg, spec["cluster"]) for arg in args]


def print_workerpool_address_args(argv: list[str]) -> None:
    """Prints ``argv[1:]`` resolved, one per line (for an entrypoint script)."""
    for arg in map_workerpool_address_args(argv[1:]):
        print(arg)


def create_workerpool_address_env_vars_script(path: str) -> None:
    """Writes a bash script exporting every environment variable whose value is a placeholder, resolved."""
    spec = _cluster_spec()
    lines = ["#!/bin/bash", ""]
    if spec is not None:
        for key, value in os.environ.items():
            if _LATE_BINDING.fullmatch(value):
                lines.append(f"export {key}={_resolve(value, spec['cluster'])}")
    with open(path, "w", encoding="utf-8") as script:
        script.write("\n".join(lines) + "\n")


def get_region() -> str:
    """This Google Compute Engine VM's region, from the metadata server (only on Google Cloud)."""
    request = urllib.request.Request(_METADATA_ZONE, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            zone = response.read().decode().strip().rsplit("/", 1)[-1]
    except (urllib.error.URLError, OSError) as error:
        raise ServiceUnavailableError(
            f"the region comes from the Compute Engine metadata server, which is not reachable here ({error}); "
            "this only works on a Google Cloud VM"
        ) from None
    return zone.rsplit("-", 1)[0]


def get_closest_bucket(bucket_names: list[str]) -> str:
    """The first bucket located in this VM's region (needs Cloud Storage), else the first one."""
    region = get_region()
    try:
        import google.cloud.storage as storage  # mypy misreads `from google.cloud import storage` (a namespace).
    except ImportError:
        raise ServiceUnavailableError("finding a bucket's location needs google-cloud-storage") from None
    client = storage.Client()
    for name in bucket_names:
        bucket = storage.Bucket(client=client, name=name)
        bucket.reload()
        if region.startswith(bucket.location.lower()):
            return name
    _log.info("no bucket is in region %s; using %s", region, bucket_names[0])
    return bucket_names[0]
