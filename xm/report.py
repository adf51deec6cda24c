"""Reporting results and metrics from inside a job.

The executor gives every job a results file through the ``XM_RESULTS_PATH`` environment
variable. :func:`report` without ``step`` merges values into it as JSON; the control plane
reads it when the job ends, the same way for every executor.

``report(step=N, **metrics)`` instead appends one point per metric to the job's metrics file
(``metrics.jsonl`` next to the results file): one JSON line per call,
``{"step": N, "time": <epoch seconds>, "values": {name: number}}``, written with a single
``O_APPEND`` write and the file closed again, so a reader (the control plane, on this machine or
over a shared filesystem) sees whole lines while the job runs. It costs one small write per call.

Outside a job launched by xmanager nothing is recorded: the first call warns, later ones are silent.
"""

from __future__ import annotations

import json
import numbers
import operator
import os
import time
import warnings
from typing import Any, Optional

RESULTS_ENV = "XM_RESULTS_PATH"
#: The metrics file's name, in the folder of the results file (the job's folder): the control plane finds it there.
METRICS_FILE = "metrics.jsonl"
#: Longest metric name the store keeps.
MAX_NAME = 255

_warned = False


def results_path() -> str | None:
    """The file this job's results go to, or None outside a launched job."""
    return os.environ.get(RESULTS_ENV)


def metrics_path() -> str | None:
    """The file this job's metrics points go to, or None outside a launched job."""
    results = results_path()
    return None if results is None else os.path.join(os.path.dirname(results), METRICS_FILE)


def report(step: Optional[int] = None, **values: Any) -> dict[str, Any]:
    """Records values for the current job.

    Without ``step``: result values, merged into the job's results (later calls update earlier
    keys); returns the results so far. Raises ``TypeError`` naming the key when a value is not
    JSON-serialisable.

    With ``step`` (an integer): one time-series point per metric, ``(step, wall time, name,
    value)``, readable while the job runs (``experiment.metrics()``); returns the values recorded.
    Values are numbers (int, float, bool, NumPy scalars); anything else is a ``TypeError`` naming
    the metric.

    Outside a job launched by xmanager, it warns once and records nothing (the values are still
    checked).
    """
    if step is not None:
        return _report_points(step, values)
    for key, value in values.items():
        try:
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError) as error:
            raise TypeError(f"result {key!r} is not JSON-serialisable: {error}") from None
    path = results_path()
    if path is None:
        _warn_outside()
        return dict(values)
    current: dict[str, Any] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            current = json.load(handle)
    except FileNotFoundError:
        pass
    current.update(values)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(current, handle)
    os.replace(tmp, path)
    return current


def _report_points(step: Any, values: dict[str, Any]) -> dict[str, Any]:
    if isinstance(step, bool):
        raise TypeError("step must be an integer, got a bool")
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"step must be an integer, got {type(step).__name__}") from None
    points = {name: _number(name, value) for name, value in values.items()}
    path = metrics_path()
    if path is None:
        _warn_outside()
        return points
    if not points:
        return points
    line = json.dumps({"step": step, "time": time.time(), "values": points}, allow_nan=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = line.encode()
        while data:  # One write for any line of sane size; a reader takes whole lines only.
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)  # Closing publishes the line to readers over NFS (close-to-open consistency).
    return points


def _number(name: str, value: Any) -> float:
    """The metric's value as a float; TypeError naming the metric when it is not a real number."""
    if len(name) > MAX_NAME:
        raise ValueError(f"metric name {name[:40]!r}... is longer than {MAX_NAME} characters")
    if isinstance(value, numbers.Real):  # int, float, bool, Fraction, NumPy's ints and floats.
        return float(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy.bool_, 0-d arrays and tensors.
        item = value.item()
        if isinstance(item, numbers.Real):
            return float(item)
    raise TypeError(f"metric {name!r} must be a number (int, float, bool), got {type(value).__name__}")


def _warn_outside() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"xm.report() called outside a job launched by xmanager (${RESULTS_ENV} is not set): nothing is recorded",
            RuntimeWarning, stacklevel=3,
        )
