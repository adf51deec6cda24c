"""The xmanager command, run as a real process."""

import os
import subprocess
import sys

import pytest

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

LAUNCHER = """
from absl import flags
from xmanager import xm, xm_local

_N = flags.DEFINE_integer('n', 2, 'units')
_FAIL = flags.DEFINE_integer('fail', -1, 'unit that fails')

def main(argv):
    with xm_local.create_experiment('cli-test', tags=['cli']) as experiment:
        [exe] = experiment.package([xm.binary(xm_local.Local.Spec(), 'job.py')])
        for i in range(_N.value):
            experiment.add(xm.Job(exe, xm_local.Local(), args={'i': i, 'fail': int(i == _FAIL.value)}))
    print('EXPERIMENT', experiment.experiment_id)
"""

JOB = """
import sys
from xmanager import xm
flags = dict(a[2:].split('=') for a in sys.argv[1:])
print('hello from', flags['i'])
if flags['fail'] == '1':
    sys.exit(5)
xm.report(double=int(flags['i']) * 2)
"""


def run(*args, cwd=None):
    return subprocess.run([XMANAGER, *args], capture_output=True, text=True, cwd=cwd, env=os.environ, timeout=120)


@pytest.fixture
def launcher(tmp_path, script):
    script(JOB, "job.py")
    path = tmp_path / "launcher.py"
    path.write_text(LAUNCHER)
    return path


def _experiment_id(result):
    line = next(line for line in result.stdout.splitlines() if line.startswith("EXPERIMENT"))
    return line.split()[1]


def test_launch_list_show_logs_export(launcher, tmp_path):
    result = run("launch", str(launcher), "--", "--n=3")
    assert result.returncode == 0, result.stderr
    experiment_id = _experiment_id(result)

    listing = run("list").stdout
    assert experiment_id in listing and "cli-test" in listing and "3 completed" in listing

    show = run("show", experiment_id).stdout
    assert "3 completed" in show and "double=4" in show

    logs = run("logs", experiment_id, "3", "--stream", "stdout").stdout
    assert "hello from 2" in logs and "hello from 1" not in logs

    output = tmp_path / "out.csv"
    exported = run("export", experiment_id, "--format", "csv", "-o", str(output))
    assert exported.returncode == 0
    header, *rows = output.read_text().splitlines()
    assert header.startswith("i,fail,double,_experiment_id") and len(rows) == 3

    parquet = tmp_path / "out.parquet"
    assert run("export", experiment_id, "--format", "parquet", "-o", str(parquet)).returncode == 0
    import pandas as pd

    assert pd.read_parquet(parquet)["double"].tolist() == [0, 2, 4]


def test_launch_exits_non_zero_when_a_unit_fails(launcher):
    result = run("launch", str(launcher), "--", "--n=3", "--fail=1")
    assert result.returncode == 1
    assert "work unit 2" in result.stderr and "exit code 5" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("launch", "/no/such/launcher.py"), "no launch script at '/no/such/launcher.py'"),
        (("show", "12345"), "no experiment 12345"),
        (("show", "abc"), "experiment id must be a number"),
        (("--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "list"), "cannot open database"),
        (("--db", "not a url", "list"), "is not a URL"),
    ],
)
def test_bad_input_gets_one_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_script_without_main(tmp_path):
    path = tmp_path / "nomain.py"
    path.write_text("x = 1\n")
    result = run("launch", str(path))
    assert result.returncode == 2 and "defines no main(argv)" in result.stderr


def test_script_with_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def main(argv):\n    return (\n")
    result = run("launch", str(path))
    assert result.returncode == 2 and "broken.py:2" in result.stderr


def test_cancel_from_another_process(tmp_path, python):
    launcher = tmp_path / "sleepy.py"
    launcher.write_text(
        "from xmanager import xm, xm_local\n"
        "def main(argv):\n"
        "    with xm_local.create_experiment('sleepy') as e:\n"
        "        [exe] = e.package([xm.binary(xm_local.Local.Spec(), '/bin/sleep')])\n"
        "        e.add(xm.Job(exe, xm_local.Local(), args=['60']))\n"
        "        print('EXPERIMENT', e.experiment_id, flush=True)\n"
    )
    process = subprocess.Popen([XMANAGER, "launch", str(launcher)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    experiment_id = next(line for line in process.stdout if line.startswith("EXPERIMENT")).split()[1]
    from xmanager import xm_local

    def statuses():
        return [unit.get_status().status.value for unit in xm_local.get_experiment(experiment_id).work_units.values()]

    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and statuses() != ["running"]:  # Written by a background writer.
        time.sleep(0.05)
    result = run("cancel", experiment_id)
    assert result.returncode == 0 and "cancelled 1 work unit" in result.stdout
    process.communicate(timeout=30)
    assert statuses() == ["cancelled"]
    assert process.returncode == 0


def test_cancel_of_unknown_units_names_them_and_cancels_nothing(launcher):
    result = run("launch", str(launcher), "--", "--n=2")
    experiment_id = _experiment_id(result)
    result = run("cancel", experiment_id, "2", "999", "7")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"xmanager: error: experiment {experiment_id} has no work unit 999, 7 "
                                     "(it has units 1-2); nothing cancelled")
    result = run("cancel", experiment_id, "2")
    assert result.returncode == 0 and "cancelled 0 work unit(s)" in result.stdout  # Already completed.


SPEC_ERROR = """
from xmanager import xm, xm_local

def main(argv):
    with xm_local.create_experiment('spec error') as experiment:
        [exe] = experiment.package([xm.binary(xm_local.Local.Spec(), 'no-such-binary')])
"""


def test_a_spec_error_in_main_is_the_script_s_line_and_v_adds_the_traceback(tmp_path):
    path = tmp_path / "launcher.py"
    path.write_text(SPEC_ERROR)
    result = run("launch", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"xmanager: error: {path}:6: FileNotFoundError: xm.Binary: no file at "
                                     f"'{tmp_path / 'no-such-binary'}' (given as 'no-such-binary')")
    verbose = run("-v", "launch", str(path))
    assert verbose.returncode == 2 and "Traceback (most recent call last):" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1] == result.stderr.strip()


def test_an_internal_error_outside_the_script_keeps_its_traceback(tmp_path):
    """Errors that are not expected failures (bugs) are not hidden behind one line."""
    code = ("import sys\nfrom xmanager.xm_local import cli, cli_errors\n"
            "def boom(args):\n    raise ZeroDivisionError('bug')\n"
            "cli.cmd_list = boom\nsys.exit(cli.main(['list']))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback (most recent call last):" in result.stderr
    assert result.stderr.strip().endswith("ZeroDivisionError: bug")
