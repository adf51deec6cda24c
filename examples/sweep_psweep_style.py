"""A psweep-style study: a function per pset, a database of psets and results.

Run it twice: the second run finds every pset done (``skip_dups=True``) and adds none.
Kill it half-way (Ctrl-C or ``kill -9``) and run it again: completed psets are kept.
The study is also an experiment: ``xmanager list --tag sweep``.
"""

import math
import time

from xmanager.xm_local import sweep as ps


def func(pset):
    time.sleep(0.01)  # Stands in for real work.
    return {"value_": math.sin(pset["a"]) * pset["b"]}


if __name__ == "__main__":
    params = ps.pgrid(ps.plist("a", ps.intspace(0, 20, 11)), ps.plist("b", [1.0, 2.0]))
    df = ps.run(func, params, skip_dups=True, on_error="record")
    ps.df_print(df, cols=["a", "b", "value_", "_run_seq"])
