"""Sweep import: fresh-interpreter wall time of importing the sweep API, ours vs psweep 0.16.0.

    python bench/sweep_import.py [--runs 7] [--peer-python PATH]

Commands (each a new interpreter; best of --runs after one untimed warm-up run):

* ``python -c pass`` (the bare interpreter, for reference, under each interpreter);
* ours ``python -c "from xmanager.xm_local import sweep as ps"`` vs ``python -c "import psweep as ps"``;
* the same plus a first call ``ps.pgrid([ps.plist("a", [1, 2]), ps.plist("b", [3])])``.

The children get PYTHONPYCACHEPREFIX=<temporary folder> and no PYTHONDONTWRITEBYTECODE, so
the warm-up fills a throwaway bytecode cache (the usual state of installed packages)
without writing into the repository or site-packages. The peer interpreter is
``--peer-python`` or ``bench/.peer-venv`` (see ``_peer.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from _common import scratch_dir, table, time_command
from _peer import find_psweep, peer_env, ratio, verdict

TARGET_S = 0.5
FIRST_CALL = 'ps.pgrid([ps.plist("a", [1, 2]), ps.plist("b", [3])])'
CASES = [
    ("python -c pass", "pass", "pass"),
    ("import", "from xmanager.xm_local import sweep as ps", "import psweep as ps"),
    ("import + first pgrid()", f"from xmanager.xm_local import sweep as ps; {FIRST_CALL}",
     f"import psweep as ps; {FIRST_CALL}"),
]




def bytecode_env(work: str, base: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command; the best is reported (default 7)")
    parser.add_argument("--peer-python", metavar="PATH",
                        help="interpreter with psweep installed (default: bench/.peer-venv, created if missing)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    runs = max(1, options.runs)

    with scratch_dir("xm-bench-sweep-import-", options.keep) as work:
        env = bytecode_env(work, {**os.environ, "XM_DATA_DIR": os.path.join(work, "data")})
        ours = {label: time_command([sys.executable, "-c", code], runs, env, work) for label, code, _ in CASES}

        peer_python, peer_note = find_psweep(options.peer_python)
        peer: dict[str, list[float]] = {}
        if peer_python is not None:
            penv = bytecode_env(work, peer_env())
            try:
                peer = {label: time_command([peer_python, "-c", code], runs, penv, work) for label, _, code in CASES}
            except RuntimeError as error:
                peer_python, peer_note = None, f"peer run failed: {error}"

        print(f"sweep import: wall time of a fresh interpreter, best of {runs} run(s) after 1 untimed warm-up each")
        print(f"python {sys.version.split()[0]} at {sys.executable}; bytecode cache in a temporary "
              "PYTHONPYCACHEPREFIX; first call = " + FIRST_CALL)
        print("ours: from xmanager.xm_local import sweep as ps | psweep: import psweep as ps")
        print("peer: " + (peer_note if peer_python is not None else f"unavailable ({peer_note})"))
        print()
        rows = []
        for label, _, _ in CASES:
            mine = min(ours[label])
            theirs: Optional[float] = min(peer[label]) if label in peer else None
            target = f"<= {TARGET_S} s {verdict(mine, TARGET_S, at_least=False)}" if label == "import" else ""
            rows.append([label, f"{mine:.3f}", "n/a" if theirs is None else f"{theirs:.3f}", ratio(theirs, mine),
                         target])
        print(table(["case", "ours (s)", "psweep (s)", "ratio psweep/ours", "target (ours)"], rows))
        base = min(ours["python -c pass"])
        print()
        print(f"targets: ours import <= {TARGET_S} s; ours import over the bare interpreter: "
              f"{min(ours['import']) - base:.3f} s" + (
                  "" if not peer else
                  f"; psweep import over the bare interpreter: {min(peer['import']) - min(peer['python -c pass']):.3f} s"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
