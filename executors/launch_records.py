"""Launch records: what a detached executor's ``recover`` needs to find a dead launcher's jobs again.

Before its first create call, a backend's ``launch`` writes one small JSON file per experiment folder
(``<experiment folder>/<prefix><random>.json``) listing, for every job it is about to send, the work
unit, the job name and the handle data the executor needs to look the job up. A job with no record
was never sent; one with a record is looked up the way its executor says. Each executor names its
records with its own prefix (:class:`LaunchRecords`), so two executors' records never mix.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import time
from collections.abc import Iterable
from typing import Any

#: (work_dir, experiment id, work unit id, job name, handle data) of one job about to be sent.
Entry = tuple[str, int, int, str, dict[str, Any]]


def experiment_folder(work_dir: str) -> str:
    """``<experiment folder>`` of a job folder ``<experiment folder>/<work unit>/<job>``."""
    return os.path.dirname(os.path.dirname(os.path.abspath(work_dir)))


class LaunchRecords:
    """The launch records of one executor, the files named ``<prefix>*.json`` in experiment folders."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def write(self, entries: Iterable[Entry]) -> None:
        """Writes the entries, one file per experiment folder, atomically (temporary file, then rename)."""
        by_folder: dict[str, list[dict[str, Any]]] = {}
        for work_dir, experiment_id, work_unit_id, job_name, data in entries:
            by_folder.setdefault(experiment_folder(work_dir), []).append(
                {"experiment_id": experiment_id, "work_unit_id": work_unit_id, "job_name": job_name, "data": data})
        for folder, jobs in by_folder.items():
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{self.prefix}{secrets.token_hex(6)}.json")
            with open(f"{path}.tmp", "w", encoding="utf-8") as file:
                json.dump({"written": time.time(), "jobs": jobs}, file)
            os.replace(f"{path}.tmp", path)

    def read(self, folder: str) -> dict[tuple[int, int, str], dict[str, Any]]:
        """The recorded handle data of the folder's jobs, by (experiment, unit, job); the newest record wins."""
        records = []
        for path in glob.glob(os.path.join(glob.escape(folder), f"{self.prefix}*.json")):
            try:
                with open(path, encoding="utf-8") as file:
                    records.append(json.load(file))
            except (OSError, ValueError):
                continue  # Unreadable: as if the launch had not got that far.
        found: dict[tuple[int, int, str], dict[str, Any]] = {}
        for record in sorted(records, key=lambda record: float(record.get("written", 0.0))):
            for job in record.get("jobs") or []:
                found[(int(job["experiment_id"]), int(job["work_unit_id"]), str(job["job_name"]))] = dict(job["data"])
        return found
