"""Store rows as the JSON the dashboard's pages read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

from xmanager.executors.api import Handle
from xmanager.xm.status import Status
from xmanager.xm_local.store.rows import ExperimentRow, JobRow, UnitRow
from xmanager.xm_local.work_unit import LocalJob

__all__ = ["executor_link", "experiment_json", "job_json", "plain", "unit_json"]


def plain(value: Any) -> Any:
    """``value`` with non-finite floats as their text (JSON has no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def experiment_json(row: ExperimentRow) -> dict[str, Any]:
    return {
        "experiment_id": row.experiment_id,
        "title": row.title,
        "tags": list(row.tags),
        "notes": row.notes,
        "creator": row.creator,
        "created_at": row.created_at,
        "cancelled_at": row.cancelled_at,
        "work_unit_count": row.work_unit_count,
        "status_counts": dict(row.status_counts),
        "active": any(count for status, count in row.status_counts.items() if not Status(status).is_terminal),
    }


def unit_json(row: UnitRow) -> dict[str, Any]:
    duration = None
    if row.started_at is not None and row.ended_at is not None:
        duration = row.ended_at - row.started_at
    return {
        "work_unit_id": row.work_unit_id,
        "args": plain(row.args or {}),
        "results": plain(row.results or {}),
        "status": row.status,
        "active": not Status(row.status).is_terminal,
        "message": row.message,
        "exit_code": row.exit_code,
        "host": row.host,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "duration": duration,
    }


def _handle(row: JobRow) -> Optional[Handle]:
    if not isinstance(row.handle, Mapping) or "executor" not in row.handle:
        return None
    return Handle.from_json(row.handle, row.experiment_id, row.work_unit_id, row.job_name)


def executor_link(row: JobRow) -> dict[str, Optional[str]]:
    """Where the job runs, as text, and a link to it in its executor's console when there is one."""
    handle = _handle(row)
    job = LocalJob(row.job_name, row.executor, Status(row.status), row.message or "", row.exit_code, handle)
    data = {} if handle is None else dict(handle.data)
    where: Optional[str] = None
    if "job_id" in data:  # Slurm: the array job and this unit's task.
        task = data.get("task")
        where = f"Slurm job {data['job_id']}" + ("" if task is None else f"_{task}")
    elif "namespace" in data and "name" in data:
        where = f"Kubernetes job {data['namespace']}/{data['name']}"
    elif "container" in data:
        where = f"container {str(data['container'])[:12]}" + (f" on {data['docker_host']}" if data.get("docker_host") else "")
    elif "pid" in data:
        where = f"pid {data['pid']}" + (f" on {data['host']}" if data.get("host") else "")
    elif "name" in data:
        where = str(data["name"])
    return {"where": where, "url": job.console_url}


def job_json(row: JobRow) -> dict[str, Any]:
    link = executor_link(row)
    return {
        "job_name": row.job_name,
        "executor": row.executor,
        "status": row.status,
        "message": row.message,
        "exit_code": row.exit_code,
        "host": row.host,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "where": link["where"],
        "console_url": link["url"],
        "logs": {"stdout": row.stdout_path is not None, "stderr": row.stderr_path is not None},
    }
