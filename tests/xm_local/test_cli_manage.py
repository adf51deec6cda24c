"""The xmanager command for scripts and people: --json, filters, logs -f, tag/note/archive/delete, help, completion."""

import argparse
import json
import os
import subprocess
import sys
import time

import pytest
from pty_run import run_on_pty
from xmanager.xm_local import cli

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

#: Unit i runs job.py with --i=i; the unit given by --fail exits 5; --sleep makes every unit print slowly.
LAUNCHER = """
from absl import flags
from xmanager import xm, xm_local

_N = flags.DEFINE_integer('n', 2, 'units')
_FAIL = flags.DEFINE_integer('fail', -1, 'unit that fails')
_SLEEP = flags.DEFINE_float('sleep', 0, 'seconds between lines')
_PARALLEL = flags.DEFINE_integer('parallel', 4, 'units at once')

def main(argv):
    with xm_local.create_experiment('manage-test', tags=['cli'], max_parallel=_PARALLEL.value) as experiment:
        [exe] = experiment.package([xm.binary(xm_local.Local.Spec(), 'job.py')])
        for i in range(_N.value):
            experiment.add(xm.Job(exe, xm_local.Local(),
                                  args={'i': i, 'fail': int(i == _FAIL.value), 'sleep': _SLEEP.value}))
            if i == 0:
                print('EXPERIMENT', experiment.experiment_id, flush=True)
"""

JOB = """
import sys, time
from xmanager import xm
flags = dict(a[2:].split('=') for a in sys.argv[1:])
for step in range(3):
    print('line', step, 'of unit', flags['i'], flush=True)
    time.sleep(float(flags['sleep']))
if flags['fail'] == '1':
    sys.exit(5)
xm.report(double=int(flags['i']) * 2, nan=float('nan'))
"""


def run(*args, stdin=subprocess.DEVNULL, timeout=120):
    return subprocess.run([XMANAGER, *args], capture_output=True, text=True, stdin=stdin, timeout=timeout)


@pytest.fixture
def launcher(tmp_path, script):
    script(JOB, "job.py")
    path = tmp_path / "launcher.py"
    path.write_text(LAUNCHER)
    return path


def _launch(launcher, *flags):
    result = run("launch", str(launcher), "--", *flags)
    line = next(line for line in result.stdout.splitlines() if line.startswith("EXPERIMENT"))
    return result, line.split()[1]


def _json(*args):
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---- --json: one stable schema (docs/cli.md) ----------------------------------------------------------
EXPERIMENT_KEYS = {"experiment_id": int, "title": str, "tags": list, "notes": str, "creator": (str, type(None)),
                   "created_at": float, "archived": bool, "work_unit_count": int, "status_counts": dict}
UNIT_KEYS = {"work_unit_id": int, "status": str, "exit_code": (int, type(None)), "message": str, "args": dict,
             "results": dict, "jobs": list}
JOB_KEYS = {"name": str, "executor": str, "status": str, "exit_code": (int, type(None)), "message": str,
            "console_url": (str, type(None))}


def _check(value, schema):
    assert set(value) == set(schema), sorted(value)
    for key, kind in schema.items():
        assert isinstance(value[key], kind), (key, value[key])


def test_json_schema_of_list_and_show(launcher):
    result, experiment_id = _launch(launcher, "--n=3", "--fail=1")
    assert result.returncode == 1

    listing = _json("list", "--json")
    assert set(listing) == {"version", "experiments"} and listing["version"] == cli.JSON_VERSION == 1
    [experiment] = listing["experiments"]
    _check(experiment, EXPERIMENT_KEYS)
    assert experiment["experiment_id"] == int(experiment_id) and experiment["tags"] == ["cli"]
    assert set(cli.STATUSES) >= {"pending", "running", "completed", "failed", "cancelled"}
    assert experiment["status_counts"] == {status: {"completed": 2, "failed": 1}.get(status, 0)
                                           for status in cli.STATUSES}
    assert experiment["work_unit_count"] == 3 and experiment["archived"] is False

    shown = _json("show", experiment_id, "--json")
    assert set(shown) == {"version", "experiment", "work_units"} and shown["version"] == 1
    assert shown["experiment"] == experiment
    assert [unit["work_unit_id"] for unit in shown["work_units"]] == [1, 2, 3]
    for unit in shown["work_units"]:
        _check(unit, UNIT_KEYS)
        [job] = unit["jobs"]
        _check(job, JOB_KEYS)
        assert job["executor"] == "local" and job["console_url"] is None
    first = shown["work_units"][0]
    assert first["args"] == {"i": 0, "fail": 0, "sleep": 0.0}
    assert first["results"] == {"double": 0, "nan": None}  # Strict JSON: NaN is null.
    assert (first["status"], first["exit_code"]) == ("completed", 0)

    failed = _json("show", experiment_id, "--json", "--status", "failed")["work_units"]
    assert [(unit["work_unit_id"], unit["status"], unit["exit_code"]) for unit in failed] == [(2, "failed", 5)]
    assert "exit code 5" in failed[0]["message"] and failed[0]["jobs"][0]["status"] == "failed"
    text = run("show", experiment_id, "--status", "completed").stdout
    assert "completed" in text and "exit code 5" not in text


