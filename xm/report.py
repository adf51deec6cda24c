"""Reporting results from inside a job.

The executor gives every job a results file through the ``XM_RESULTS_PATH``
environment variable; :func:`report` merges values into it as JSON. The control plane
reads it when the job ends, the same way for every executor.
"""

from __future__ import annotations

import json
import os
from typing import Any

RESULTS_ENV = "XM_RESULTS_PATH"


def results_path() -> str | None:
    """The file this job's results go to, or None outside a launched job."""
    return os.environ.get(RESULTS_ENV)


def report(**values: Any) -> dict[str, Any]:
    """Records result values for the current job; later calls update earlier keys.

    Raises ``TypeError`` naming the offending key when a value is not JSON-serialisable,
    and ``RuntimeError`` outside a job launched by xmanager.
    """
    path = results_path()
    if path is None:
        raise RuntimeError(f"xm.report() called outside a launched job: ${RESULTS_ENV} is not set")
    for key, value in values.items():
        try:
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError) as error:
            raise TypeError(f"result {key!r} is not JSON-serialisable: {error}") from None
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
