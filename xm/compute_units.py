"""Unit constants for requirements: ``JobRequirements(cpu=4 * vCPU, ram=8 * GiB)``."""

vCPU = 1.0  # noqa: N816 - XManager's spelling.

KiB = 2**10
MiB = 2**20
GiB = 2**30
TiB = 2**40
PiB = 2**50

KB = 10**3
MB = 10**6
GB = 10**9
TB = 10**12
PB = 10**15