def test_list_filters_since_tag_status_and_limit(launcher):
    _, first = _launch(launcher, "--n=1")
    _, second = _launch(launcher, "--n=2", "--fail=0")
    run("tag", first, "+only-first")

    def ids(*args):
        return [str(e["experiment_id"]) for e in _json("list", "--json", *args)["experiments"]]

    assert ids() == [second, first]
    assert ids("--since", "1h") == [second, first] and ids("--since", "2999-01-01") == []
    assert ids("--since", "2000-01-01T00:00") == [second, first]
    assert ids("--tag", "only-first") == [first]
    assert ids("--status", "failed") == [second] and ids("--status", "completed") == [second, first]
    assert ids("--status", "running") == []
    assert ids("--limit", "1") == [second]
    bad = run("list", "--since", "yesterday")
    assert bad.returncode == 2 and "not a date" in bad.stderr and len(bad.stderr.splitlines()) == 1


# ---- tags, notes, archive, delete ------------------------------------------------------------------------
def test_tag_note_archive_and_unarchive(launcher):
    _, experiment_id = _launch(launcher, "--n=1")
    assert run("tag", experiment_id, "+a", "+b", "-cli").stdout.strip() == f"experiment {experiment_id} tags: a, b"
    assert run("tag", experiment_id, "-a", "c").stdout.strip() == f"experiment {experiment_id} tags: b, c"
    assert _json("list", "--json", "--tag", "c")["experiments"][0]["tags"] == ["b", "c"]
    assert _json("list", "--json", "--tag", "a")["experiments"] == []
    assert run("tag", experiment_id, "+").returncode == 2

    assert run("note", experiment_id, "baseline run, lr 0.1").returncode == 0
    assert run("note", experiment_id).stdout.strip() == "baseline run, lr 0.1"
    assert "notes: baseline run, lr 0.1" in run("show", experiment_id).stdout

    assert run("archive", experiment_id).returncode == 0
    assert _json("list", "--json")["experiments"] == []
    assert "no experiments" in run("list").stdout
    [archived] = _json("list", "--json", "--all")["experiments"]
    assert archived["archived"] is True and archived["notes"] == "baseline run, lr 0.1"
    assert "(archived)" in run("list", "--all").stdout
    assert run("unarchive", experiment_id).returncode == 0
    assert _json("list", "--json")["experiments"][0]["archived"] is False


def test_delete_needs_yes_without_a_terminal_and_removes_rows_and_job_folders(launcher, data_dir):
    _, keep = _launch(launcher, "--n=1")
    _, experiment_id = _launch(launcher, "--n=2")
    folder = data_dir / "experiments" / experiment_id
    assert folder.is_dir()

    refused = run("delete", experiment_id)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert "pass --yes" in refused.stderr and folder.is_dir()

    done = run("delete", experiment_id, "--yes")
    assert done.returncode == 0, done.stderr
    assert not folder.exists()
    assert [e["experiment_id"] for e in _json("list", "--json", "--all")["experiments"]] == [int(keep)]
    assert run("show", experiment_id).returncode == 2
    import sqlite3

    with sqlite3.connect(data_dir / "xmanager.sqlite3") as conn:
        for table in ("work_units", "jobs", "status_events", "experiment_tags", "metrics"):
            rows = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE experiment_id = ?", (int(experiment_id),))
            assert rows.fetchone() == (0,), table
        assert conn.execute("SELECT COUNT(*) FROM work_units").fetchone() == (1,)




