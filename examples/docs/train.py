#!/usr/bin/env python3
"""The stand-in training job of the docs' examples (docs/sweeps.md, docs/slurm.md, the container pages).

Takes any ``--name=value`` flags (``--lr``, ``--seed``, ``--batch_size``, ...), "trains", and writes its
result as JSON to ``$XM_RESULTS_PATH``, which is what ``xm.report`` does; it imports nothing but the
standard library, so it also runs inside a plain Python container image (``python -m train``).
"""

import json
import math
import os
import sys

flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--") and "=" in arg)
lr = float(flags.get("lr", flags.get("learning_rate", 0.01)))
batch_size = int(flags.get("batch_size", 64))
loss = abs(math.log10(lr) + 2) + 64 / batch_size + int(flags.get("seed", 0)) * 1e-3
print(f"flags {flags}: loss={loss:.4f}")
if "XM_RESULTS_PATH" in os.environ:
    with open(os.environ["XM_RESULTS_PATH"], "w", encoding="utf-8") as results:
        json.dump({"loss": round(loss, 4)}, results)
