#!/usr/bin/env python3
"""Prepare a batch study: one folder per pset under calc/, plus calc/run_<machine>.sh.

    python3 10input.py             # renders templates/ into calc/<pset_id>/
    sh calc/run_local.sh           # runs the new psets here (or: xmanager sweep push HOST; on HOST: sh calc/run_cluster.sh)

Running it again with more values adds only the new psets (skip_dups) and comments out
the earlier runs' lines in the run scripts.
"""

from xmanager.xm_local import sweep as ps

if __name__ == "__main__":
    params = ps.pgrid([ps.plist("a", [1, 2, 3]), ps.plist("b", ["x", "y"])])
    df = ps.prep_batch(params, template_mode="dollar", write_pset=True, skip_dups=True)
    print(df[["a", "b", "_pset_id", "_run_seq", "_pset_seq"]].to_string(index=False))
