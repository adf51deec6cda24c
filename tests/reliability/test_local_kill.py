"""kill -9 of ``xmanager launch`` mid-sweep, on the local executor: nothing lost, nothing run twice.

Each seed launches one experiment of 200 units (100 shell-script binaries, 100 Python callables;
each appends a line to a ledger and reports a result), kills the launcher at a random point, opens
the experiment from another process (which settles the units of the dead launcher) and resumes the
sweep with ``skip_completed=True``. Afterwards every pset completed exactly once (one ledger line,
one completed row), no row is left unfinished, and no process of the test is left running.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from marked_processes import wait_none_marked
from xmanager import xm_local

N = 100  # Units of each kind.
SEEDS = range(int(os.environ.get("XM_TEST_SEEDS", "10")))
LAUNCH_TIMEOUT_S = 60
DETAILS: list[str] = []
STATS: list[str] = []

UNIT = """#!/bin/sh
# {marker}
sleep 0.003
echo "b $1" >> "$XM_TEST_LEDGER"
printf '{{"done": "%s"}}' "$1" > "$XM_RESULTS_PATH.tmp" && mv "$XM_RESULTS_PATH.tmp" "$XM_RESULTS_PATH"
"""

SCRIPT = """
import os
import time

from xmanager import xm, xm_local


def callable_unit(c):
    time.sleep(0.003)
    with open(os.environ["XM_TEST_LEDGER"], "a") as ledger:
        ledger.write(f"c --c={{c}}\\n")
    return {{"done": c}}


def main(argv):
    resume = os.environ.get("XM_TEST_RESUME")
    if resume:
        experiment = xm_local.get_experiment(int(resume))
    else:
        experiment = xm_local.create_experiment("kill-9", max_parallel=3)
    with experiment:
        print("XID", experiment.experiment_id, flush=True)
        [binary, function] = experiment.package([
            xm.binary(xm_local.Local.Spec(), {unit!r}),
            xm.python_callable(xm_local.Local.Spec(), callable_unit),
        ])
        local = xm_local.Local(experimental_stream_output=False)
        experiment.add_sweep(xm.Job(binary, local), [{{"b": i}} for i in range({n})], skip_completed=bool(resume))
        experiment.add_sweep(xm.Job(function, local), [{{"c": i}} for i in range({n})], skip_completed=bool(resume))
"""


def _xmanager() -> str:
    return str(Path(sys.executable).with_name("xmanager"))


def _one_seed(tmp_path: Path, seed: int) -> tuple[int, int]:
    """Launch, kill -9, resume; returns (psets lost or run twice, rows left unfinished + orphans)."""
    rng = random.Random(seed)
    marker = f"xmkilltest{os.getpid()}s{seed}"
    folder = tmp_path / marker
    folder.mkdir()
    unit = folder / "unit.sh"
    unit.write_text(UNIT.format(marker=marker))
    unit.chmod(0o755)
    script = folder / "launch.py"
    script.write_text(SCRIPT.format(unit=str(unit), n=N))
    ledger = folder / "ledger.txt"
    env = {**os.environ, "XM_TEST_LEDGER": str(ledger), "XM_TEST_MARKER": marker}
    env.pop("XM_TEST_RESUME", None)

    launcher = subprocess.Popen([_xmanager(), "launch", str(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        line = launcher.stdout.readline()
        assert line.startswith("XID "), line
        experiment_id = int(line.split()[1])
        time.sleep(rng.uniform(0.05, 0.8))
        launcher.send_signal(signal.SIGKILL)
    finally:
        launcher.kill()
        launcher.wait(timeout=LAUNCH_TIMEOUT_S)

    opened = xm_local.get_experiment(experiment_id)  # Settles the dead launcher's units.
    settled = Counter(unit.get_status().status.value for unit in opened.work_units.values())
    STATS.append(f"seed {seed}: after the kill {dict(settled)}")

    resume = subprocess.run([_xmanager(), "launch", str(script)], env={**env, "XM_TEST_RESUME": str(experiment_id)},
                            capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert "cluster queue" not in resume.stderr

    final = xm_local.get_experiment(experiment_id)
    units = final.work_units.values()
    unfinished = [unit.work_unit_id for unit in units if not unit.get_status().status.is_terminal]
    completed: Counter[str] = Counter()
    for unit in units:
        status = unit.get_status()
        if status.is_completed:
            key = "b" if "b" in unit.args else "c"
            completed[f"{key} --{key}={unit.args[key]}"] += 1
        elif status.is_failed:
            assert status.message, f"unit {unit.work_unit_id} failed without a reason"
    lines = Counter(ledger.read_text().splitlines()) if ledger.exists() else Counter()
    psets = [f"b --b={i}" for i in range(N)] + [f"c --c={i}" for i in range(N)]
    wrong = [pset for pset in psets if not (completed[pset] == 1 and lines[pset] == 1)]
    for pset in wrong:
        rows = [(unit.work_unit_id, unit.get_status().status.value, unit.get_status().message) for unit in units
                if f"{pset[0]} --{pset[0]}={unit.args.get(pset[0])}" == pset]
        DETAILS.append(f"seed {seed}: {pset}: {lines[pset]} ledger lines, units {rows}")
    orphans = wait_none_marked(marker)
    if unfinished or orphans:
        DETAILS.append(f"seed {seed}: unfinished units {unfinished}, orphan pids {orphans}")
    return len(wrong), len(unfinished) + len(orphans)


def test_kill_9_mid_sweep_loses_and_repeats_nothing(tmp_path: Path, figures) -> None:
    lost = bad = 0
    for seed in SEEDS:
        seed_lost, seed_bad = _one_seed(tmp_path, seed)
        lost += seed_lost
        bad += seed_bad
    print("\n".join(STATS))
    figures.add("kill -9 of `xmanager launch` mid-sweep, local (binary and callable units)",
                tried=len(SEEDS), lost=lost + bad)
    assert (lost, bad) == (0, 0), "\n".join(DETAILS)
