"""Calling a pickled Python function as a job: its kwargs in, its results dict out.

Shared by the local executor's worker pool and the Slurm task runner; stdlib and
cloudpickle only, so a process on a compute node starts fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def read_reported(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def call(task: Mapping[str, Any]) -> tuple[str, str]:
    import cloudpickle

    function = cloudpickle.loads(task["function"])
    positional = [key for key in task["kwargs"] if key.isdigit()]
    if positional:
        raise TypeError("a PythonCallable takes keyword args only; the job has positional args")
    value = function(**task["kwargs"])
    reported = read_reported(task["results_path"])
    if value is None:
        result = reported
    elif isinstance(value, Mapping):
        result = {**reported, **value}
    else:
        raise TypeError(
            f"the function returned {type(value).__name__}; return a dict of results or None"
        )
    try:
        return "ok", json.dumps(result)
    except (TypeError, ValueError) as error:
        raise TypeError(f"the function's results are not JSON-serialisable: {error}") from None
