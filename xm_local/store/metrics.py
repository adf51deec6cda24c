"""Ingesting the metrics files jobs append to (``xm.report(step=...)``) into the store.

A job appends JSON lines ``{"step": N, "time": T, "values": {name: number}}`` to its metrics file.
Whoever ingests (a reader of a running unit, or the launcher when the unit ends) reads the file from
the byte offset the store keeps for that job (``metric_files``) up to its last whole line, and in one
transaction moves the offset on and inserts the points. Moving the offset is a conditional write
(``... WHERE byte_offset = <what I read>``), so when two processes race for the same lines only the
one whose write changed a row inserts them: nothing is ingested twice, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any, Optional

import attrs
from xmanager.xm_local.store import sql
from xmanager.xm_local.store.driver import Connection

#: Most bytes of a metrics file read (and ingested in one transaction) at a time.
READ_BYTES = 8 << 20
_STEP_RANGE = range(-(2**63), 2**63)

Point = tuple[str, int, float, Optional[float]]


@attrs.frozen
class MetricsFile:
    """Where one job's metrics points are: its unit, its name, and the file (readable from this process)."""

    work_unit_id: int
    job_name: str
    path: str


def collect(conn: Connection, experiment_id: int, files: Sequence[MetricsFile], *, in_transaction: bool) -> int:
    """Ingests the whole lines added to ``files`` since they were last read; returns the points added.

    ``in_transaction``: the caller holds a transaction (the store's writer); else each step of each
    file gets its own. Unreadable or missing files are skipped: a job that reported nothing has none.
    """
    added = 0
    for file in files:
        try:
            size = os.stat(file.path).st_size
        except OSError:
            continue
        key = {"experiment_id": experiment_id, "work_unit_id": file.work_unit_id, "job_name": file.job_name}
        while True:
            rows = conn.query(sql.METRIC_OFFSET, key)
            old = None if not rows else int(rows[0][0])
            if (old or 0) >= size:
                break
            read = _new_lines(file.path, old or 0)
            if read is None:
                break
            chunk, new = read
            points = parse(chunk)
            if in_transaction:
                won = _ingest(conn, key, old, new, points)
            else:
                with conn.transaction():
                    won = _ingest(conn, key, old, new, points)
            if not won:  # Another process took these lines; what follows them is for the next read.
                break
            added += len(points)
    return added


def _new_lines(path: str, offset: int) -> Optional[tuple[bytes, int]]:
    """The whole lines after ``offset`` (at most about :data:`READ_BYTES`) and the offset after them."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(READ_BYTES)
            while data and b"\n" not in data and len(data) % READ_BYTES == 0:  # One very long line.
                more = handle.read(READ_BYTES)
                if not more:
                    break
                data += more
    except OSError:
        return None
    end = data.rfind(b"\n")
    if end < 0:
        return None  # Nothing but a line still being written.
    return data[:end + 1], offset + end + 1


def parse(chunk: bytes) -> list[Point]:
    """The points of whole JSON lines, as (name, step, time, value); NaN becomes None (SQL NULL).

    Lines that are not what ``xm.report`` writes are skipped."""
    points: list[Point] = []
    for line in chunk.splitlines():
        try:
            record = json.loads(line)
            step, at, values = record["step"], float(record["time"]), record["values"]
        except (ValueError, KeyError, TypeError):
            continue
        if type(step) is not int or step not in _STEP_RANGE or not isinstance(values, dict):
            continue
        for name, value in values.items():
            if type(value) not in (int, float) or not isinstance(name, str):
                continue
            number = float(value)
            points.append((name, step, at, None if math.isnan(number) else number))
    return points


def _ingest(conn: Connection, key: dict[str, Any], old: Optional[int], new: int, points: list[Point]) -> bool:
    """Claims the lines from ``old`` to ``new`` and inserts their points; False if another process claimed them."""
    if old is None:
        won = conn.update(sql.CLAIM_FIRST_LINES, {**key, "byte_offset": new})
    else:
        won = conn.update(sql.CLAIM_LINES, {**key, "byte_offset": new, "old_offset": old})
    if not won:
        return False
    if points:
        conn.executemany(sql.INSERT_METRIC, [
            {**key, "name": name, "step": step, "at": at, "value": value} for name, step, at, value in points
        ])
        last: dict[str, tuple[int, Optional[float]]] = {}
        for name, step, _, value in points:
            held = last.get(name)
            if held is None or step >= held[0]:
                last[name] = (step, value)
        conn.executemany(sql.UPSERT_LAST_METRIC, [
            {"experiment_id": key["experiment_id"], "work_unit_id": key["work_unit_id"], "name": name,
             "step": step, "value": value}
            for name, (step, value) in last.items()
        ])
    return True
