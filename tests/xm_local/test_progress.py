"""Live feedback of launches: the counting observer, and real launches on a pseudo-terminal and on pipes."""

import os
import re
import subprocess
import sys

import pytest
from pty_run import run_on_pty
from xmanager.xm.status import Status
from xmanager.xm_local import progress

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: Three units of /bin/sleep, one at a time (so some are queued while one runs), and a job that prints.
LAUNCHER = """
from xmanager import xm, xm_local

def main(argv):
    with xm_local.create_experiment('progress-test', max_parallel=1) as experiment:
        [sleep, echo] = experiment.package([xm.binary(xm_local.Local.Spec(), '/bin/sleep'),
                                            xm.binary(xm_local.Local.Spec(), '/bin/echo')])
        experiment.add(xm.Job(echo, xm_local.Local(), args=['hello', 'from', 'the', 'job']))
        for seconds in (0.6, 0.6, 0.6):
            experiment.add(xm.Job(sleep, xm_local.Local(), args=[str(seconds)]))
    print('EXPERIMENT', experiment.experiment_id)

if __name__ == '__main__':
    main([])
"""

LINE = re.compile(r"experiment (\d+) 'progress-test': (\d+) queued, (\d+) running, (\d+) completed, (\d+) failed, "
                  r"(\d+) cancelled \| \d+s(, ETA (\d+s|\?))?")
SUMMARY = re.compile(r"xmanager: experiment (\d+) 'progress-test' ended after \d+s: 4 completed")
START = re.compile(r"xmanager: experiment (\d+) 'progress-test': follow it with `xmanager show (\d+)`")


@pytest.fixture
def launcher(tmp_path):
    path = tmp_path / "launcher.py"
    path.write_text(LAUNCHER)
    return path




def _on_pty(argv, env, timeout=120.0):
    return run_on_pty(argv, env, timeout)

def test_terminal_shows_a_live_line_that_ends_as_a_summary(launcher):
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "200"}
    env.pop("XM_PROGRESS", None)
    code, output = _on_pty([XMANAGER, "launch", str(launcher)], env)
    assert code == 0, output
    plain = ANSI.sub("", output).replace("\r", "\n")
    [start] = START.findall(plain)
    assert start[0] == start[1]
    lines = [match.groups() for match in LINE.finditer(plain)]
    assert lines, output
    assert all(sum(map(int, groups[1:6])) == 4 for groups in lines)  # Every unit counted once, whatever its status.
    assert any(int(groups[1]) > 0 for groups in lines)  # Units waited in the queue (max_parallel=1) ...
    assert any(int(groups[2]) == 1 for groups in lines)  # ... while one ran.
    assert "\x1b[2K" in output  # The line is redrawn in place, not printed again and again.
    summary = SUMMARY.search(plain)
    assert summary and summary.group(1) == start[0]
    assert plain.rindex("completed") < summary.end()  # No live line after the summary.
    assert "[1/" in plain and "hello from the job" in plain  # The job's output is still shown.


def test_pipe_gets_plain_lines_and_the_summary(launcher):
    env = {key: value for key, value in os.environ.items() if key != "XM_PROGRESS"}
    result = subprocess.run([XMANAGER, "launch", str(launcher)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr
    assert result.stderr == ""  # Information goes to stdout; stderr is for warnings and errors.
    lines = result.stdout.splitlines()
    starts = [index for index, line in enumerate(lines) if START.fullmatch(line)]
    summaries = [index for index, line in enumerate(lines) if SUMMARY.fullmatch(line)]
    assert len(starts) == 1 and len(summaries) == 1 and starts[0] < summaries[0], result.stdout
    for line in lines[starts[0] + 1:summaries[0]]:  # Periodic lines (if the launch took long enough) are whole.
        assert line.startswith("[") or LINE.fullmatch(line.removeprefix("xmanager: ")), line
    assert any(line.startswith("[1/") and "hello from the job" in line for line in lines)


def test_quiet_shows_neither_progress_nor_job_output(launcher):
    result = subprocess.run([XMANAGER, "-q", "launch", str(launcher)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["EXPERIMENT"]
    assert result.stderr == ""


def test_xm_progress_0_hides_it_under_xmanager_launch(launcher):
    env = {**os.environ, "XM_PROGRESS": "0"}
    result = subprocess.run([XMANAGER, "launch", str(launcher)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not START.search(result.stdout) and not SUMMARY.search(result.stdout)
    assert "hello from the job" in result.stdout  # Job output is not progress.


def test_plain_python_script_shows_progress_only_when_asked(launcher):
    env = {key: value for key, value in os.environ.items() if key != "XM_PROGRESS"}
    quiet = subprocess.run([sys.executable, str(launcher)], capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert "xmanager:" not in quiet.stdout + quiet.stderr

    env["XM_PROGRESS"] = "1"
    shown = subprocess.run([sys.executable, str(launcher)], capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert START.search(shown.stdout) and SUMMARY.search(shown.stdout), shown.stdout


def test_plain_python_script_on_a_terminal_with_xm_progress(launcher):
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "200", "XM_PROGRESS": "1"}
    code, output = _on_pty([sys.executable, str(launcher)], env)
    assert code == 0, output
    plain = ANSI.sub("", output).replace("\r", "\n")
    assert LINE.search(plain) and SUMMARY.search(plain), output


# ---- the observer alone ---------------------------------------------------------------------------------
def test_counts_follow_each_unit_s_transitions():
    observed = progress.ExperimentProgress(7, "t")
    for unit in (1, 2, 3):
        observed.unit_status(unit, Status.PENDING)
    observed.unit_status(1, Status.RUNNING)
    observed.unit_status(1, Status.RUNNING)  # A repeat changes nothing.
    observed.unit_status(2, Status.RUNNING)
    observed.unit_status(2, Status.FAILED)
    assert {status: count for status, count in observed.counts.items() if count} == {
        Status.PENDING: 1, Status.RUNNING: 1, Status.FAILED: 1}
    assert observed.line().startswith("experiment 7 't': 1 queued, 1 running, 0 completed, 1 failed, 0 cancelled | ")
    assert ", ETA " in observed.line()
    observed.unit_status(1, Status.COMPLETED)
    observed.unit_status(3, Status.CANCELLED)
    assert observed.summary().startswith("experiment 7 't' ended after ")
    assert observed.summary().endswith(": 1 completed, 1 failed, 1 cancelled")


def test_units_left_running_are_named_in_the_summary():
    observed = progress.ExperimentProgress(8, "")
    observed.unit_status(1, Status.RUNNING)
    assert observed.summary().endswith("1 running (follow them with `xmanager show 8`)")
    assert "left after" in observed.summary()


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (8.4, "8s"), (125, "2m05s"), (3720, "1h02m")])
def test_durations(seconds, text):
    assert progress.duration(seconds) == text