def _answer_on_pty(argv, answer, timeout=60.0):
    return run_on_pty(argv, None, timeout, answer=answer)

def test_delete_asks_on_a_terminal(launcher, data_dir):
    _, experiment_id = _launch(launcher, "--n=1")
    code, output = _answer_on_pty([XMANAGER, "delete", experiment_id], b"n\n")
    assert code == 1 and "nothing deleted" in output
    assert (data_dir / "experiments" / experiment_id).is_dir()
    code, output = _answer_on_pty([XMANAGER, "delete", experiment_id], b"y\n")
    assert code == 0 and f"deleted experiment {experiment_id}" in output
    assert not (data_dir / "experiments" / experiment_id).exists()


def test_delete_refuses_while_units_run(launcher):
    process = subprocess.Popen([XMANAGER, "launch", str(launcher), "--", "--n=1", "--sleep=2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        experiment_id = next(line for line in process.stdout if line.startswith("EXPERIMENT")).split()[1]
        refused = run("delete", experiment_id, "--yes")
        assert refused.returncode == 2 and "unfinished work unit" in refused.stderr, refused.stderr
        assert len(refused.stderr.splitlines()) == 1
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert run("delete", experiment_id, "--yes").returncode == 0


# ---- logs --------------------------------------------------------------------------------------------
def test_logs_follow_prints_a_running_unit_s_output_until_it_ends(launcher):
    process = subprocess.Popen([XMANAGER, "launch", str(launcher), "--", "--n=1", "--sleep=0.7"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        experiment_id = next(line for line in process.stdout if line.startswith("EXPERIMENT")).split()[1]
        followed = run("logs", experiment_id, "1", "-f", "--stream", "stdout", timeout=60)
        # logs -f returned: the unit has ended, so its launcher is about to exit.
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    assert lines[0].startswith("==> work unit 1, job job_py, stdout:")
    assert [line for line in lines if line.startswith("line")] == [f"line {step} of unit 0" for step in range(3)]
    assert "completed" in run("show", experiment_id).stdout  # It returned once the unit ended, with every line.


def test_logs_of_a_job_that_never_started_say_why(launcher):
    process = subprocess.Popen([XMANAGER, "launch", str(launcher), "--", "--n=2", "--sleep=5", "--parallel=1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        experiment_id = next(line for line in process.stdout if line.startswith("EXPERIMENT")).split()[1]
        deadline = time.monotonic() + 30
        while _json("show", experiment_id, "--json")["work_units"][0]["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert run("cancel", experiment_id).returncode == 0
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    logs = run("logs", experiment_id, "2")
    assert logs.returncode == 0, logs.stderr
    assert "(no output: the job never started (cancelled): " in logs.stdout, logs.stdout
    followed = run("logs", experiment_id, "2", "-f", timeout=30)  # Nothing to follow: it ended.
    assert followed.returncode == 0 and "never started" in followed.stdout


# ---- help, version, completion ---------------------------------------------------------------------------
def _subparsers(parser, path=("xmanager",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"{' '.join(path)} {name} has no help"
                yield from _subparsers(sub, (*path, name))


def test_every_subcommand_and_option_has_help_and_shows_its_default():
    checked = 0
    for path, parser in _subparsers(cli._parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{' '.join(path)}: {action.option_strings or action.dest} has no help"
            checked += 1
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in parser.formatter_class("x")._get_help_string(action), (path, action.dest)
    assert checked > 60
    assert "(default: 50)" in run("list", "--help").stdout


def test_version_and_completion():
    from xmanager.xm import __version__

    assert run("--version").stdout.strip() == f"xmanager {__version__}"
    for shell in ("bash", "zsh"):
        script = run("completion", shell)
        assert script.returncode == 0, script.stderr
        assert "xmanager" in script.stdout and "archive" in script.stdout and "--json" in script.stdout
    checked = subprocess.run(["bash", "-n"], input=run("completion", "bash").stdout, text=True, capture_output=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert run("completion", "fish").returncode == 2
