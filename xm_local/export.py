"""``xmanager export``: an experiment's units (or its metrics) as a file, or on stdout.

Formats: ``csv``, ``parquet``, ``pickle`` (the DataFrame of ``to_dataframe()``, or of ``metrics()``
with ``--metrics``), ``json`` (one object per unit, see :func:`unit_object`; with ``--metrics`` one
object per point) and ``tensorboard`` (a folder of event files, one run folder per unit, its scalars
by step; needs ``tensorboardX``). Files are written whole under a temporary name and then renamed, so
a full disk leaves no half file; ``-o -`` writes to stdout (binary formats too).
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Optional

from xmanager.xm_local.cli_errors import UsageError
from xmanager.xm_local.store.rows import UnitRow, rows_of

if TYPE_CHECKING:
    from xmanager.xm_local.experiment import LocalExperiment

FORMATS = ("csv", "parquet", "pickle", "json", "tensorboard")
_EXTENSIONS = {"csv": "csv", "parquet": "parquet", "pickle": "pkl", "json": "json"}
_BINARY = ("parquet", "pickle")
STDOUT = "-"
#: The keys of a unit's object in a JSON export, in order (``metrics``: each metric's last value by step).
UNIT_KEYS = (
    "experiment_id", "work_unit_id", "status", "message", "exit_code", "host", "created_at", "started_at",
    "ended_at", "args", "results", "metrics", "pset",
)
_PSET_KEYS = ("pset_id", "pset_hash", "run_id", "run_seq", "pset_seq", "calc_dir")


def export(experiment: LocalExperiment, fmt: str, output: Optional[str], *, metrics: bool = False) -> str:
    """Writes the export and returns the line to tell the user (for stderr when the export went to stdout)."""
    if fmt not in FORMATS:
        raise UsageError(f"export: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "tensorboard":
        return _tensorboard(experiment, output or f"experiment_{experiment.experiment_id}_tensorboard")
    suffix = "_metrics" if metrics else ""
    output = output or f"experiment_{experiment.experiment_id}{suffix}.{_EXTENSIONS[fmt]}"
    if output != STDOUT:
        _check_file(output)
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise UsageError("parquet export needs pyarrow: pip install 'xmanager-launcher[parquet]'")
    what = "points" if metrics else "rows"
    if fmt == "json":
        count = [0]

        def write_json(stream: IO[bytes]) -> None:
            objects = _point_objects(experiment) if metrics else unit_objects(experiment)
            count[0] = _write_array(stream, objects)

        _write(output, write_json)
        return f"wrote {count[0]} {what} to {_named(output)}"
    frame = experiment.metrics() if metrics else experiment.to_dataframe()

    def write_frame(stream: IO[bytes]) -> None:
        if fmt == "csv":
            text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
            frame.to_csv(text, index=False)
            text.flush()
            text.detach()
        elif fmt == "parquet":
            frame.to_parquet(stream, index=False)
        else:
            frame.to_pickle(stream)

    _write(output, write_frame)
    return f"wrote {len(frame)} {what} to {_named(output)}"


def _named(output: str) -> str:
    return "stdout" if output == STDOUT else output


def _check_file(path: str) -> None:
    """A UsageError naming the problem unless a file can be written at ``path`` (checked before any work)."""
    if os.path.isdir(path):
        raise UsageError(f"export -o {path}: is a folder; name a file in it")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"export -o {path}: {folder} is a file, not a folder")
    if not os.path.isdir(folder):
        raise UsageError(f"export -o {path}: folder {folder} does not exist")


def _write(output: str, write: Callable[[IO[bytes]], None]) -> None:
    """``write`` into ``output`` whole (a temporary file renamed into place), or into stdout's bytes."""
    if output == STDOUT:  # Whole, then copied: writers that seek (parquet) cannot seek a pipe.
        buffer = io.BytesIO()
        write(buffer)
        sys.stdout.flush()
        sys.stdout.buffer.write(buffer.getbuffer())
        sys.stdout.buffer.flush()
        return
    partial = f"{output}.partial-{os.getpid()}"  # Written whole, then renamed: a full disk leaves no half file.
    try:
        with open(partial, "wb") as stream:
            write(stream)
        os.replace(partial, output)
    except BaseException as error:
        if os.path.exists(partial):
            os.unlink(partial)
        if isinstance(error, OSError):  # A full disk, a read-only folder: named by the file asked for.
            raise UsageError(f"export -o {output}: cannot write: {error.strerror or error}") from error
        raise


