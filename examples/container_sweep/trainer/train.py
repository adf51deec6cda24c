"""A stand-in training job that runs inside the container: reads flags, 'trains', reports a result.

The image holds only Python and this folder, not xmanager, so the result is written as JSON
to the file named by $XM_RESULTS_PATH (what ``xm.report`` does when xmanager is installed).
"""

import argparse
import json
import math
import os
import platform

parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float, required=True)
parser.add_argument("--batch_size", type=int, required=True)
flags = parser.parse_args()

loss = abs(math.log10(flags.learning_rate) + 2) + 64 / flags.batch_size
print(f"python {platform.python_version()} in {os.getcwd()}: lr={flags.learning_rate} batch={flags.batch_size}")
with open(os.environ["XM_RESULTS_PATH"], "w", encoding="utf-8") as results:
    json.dump({"loss": round(loss, 4)}, results)
