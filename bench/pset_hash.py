"""Pset hashing: hashing N psets {"a": int, "b": int, "c": float, "d": str}, ours vs psweep 0.16.0.

    python bench/pset_hash.py [--n 100000] [--peer-python PATH]

Pset i is ``{"a": i, "b": i % 97, "c": i * 0.25, "d": f"s{i % 13}"}``, built outside
the timing. Timed, in a warm process (each side first hashes 1,000 psets, untimed):

* ours ``[pset_hash(p) for p in psets]`` (``xmanager.xm.psets.pset_hash``, what
  ``ps.pset_hash`` is) and ``pset_hashes(psets)`` (the batch path run() uses);
* psweep ``[ps.pset_hash(p) for p in psets]`` (joblib's hash), in its own process
  under the peer interpreter (``--peer-python`` or ``bench/.peer-venv``, see ``_peer.py``).

Best of 3 for N <= 10,000, of 2 above. The two hashes differ by design (ours is a
documented canonical SHA-1, psweep's a joblib pickle hash); checked outside the timing:
each side gives N distinct 40-hex-digit hashes, and ours agree between the two paths.
"""

from __future__ import annotations

import argparse
import gc
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any, Optional

from _common import scratch_dir, table
from _peer import MARKER, find_psweep, ratio, run_script, verdict, write_script

TARGET_RATIO = 5.0
WARMUP_N = 1000

PEER_SCRIPT = textwrap.dedent(
    f'''\
    """psweep: ps.pset_hash over N psets, timed in a warm process."""
    import gc
    import json
    import sys
    import time

    import psweep as ps


    def make(n):
        return [{{"a": i, "b": i % 97, "c": i * 0.25, "d": f"s{{i % 13}}"}} for i in range(n)]


    def main():
        config = json.loads(sys.argv[1])
        n = config["n"]
        [ps.pset_hash(p) for p in make({WARMUP_N})]
        psets = make(n)
        times = []
        for _ in range(config["repeat"]):
            gc.collect()
            start = time.perf_counter()
            hashes = [ps.pset_hash(p) for p in psets]
            times.append(time.perf_counter() - start)
        if len(set(hashes)) != n or any(len(h) != 40 for h in hashes):
            raise SystemExit(f"psweep: expected {{n}} distinct 40-digit hashes, got {{len(set(hashes))}}")
        print("{MARKER}" + json.dumps(times), flush=True)


    if __name__ == "__main__":
        main()
    '''
)


def make(n: int) -> list[dict[str, Any]]:
    return [{"a": i, "b": i % 97, "c": i * 0.25, "d": f"s{i % 13}"} for i in range(n)]


def timed(function: Callable[[], list[str]], repeat: int) -> tuple[list[float], list[str]]:
    times, value = [], []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return times, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="psets to hash (default 100000)")
    parser.add_argument("--peer-python", metavar="PATH",
                        help="interpreter with psweep installed (default: bench/.peer-venv, created if missing)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    n = max(1, options.n)
    repeat = 3 if n <= 10_000 else 2

    from xmanager.xm.psets import pset_hash, pset_hashes

    with scratch_dir("xm-bench-pset-hash-", options.keep) as work:
        [pset_hash(p) for p in make(WARMUP_N)]  # Warm-up (untimed).
        pset_hashes(make(WARMUP_N))
        psets = make(n)
        single_times, single = timed(lambda: [pset_hash(p) for p in psets], repeat)
        batch_times, batch = timed(lambda: pset_hashes(psets), repeat)
        if single != batch or len(set(single)) != n or any(len(h) != 40 for h in single):
            raise SystemExit(f"ours: pset_hash and pset_hashes disagree or are not {n} distinct 40-digit hashes "
                             f"({len(set(single))} distinct, {sum(a != b for a, b in zip(single, batch))} differ)")

        peer_python, peer_note = find_psweep(options.peer_python)
        peer: Optional[float] = None
        peer_times: list[float] = []
        if peer_python is not None:
            script = write_script(work, "peer_pset_hash.py", PEER_SCRIPT)
            result, error = run_script(peer_python, script, {"n": n, "repeat": repeat}, work)
            if result is None:
                peer_python, peer_note = None, f"peer run failed: {error}"
            else:
                peer_times = result
                peer = min(peer_times)

        print(f"pset hashing: {n:,} psets {{'a': int, 'b': int, 'c': float, 'd': str}}, best of {repeat}, "
              f"warm process ({WARMUP_N:,} psets hashed first, untimed)")
        print(f"python {sys.version.split()[0]} at {sys.executable}")
        print("peer: " + (peer_note if peer_python is not None else f"unavailable ({peer_note})"))
        print()
        rows = []
        for label, times in (("ours pset_hash() per pset", single_times), ("ours pset_hashes(list)", batch_times)):
            mine = min(times)
            value = peer / mine if peer is not None else None
            rows.append([label, f"{mine:.3f}", f"{mine / n * 1e6:.2f}", "n/a" if peer is None else f"{peer:.3f}",
                         ratio(peer, mine), f">= {TARGET_RATIO:g}x {verdict(value, TARGET_RATIO)}"])
        print(table(["case", "ours (s)", "ours per pset (us)", "psweep pset_hash() (s)", "ratio psweep/ours",
                     "target"], rows))
        print()
        print(f"targets: hashing >= {TARGET_RATIO:g}x faster than psweep's pset_hash"
              + ("" if peer is None else f"; psweep per pset: {peer / n * 1e6:.2f} us"))
        print("all runs (s): ours pset_hash " + ", ".join(f"{t:.3f}" for t in single_times)
              + " | ours pset_hashes " + ", ".join(f"{t:.3f}" for t in batch_times)
              + ("" if not peer_times else " | psweep " + ", ".join(f"{t:.3f}" for t in peer_times)))
        return 0


if __name__ == "__main__":
    sys.exit(main())
