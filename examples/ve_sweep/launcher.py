"""A parameter sweep of a C kernel on the VectorEngine executor, outputs read from the dataframe.

    xmanager launch examples/ve_sweep/launcher.py              # host backend (gcc), no VE needed
    xmanager launch examples/ve_sweep/launcher.py -- --backend=veo --node=0   # on a Vector Engine
    python examples/ve_sweep/launcher.py

The kernel (``logistic.c``) iterates the logistic map for each growth rate ``r`` and writes
the last values of the orbit into an ``out`` buffer; its return value counts the distinct
values (the period). Each unit's buffer and return value land in the store, so the period
doubling shows up in ``to_dataframe()``.
"""

import numpy as np
from absl import app, flags
from xmanager import xm, xm_local

BACKEND = flags.DEFINE_enum("backend", "host", ["host", "veo", "auto"], "where the kernel runs")
NODE = flags.DEFINE_integer("node", 0, "VE node")
KEEP = 8


def main(argv):
    del argv
    spec = xm_local.VectorEngine.Spec(backend=BACKEND.value)
    with xm_local.create_experiment("logistic map on VE", tags=["example", "vector_engine"]) as experiment:
        [kernel] = experiment.package([
            xm.ve_kernel(
                spec, "logistic",
                args=("tail: double *", "keep: int", "steps: int", "r: double", "x0: double"),
                sources={"logistic": "logistic.c"},  # Relative to this script.
                host_flags="-O2 -fPIC -Wno-unknown-pragmas", libs=("-lm",),
            )
        ])
        executor = xm_local.VectorEngine(backend=BACKEND.value, node=NODE.value, contexts=2, timeout=30)
        tail = xm.VeBuffer(np.zeros(KEEP), intent="out")
        job = xm.Job(kernel, executor, args={"tail": tail, "keep": KEEP, "x0": 0.5})
        # Scalars come from the sweep; the out buffer and the defaults from the job.
        experiment.add_sweep(job, xm.pgrid(xm.plist("r", [2.8, 3.2, 3.5, 3.56, 3.9]), xm.plist("steps", [2000])))
        experiment.add_sweep(job, [{"r": 3.2, "steps": 2000, "x0": x0} for x0 in (0.1, 0.7)])
    frame = experiment.to_dataframe().sort_values("_work_unit_id")
    frame["period"] = frame["return"]
    # An out buffer is in unit.results["tail"]; the dataframe names it result_tail, as "tail" is also an arg.
    frame["last"] = [round(values[-1], 6) for values in frame["result_tail"]]
    print(frame[["r", "x0", "period", "last", "_status"]].to_string(index=False))
    print(f"\nexperiment {experiment.experiment_id}: xmanager show {experiment.experiment_id}")


if __name__ == "__main__":
    app.run(main)
