#!/usr/bin/env python3
"""Pset $_pset_id (run_seq=$_run_seq, pset_seq=$_pset_seq): a=$a b=$b.

Rendered from templates/calc/run.py by prep_batch(template_mode="dollar"): every
dollar-name is replaced by the pset's value, so a literal dollar sign is written twice.
"""

import json
import os
import pickle

if os.path.exists("pset.pk"):  # written by prep_batch(write_pset=True), needs pandas to load
    with open("pset.pk", "rb") as fd:
        pset = pickle.load(fd)
    a, b = pset["a"], pset["b"]
else:  # the values rendered into this file
    a, b = int("$a"), "$b"
print(f"a={a} b={b}")
with open("out.json", "w") as fd:
    json.dump({"result_": a * 10, "b": b}, fd)