# ---- json ----------------------------------------------------------------------------------------
def unit_objects(experiment: LocalExperiment) -> Iterator[dict[str, Any]]:
    """Each unit as its JSON export object, in id order (read from the store block by block)."""
    store = experiment._store
    experiment._collect_metrics()
    last: dict[int, dict[str, Any]] = {}
    columns = store.last_metrics(experiment.experiment_id)
    for unit_id, name, value in sorted(zip(columns["work_unit_id"], columns["name"], columns["value"])):
        last.setdefault(unit_id, {})[name] = value
    for chunk in store.unit_chunks(experiment.experiment_id):
        for row in rows_of(UnitRow, chunk):
            yield unit_object(row, last.get(row.work_unit_id, {}))


def unit_object(row: UnitRow, metrics: dict[str, Any]) -> dict[str, Any]:
    """A unit in a JSON export: the keys of :data:`UNIT_KEYS` in that order. Times are seconds since the epoch
    (null until known); ``args`` and ``results`` as stored; ``metrics`` each metric's last value by step;
    ``pset`` the sweep's book-keeping fields, or null for a unit that is not a pset of a sweep."""
    pset = None if row.pset_hash is None else {key: getattr(row, key) for key in _PSET_KEYS}
    values = {
        "experiment_id": row.experiment_id, "work_unit_id": row.work_unit_id, "status": row.status,
        "message": row.message, "exit_code": row.exit_code, "host": row.host, "created_at": row.created_at,
        "started_at": row.started_at, "ended_at": row.ended_at, "args": row.args, "results": row.results or {},
        "metrics": metrics, "pset": pset,
    }
    return {key: values[key] for key in UNIT_KEYS}


def _point_objects(experiment: LocalExperiment) -> Iterator[dict[str, Any]]:
    frame = experiment.metrics()
    for unit, step, at, name, value in zip(frame["work_unit_id"].tolist(), frame["step"].tolist(),
                                           frame["time"].tolist(), frame["name"].tolist(), frame["value"].tolist()):
        yield {"work_unit_id": unit, "step": step, "time": at, "name": name, "value": value}


def _write_array(stream: IO[bytes], objects: Iterator[dict[str, Any]]) -> int:
    """A JSON array, one object a line; NaN and infinities (which JSON lacks) become null."""
    count = 0
    stream.write(b"[")
    for item in objects:
        stream.write((",\n" if count else "\n").encode())
        try:
            text = json.dumps(item, allow_nan=False, default=str)
        except ValueError:
            text = json.dumps(_finite(item), allow_nan=False, default=str)
        stream.write(text.encode())
        count += 1
    stream.write(b"\n]\n" if count else b"]\n")
    return count


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


# ---- tensorboard ---------------------------------------------------------------------------------
def _tensorboard(experiment: LocalExperiment, folder: str) -> str:
    """One run folder per unit (``work_unit_<id>``) under ``folder``, each metric a scalar by step."""
    if folder == STDOUT:
        raise UsageError("export --format tensorboard writes a folder of event files: name it with -o DIR")
    if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise UsageError(f"export -o {folder}: already exists and is not an empty folder; name a new folder")
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(parent):
        raise UsageError(f"export -o {folder}: folder {parent} does not exist")
    try:
        from tensorboardX import SummaryWriter  # type: ignore[import-untyped]
    except ImportError:
        raise UsageError("tensorboard export needs tensorboardX: pip install 'xmanager-launcher[tensorboard]'") from None
    frame = experiment.metrics()
    partial = f"{os.path.abspath(folder)}.partial-{os.getpid()}"
    units = 0
    try:
        os.makedirs(partial)
        for unit_id, points in frame.groupby("work_unit_id", sort=True):
            units += 1
            writer = SummaryWriter(logdir=os.path.join(partial, f"work_unit_{unit_id}"))
            try:
                for step, at, name, value in zip(points["step"].tolist(), points["time"].tolist(),
                                                 points["name"].tolist(), points["value"].tolist()):
                    writer.add_scalar(name, value, global_step=step, walltime=at)
            finally:
                writer.close()
        if os.path.isdir(folder):
            os.rmdir(folder)  # Empty (checked above).
        os.replace(partial, folder)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError):
            raise UsageError(f"export -o {folder}: cannot write: {error.strerror or error}") from error
        raise
    return f"wrote {len(frame)} points of {units} work units to {folder}"
