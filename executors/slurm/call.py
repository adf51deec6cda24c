"""Runs a pickled Python callable in its job folder on a compute node.

``python -m xmanager.executors.slurm.call WORK_DIR`` reads ``call.json`` in the folder
(the pickled function's path and the keyword args), calls the function, and writes its
returned dict (merged over what it reported with ``xm.report``) to ``results.json``.
An exception is printed to stderr and gives exit status 1, as a failed binary would.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from xmanager.executors.function_call import call as _call


def main(work_dir: str) -> int:
    with open(os.path.join(work_dir, "call.json")) as handle:
        call = json.load(handle)
    with open(call["function"], "rb") as handle:
        function = handle.read()
    kwargs = call["kwargs"]
    results = os.environ.get("XM_RESULTS_PATH") or os.path.join(work_dir, "results.json")
    try:
        _, text = _call({"function": function, "kwargs": kwargs, "results_path": results})
    except Exception:  # noqa: BLE001 - the job's failure goes to its stderr.
        traceback.print_exc()
        return 1
    with open(results, "w") as handle:
        handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
