"""What every benchmark script shares: the table printer, a scratch data directory, command timing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Optional


def table(headers: list[str], rows: list[list[object]]) -> str:
    """Plain-text table: first column left-aligned, the rest right-aligned."""
    cells = [headers] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(value.rjust(width) if i else value.ljust(width) for i, (value, width) in enumerate(zip(row, widths)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: bool, parent: Optional[str] = None, use_as_store: bool = False) -> Iterator[str]:
    """A temporary folder, removed afterwards unless ``keep``.

    With ``use_as_store``, it also becomes this process's (and its children's) data folder
    and SQLite store, so a benchmark never touches the user's own store.
    """
    work = tempfile.mkdtemp(prefix=prefix, dir=parent)
    if use_as_store:
        os.environ["XM_DATA_DIR"] = work
        os.environ["XM_DATABASE_URL"] = f"sqlite:///{os.path.join(work, 'xmanager.sqlite3')}"
    try:
        yield work
    finally:
        if keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def time_command(command: list[str], runs: int, env: dict[str, str], cwd: str) -> list[float]:
    """Wall seconds of each of ``runs`` runs, after one untimed warm-up; raises on a failure."""
    times = []
    for index in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{tail}")
        if index:
            times.append(elapsed)
    return times


def load_note() -> str:
    """The 1/5/15-minute load averages, to judge how noisy a run was (other processes share the cores)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"
