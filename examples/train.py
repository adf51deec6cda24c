"""A stand-in training job: reads its flags, 'trains', reports a result."""

import argparse
import math

from xmanager import xm

parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float, required=True)
parser.add_argument("--batch_size", type=int, required=True)
flags = parser.parse_args()

loss = abs(math.log10(flags.learning_rate) + 2) + 64 / flags.batch_size
print(f"lr={flags.learning_rate} batch={flags.batch_size} loss={loss:.4f}")
xm.report(loss=round(loss, 4))
