"""``xmanager cancel`` from a second process, on the local executor: everything stops, nothing starts.

One experiment of 12 units with ``max_parallel=4``: shell-script units that ignore SIGTERM, units
whose child calls ``os.setsid()`` (leaving the job's process group) and sleeps, plain sleepers and
Python callables. Once four run, ``xmanager cancel ID`` runs in another process. Then no process of
the test is left (the SIGTERM-ignoring ones are killed after the grace period), no unit started
after the cancel (each appends to a ledger when it starts), every row is cancelled, and the
launcher exits promptly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from marked_processes import marked
from xmanager import xm_local
from xmanager.executors.local import processes

TIMEOUT_S = 60

IGNORES_TERM = """#!/bin/sh
# {marker}
trap '' TERM
echo "ignores-term $XM_WORK_UNIT_ID" >> "$XM_TEST_LEDGER"
sleep 60
"""

SETSID_CHILD = """#!/bin/sh
# {marker}
echo "setsid $XM_WORK_UNIT_ID" >> "$XM_TEST_LEDGER"
{python} -c 'import os, time; os.setsid(); time.sleep(60)' {marker} &
sleep 60
"""

SLEEPER = """#!/bin/sh
# {marker}
echo "sleeper $XM_WORK_UNIT_ID" >> "$XM_TEST_LEDGER"
sleep 60
"""

SCRIPT = """
import os
import time

from xmanager import xm, xm_local


def sleepy(i):
    with open(os.environ["XM_TEST_LEDGER"], "a") as ledger:
        ledger.write(f"callable {{os.environ['XM_WORK_UNIT_ID']}}\\n")
    time.sleep(60)


def main(argv):
    with xm_local.create_experiment("cancel", max_parallel=4) as experiment:
        print("XID", experiment.experiment_id, flush=True)
        [ignores, setsid, sleeper, function] = experiment.package([
            xm.binary(xm_local.Local.Spec(), {ignores!r}),
            xm.binary(xm_local.Local.Spec(), {setsid!r}),
            xm.binary(xm_local.Local.Spec(), {sleeper!r}),
            xm.python_callable(xm_local.Local.Spec(), sleepy),
        ])
        local = xm_local.Local(experimental_stream_output=False)
        for i in range(3):
            for executable in (ignores, setsid, sleeper, function):
                experiment.add(xm.Job(executable, local, args={{"i": i}}))
"""


def _ledger(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_cancel_from_a_second_process_stops_everything_and_starts_nothing(tmp_path: Path, figures) -> None:
    marker = f"xmcanceltest{os.getpid()}"
    scripts = {}
    for name, body in (("ignores", IGNORES_TERM), ("setsid", SETSID_CHILD), ("sleeper", SLEEPER)):
        path = tmp_path / f"{name}-{marker}.sh"
        path.write_text(body.format(marker=marker, python=sys.executable))
        path.chmod(0o755)
        scripts[name] = str(path)
    script = tmp_path / "launch.py"
    script.write_text(SCRIPT.format(**scripts))
    ledger = tmp_path / "ledger.txt"
    env = {**os.environ, "XM_TEST_LEDGER": str(ledger), "XM_TEST_MARKER": marker}
    xmanager = str(Path(sys.executable).with_name("xmanager"))

    launcher = subprocess.Popen([xmanager, "launch", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, text=True)
    try:
        line = launcher.stdout.readline()
        assert line.startswith("XID "), line + launcher.stderr.read()
        experiment_id = int(line.split()[1])
        deadline = time.monotonic() + TIMEOUT_S
        while len(_ledger(ledger)) < 4 or len(marked(marker)) < 6:  # 4 units and the setsid child run.
            assert time.monotonic() < deadline, _ledger(ledger)
            time.sleep(0.05)
        started_before = _ledger(ledger)
        cancel = subprocess.run([xmanager, "cancel", str(experiment_id)], env=env, capture_output=True, text=True,
                                timeout=TIMEOUT_S)
        assert cancel.returncode == 0, cancel.stderr
        _, stderr = launcher.communicate(timeout=TIMEOUT_S)
    finally:
        launcher.kill()
        launcher.wait(timeout=TIMEOUT_S)
    assert launcher.returncode == 0, stderr[-3000:]

    left = marked(marker)
    deadline = time.monotonic() + processes.GRACE_S + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = marked(marker)
    started_after = _ledger(ledger)[len(started_before):]
    statuses = {unit.work_unit_id: unit.get_status().status.value
                for unit in xm_local.get_experiment(experiment_id).work_units.values()}
    not_cancelled = [unit_id for unit_id, status in statuses.items() if status != "cancelled"]
    figures.add("cancel from a second process, local (queued, running, ignoring SIGTERM, setsid children)",
                tried=len(statuses), lost=len(left) + len(started_after) + len(not_cancelled))
    assert sorted(line.split()[0] for line in started_before) == ["callable", "ignores-term", "setsid", "sleeper"]
    assert (left, started_after, not_cancelled) == ([], [], [])
    assert len(statuses) == 12
