"""Bad input, table-driven: every case runs the real ``xmanager`` (or a ``psweep-*`` script) as a process.

Each case gives the command line and the files it needs, and asserts:

* the exit status (2 for usage and input errors, 1 for failed units, 0 where the input is fine);
* the one line on stderr that names what and where (a substring of it), with no traceback;
* that nothing ran that should not have: every launch script would create ``MARKER`` (a unit
  running ``touch``, or a shell substitution) if it got that far, and it must not exist;
* that existing data is byte-identical afterwards: the store's ``.sqlite3`` file, the sweep
  database, the study files and every file of the case's folder are hashed before and after
  (for launch scripts that fail inside ``with create_experiment()``, which records the new
  experiment, the rows of the experiments that existed before are compared instead).

The cases share one prepared store (one experiment of two completed units), one sweep database
and one study file; store-file cases get their own copies (truncated, corrupt, newer schema, on
a read-only or full tmpfs).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
TITLE = "bad inputs (CLI, scripts, specs, args/env, study configs, psweep, VE kernels, store files)"
TIMEOUT_S = 60

# ---- the launch scripts' pieces -------------------------------------------------------------------
HEAD = "import os\nfrom xmanager import xm, xm_local\nMARKER = os.environ['XM_TEST_MARKER']\n"
TOUCH = "xm.binary(xm_local.Local.Spec(), '/usr/bin/touch')"


def script(body: str) -> str:
    """A launch script: ``main`` runs ``body`` (indented 4); ``run_touch(e, **job)`` adds a unit that touches MARKER."""
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return (
        HEAD
        + "def run_touch(e, args=None, env_vars=None):\n"
        + f"    [exe] = e.package([{TOUCH}])\n"
        + "    e.add(xm.Job(exe, xm_local.Local(), args=args if args is not None else [MARKER], env_vars=env_vars or {}))\n"
        + "\ndef main(argv):\n"
        + lines
        + "\n"
    )


def in_experiment(statement: str) -> str:
    """A script that creates an experiment, runs ``statement`` in it, then would add the marker unit."""
    return script(f"with xm_local.create_experiment('bad') as e:\n    {statement}\n    run_touch(e)")


VE_GOOD = "int twice(int n) { return 2 * n; }\\n"
VE_BROKEN = "int broken(int n) { return n +* ; }\\n"
VE_SPEC = "xm_local.VectorEngineSpec(backend='host', build_dir=os.environ['XM_TEST_VE_BUILD']{extra})"


def ve_script(body: str, on_build_error: str = "raise") -> str:
    extra = "" if on_build_error == "raise" else f", on_build_error={on_build_error!r}"
    return script(f"spec = {VE_SPEC.format(extra=extra)}\nex = xm_local.VectorEngine(backend='host')\n{body}")


@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    message: str  # A substring of the last line of stderr ("" for none).
    files: dict[str, Any] = field(default_factory=dict)  # name -> text or bytes, written into the case folder
    store: str = "world"  # world | copy | truncated | corrupt | text | newer | readonly | full
    rows_only: bool = False  # The command may add rows (a failed launch's experiment); compare old rows only.
    one_line: bool = True  # stderr is exactly one line (else: its last line has the message, no traceback)
    traceback_ok: bool = False  # A logged traceback that a compatible command prints (the message is anywhere)
    program: str = "xmanager"
    env: dict[str, str] = field(default_factory=dict)


def launch(name: str, text: Any, code: int, message: str, *flags: str, rows_only: bool = False,
           one_line: bool = True) -> Case:
    return Case(f"script-{name}", ["launch", "s.py", *(["--", *flags] if flags else [])], code, message,
                files={"s.py": text}, rows_only=rows_only, one_line=one_line)


def cli(name: str, argv: list[str], code: int, message: str, **kwargs: Any) -> Case:
    return Case(f"cli-{name}", argv, code, message, **kwargs)


WID = "{world}"  # Replaced by the prepared experiment's id.
NUL = "\x00"

CASES: list[Case] = [
    # ---- CLI arguments ---------------------------------------------------------------------------------
    cli("no-command", [], 2, "the following arguments are required: COMMAND"),
    cli("unknown-command", ["bogus"], 2, "invalid choice: 'bogus'"),
    cli("unknown-global-option", ["--bogus", "list"], 2, "unrecognized arguments: --bogus"),
    cli("show-no-id", ["show"], 2, "show: the following arguments are required: experiment_id"),
    cli("show-overflow", ["show", "99999999999999999999999999"], 2, "ids are numbers from 0 to 9223372036854775807"),
    cli("show-negative", ["show", "-1"], 2, "no experiment '-1'"),
    cli("show-not-a-number", ["show", "abc"], 2, "experiment id must be a number, got 'abc'"),
    cli("show-empty", ["show", ""], 2, "experiment id must be a number, got ''"),
    cli("show-float", ["show", "1.5"], 2, "experiment id must be a number, got '1.5'"),
    cli("show-unicode", ["show", "实验"], 2, "experiment id must be a number, got '实验'"),
    cli("show-huge", ["show", "9" * 100_000], 2, "(100,000 characters)"),
    cli("show-shell", ["show", "$(touch MARKER)"], 2, "experiment id must be a number, got '$(touch MARKER)'"),
    cli("show-unknown", ["show", "12345"], 2, "no experiment 12345 in sqlite:///"),
    cli("show-extra-argument", ["show", WID, "--bogus"], 2, "unrecognized arguments: --bogus"),
    cli("logs-unknown-unit", ["logs", WID, "999"], 2, "has no work unit 999"),
    cli("logs-bad-unit", ["logs", WID, "one"], 2, "work unit id must be a number, got 'one'"),
    cli("logs-bad-stream", ["logs", WID, "--stream", "stdin"], 2, "argument --stream: invalid choice: 'stdin'"),
    cli("logs-unknown-experiment", ["logs", "777"], 2, "no experiment 777"),
    cli("cancel-unknown-unit", ["cancel", WID, "999"], 2, "has no work unit 999 (it has units 1-2); nothing cancelled"),
    cli("cancel-some-unknown", ["cancel", WID, "1", "3", "4"], 2, "has no work unit 3, 4 (it has units 1-2)"),
    cli("cancel-bad-unit", ["cancel", WID, "1;rm"], 2, "work unit id must be a number, got '1;rm'"),
    cli("cancel-unknown-experiment", ["cancel", "31337"], 2, "no experiment 31337"),
    cli("cancel-overflow", ["cancel", WID, "99999999999999999999999"], 2, "no work unit '99999999999999999999999'"),
    cli("export-missing-folder", ["export", WID, "-o", "nowhere/x.csv"], 2, "folder"),
    cli("export-to-folder", ["export", WID, "-o", "."], 2, "export -o .: is a folder"),
    cli("export-bad-format", ["export", WID, "--format", "xml"], 2, "argument --format: invalid choice: 'xml'"),
    cli("export-to-a-file-path", ["export", WID, "-o", "f.txt/x.csv"], 2, "f.txt is a file, not a folder",
        files={"f.txt": "keep"}),
    cli("export-unknown", ["export", "4242", "-o", "x.csv"], 2, "no experiment 4242"),
    cli("list-bad-limit", ["list", "--limit", "ten"], 2, "argument --limit: invalid int value: 'ten'"),
    cli("db-not-a-url", ["--db", "not a url", "list"], 2, "is not a URL"),
    cli("db-relative-sqlite", ["--db", "sqlite:x.sqlite3", "list"], 2, "write sqlite:///relative/path"),
    cli("db-under-a-file", ["--db", "sqlite:///f.txt/x.sqlite3", "list"], 2, "cannot create", files={"f.txt": "keep"}),
    cli("db-is-a-folder", ["--db", "sqlite:///folder", "list"], 2, "cannot open database", files={"folder/keep": "k"}),
    cli("db-unreachable-postgres", ["--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "list"], 2,
        "cannot open database"),
    cli("launch-missing-script", ["launch", "nope.py"], 2, "no launch script at '/"),
    cli("launch-folder", ["launch", "folder"], 2, "/folder' is not a file", files={"folder/keep": "k"}),
    cli("launch-no-script", ["launch"], 2, "launch: the following arguments are required: script"),
    cli("sweep-no-subcommand", ["sweep"], 2, "the following arguments are required: SUBCOMMAND"),
    cli("sweep-unknown-subcommand", ["sweep", "bogus"], 2, "invalid choice: 'bogus'"),
    cli("devcluster-unknown", ["devcluster", "bogus"], 2, "invalid choice: 'bogus'"),
    cli("verbose-after-command", ["show", "-v", WID], 2, "unrecognized arguments: -v"),
    # ---- launch scripts ---------------------------------------------------------------------------------
    launch("syntax-error", "def main(argv):\n    return (\n", 2, "s.py:2: SyntaxError: '(' was never closed"),
    launch("shell-script", "#!/bin/sh\ntouch \"$XM_TEST_MARKER\"\necho $(touch MARKER)\n", 2, "s.py:2: SyntaxError"),
    launch("binary-garbage", b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe" * 40, 2, "s.py"),
    launch("not-utf8", b"def main(argv):\n    return '\xff\xfe'\n", 2, "s.py:2: SyntaxError"),
    launch("nul-in-source", "def main(argv):\n    return 1\n\x00\n", 2, "s.py"),
    launch("empty", "", 2, "s.py defines no main(argv) function"),
    launch("main-not-callable", "main = 3\n", 2, "s.py defines no main(argv) function"),
    launch("import-error", "import no_such_module_xyz\n", 2, "s.py:1: ModuleNotFoundError: No module named"),
    launch("name-error-at-import", "print(undefined_name)\n", 2, "s.py:1: NameError: name 'undefined_name' is not defined"),
    launch("missing-binary", script("[exe] = xm_local.LocalExperiment.package([xm.binary(xm_local.Local.Spec(), "
                                    "'no-such-binary')])"), 2, "s.py:9: FileNotFoundError: xm.Binary: no file at"),
    launch("not-executable", script("[exe] = xm_local.LocalExperiment.package([xm.binary(xm_local.Local.Spec(), "
                                    "'data.txt')])"), 2, "s.py:9: PermissionError: xm.Binary:"),
    launch("missing-binary-in-with", in_experiment("e.package([xm.binary(xm_local.Local.Spec(), 'gone.sh')])"),
           2, "s.py:10: FileNotFoundError: xm.Binary: no file at", rows_only=True),
    launch("bad-requirement-name", script("xm.JobRequirements(bogus=1)"), 2, "s.py:9: KeyError: Unknown ResourceType 'bogus'"),
    launch("bad-requirement-value", script("xm.JobRequirements(cpu='lots')"), 2,
           "s.py:9: ValueError: Couldn't parse resource quantity for cpu"),
    launch("bad-executor-argument", script("xm_local.Local(bogus=1)"), 2, "s.py:9: TypeError:"),
    launch("bad-requirements-in-with", in_experiment("xm_local.Local(requirements=xm.JobRequirements(gpu='x'))"),
           2, "s.py:10: ValueError:", rows_only=True),
    launch("add-not-a-job", in_experiment("e.add(42)"), 2, "s.py:10: ", rows_only=True),
    launch("sweep-cyclic-pset", in_experiment(
        "[exe] = e.package([" + TOUCH + "])\n    loop = []; loop.append(loop)\n"
        "    e.add_sweep(xm.Job(exe, xm_local.Local(), args=[MARKER]), [{'a': loop}])"), 2, "s.py:12: ",
        rows_only=True),
    launch("sweep-psets-not-dicts", in_experiment(
        "[exe] = e.package([" + TOUCH + "])\n    e.add_sweep(xm.Job(exe, xm_local.Local(), args=[MARKER]), [1, 2])"),
        2, "s.py:11: ", rows_only=True),
    launch("sweep-nul-in-pset", in_experiment(
        "[exe] = e.package([" + TOUCH + "])\n    e.add_sweep(xm.Job(exe, xm_local.Local(), args=[MARKER]), "
        "[{'a': 'x'}, {'a': 'y\\x00z'}])"), 2, "holds a NUL byte", rows_only=True),
    launch("arg-with-nul", in_experiment("run_touch(e, args=[MARKER, 'a\\x00b'])"), 2, "holds a NUL byte",
           rows_only=True),
    launch("arg-key-with-nul", in_experiment("run_touch(e, args={'k\\x00ey': 1})"), 2, "holds a NUL byte",
           rows_only=True),
    launch("env-value-with-nul", in_experiment("run_touch(e, env_vars={'XM_T': 'a\\x00b'})"), 2,
           "env var 'XM_T'", rows_only=True),
    launch("env-key-with-nul", in_experiment("run_touch(e, env_vars={'X\\x00Y': 'v'})"), 2,
           "Environment variables names must conform to [a-zA-Z_][a-zA-Z0-9_]*. Got 'X\\x00Y'", rows_only=True),
    launch("huge-arg", script("with xm_local.create_experiment('huge') as e:\n    run_touch(e, args=[MARKER, 'y' * 300_000])"), 1,
           "1 of 1 work units failed", rows_only=True, one_line=False),
    launch("shell-metacharacters-are-data", script(
        "with xm_local.create_experiment('meta') as e:\n"
        "    [exe] = e.package([xm.binary(xm_local.Local.Spec(), '/bin/echo')])\n"
        "    e.add(xm.Job(exe, xm_local.Local(), args=['$(touch ' + MARKER + ')', '`touch ' + MARKER + '`', "
        "'; touch ' + MARKER, '| touch ' + MARKER, '&& touch ' + MARKER, \"'\\\"\", '*', '~', '>x']))"),
        0, "", rows_only=True),
    launch("shell-metacharacters-in-env", script(
        "with xm_local.create_experiment('meta') as e:\n"
        "    [exe] = e.package([xm.binary(xm_local.Local.Spec(), '/usr/bin/env')])\n"
        "    e.add(xm.Job(exe, xm_local.Local(), env_vars={'A': '$(touch ' + MARKER + ')', 'B': '`touch x`;'}))"),
        0, "", rows_only=True),
    launch("unicode-args-and-env", script(
        "with xm_local.create_experiment('ünï ☃') as e:\n"
        "    [exe] = e.package([xm.binary(xm_local.Local.Spec(), '/bin/echo')])\n"
        "    e.add(xm.Job(exe, xm_local.Local(), args={'ключ': 'значение ☃ \\u200b', 'e': 'é'}, "
        "env_vars={'XM_U': '日本語'}))"), 0, "", rows_only=True),
    launch("bad-flag-int", "from absl import flags\nN = flags.DEFINE_integer('n', 1, '')\n"
           "def main(argv):\n    open(__import__('os').environ['XM_TEST_MARKER'], 'w')\n", 2,
           "flag --n=abc: invalid literal for int()", "--n=abc"),
    launch("bad-flag-enum", "from absl import flags\nM = flags.DEFINE_enum('mode', 'a', ['a', 'b'], '')\n"
           "def main(argv):\n    open(__import__('os').environ['XM_TEST_MARKER'], 'w')\n", 2,
           "flag --mode=c: value should be one of <a|b>", "--mode=c"),
    launch("bad-flag-bool", "from absl import flags\nB = flags.DEFINE_bool('b', False, '')\n"
           "def main(argv):\n    open(__import__('os').environ['XM_TEST_MARKER'], 'w')\n", 2,
           "flag --b=maybe", "--b=maybe"),
    launch("missing-db-yaml", script("run_touch(None)"), 2, "--xm_db_yaml_config_path: cannot read",
           "--xm_db_yaml_config_path=missing.yaml"),
    launch("cloud-build", script("run_touch(None)"), 2, "--noxm_build_image_locally asks for Google Cloud Build",
           "--noxm_build_image_locally"),
    launch("attribute-error-hint", script("xm.no_such_thing"), 2, "(xmanager -v launch ... shows the traceback)"),
    # ---- VE kernels ---------------------------------------------------------------------------------------
    launch("ve-declaration", ve_script("xm.ve_kernel(spec, 'k', ('x double',), {'k': 'int k(){return 0;}'})"), 2,
           "s.py:11: ValueError: VeKernel(args[0]='x double'): declare each argument as 'name: type'"),
    launch("ve-unknown-type", ve_script("xm.ve_kernel(spec, 'k', ('x: complex',), {'k': 'int k(){return 0;}'})"), 2,
           "s.py:11: ValueError: VeKernel(args[0]='x: complex'): unknown type 'complex'"),
    launch("ve-compile-error", ve_script(
        f"xm_local.LocalExperiment.package([xm.ve_kernel(spec, 'broken', ('n: int',), {{'bad': '{VE_BROKEN}'}})])"),
        2, "bad.c:1"),
    launch("ve-missing-source", ve_script(
        "xm_local.LocalExperiment.package([xm.ve_kernel(spec, 'k', ('n: int',), {'k': 'gone.c'})])"), 2,
        "s.py:11: FileNotFoundError: xm.VeKernel(sources['k']): cannot read"),
    launch("ve-bad-binding", ve_script(
        "with xm_local.create_experiment('ve') as e:\n"
        f"    [k] = e.package([xm.ve_kernel(spec, 'twice', ('n: int',), {{'good': '{VE_GOOD}'}})])\n"
        "    e.add(xm.Job(k, ex, args={'n': 'four'}))\n"
        "    run_touch(e)"), 2, "s.py:13: BindingError: VeKernel 'twice': argument 'n' (int) needs an integer",
        rows_only=True),
    launch("ve-fail-units", ve_script(
        "with xm_local.create_experiment('ve') as e:\n"
        f"    good, bad = e.package([xm.ve_kernel(spec, 'twice', ('n: int',), {{'good': '{VE_GOOD}'}}),\n"
        f"                           xm.ve_kernel(spec, 'broken', ('n: int',), {{'bad': '{VE_BROKEN}'}})])\n"
        "    e.add_sweep(xm.Job(bad, ex), [{'n': 1}, {'n': 2}])\n"
        "    e.add_sweep(xm.Job(good, ex), [{'n': 1}, {'n': 2}])", "fail_units"), 1, "2 of 4 work units failed",
        rows_only=True, one_line=False),
    launch("ve-bad-spec", ve_script("xm_local.VectorEngineSpec(on_build_error='ignore')"), 2,
           "s.py:11: ValueError: VectorEngineSpec(on_build_error='ignore'): use one of 'raise', 'fail_units'"),
    launch("ve-bad-node", ve_script("xm_local.VectorEngine(node=-1)"), 2,
           "s.py:11: ValueError: VectorEngine(node=-1): a VE node number"),
    # ---- study configs (TOML) ---------------------------------------------------------------------------
    cli("study-verify-not-utf8", ["study", "verify", "bad.toml"], 2, "bad.toml: not UTF-8 text (byte 0xff at offset 5)",
        files={"bad.toml": b'a = "\xff\xfe"\n'}),
    cli("study-generate-not-utf8", ["study", "generate-config-json", "bad.toml", "-r", "2"], 2, "not UTF-8 text",
        files={"bad.toml": b"\xfe\xff[configuration]\n"}),
    cli("study-run-not-utf8", ["study", "run", "bad.toml", "-p", "1"], 2, "not UTF-8 text",
        files={"bad.toml": b"x = '\xc3\x28'\n"}),
    # experiment-server 0.3.9's verify logs the error (with its traceback) and exits 0; kept (docs/studies.md).
    cli("study-verify-toml-syntax", ["study", "verify", "bad.toml"], 0, "Expected ']' at the end of a table declaration",
        one_line=False, traceback_ok=True, files={"bad.toml": "[configuration\norder = \n"}),
    cli("study-generate-unknown-block", ["study", "generate-config-json", "bad.toml", "-r", "1"], 1,
        "bad.toml", files={"bad.toml": '[configuration]\norder = [["ghost"]]\n[[blocks]]\nname = "a"\nconfig = {}\n'}),
    cli("study-generate-bad-range", ["study", "g", "s.toml", "-r", "ten"], 2, "", one_line=False,
        files={"s.toml": "study"}),
    cli("study-generate-out-dir-is-file", ["study", "g", "s.toml", "-r", "1", "-d", "s.toml"], 2, "", one_line=False,
        files={"s.toml": "study"}),
    cli("study-nul-bytes", ["study", "generate-config-json", "bad.toml", "-r", "1"], 1, "bad.toml",
        files={"bad.toml": "[configuration]\x00\n"}),
    cli("study-unknown-command", ["study", "bogus"], 2, "", one_line=False),
    cli("study-run-off-loopback", ["study", "run", "s.toml", "-h", "0.0.0.0", "-p", "1"], 2,
        "refusing to serve on '0.0.0.0' without an access token", files={"s.toml": "study"}),
    cli("study-new-existing", ["study", "new-config-file", "s.toml"], 0, "already exists", one_line=False,
        files={"s.toml": "mine"}),
    # ---- psweep databases and params ---------------------------------------------------------------------
    cli("sweep-db2json-random", ["sweep", "db2json", "database.pk"], 2, "database.pk: not a readable pickled DataFrame",
        files={"database.pk": os.urandom(64)}),
    cli("sweep-db2table-random", ["sweep", "db2table", "database.pk"], 2, "database.pk: not a readable pickled",
        files={"database.pk": b"\x80\x04garbage"}),
    cli("sweep-db2json-truncated", ["sweep", "db2json", "{sweepdb_truncated}"], 2, "not a readable pickled DataFrame"),
    cli("sweep-db2table-truncated", ["sweep", "db2table", "{sweepdb_truncated}"], 2, "not a readable pickled DataFrame"),
    cli("sweep-db2json-empty", ["sweep", "db2json", "database.pk"], 2, "database.pk", files={"database.pk": b""}),
    cli("sweep-db2json-json", ["sweep", "db2json", "database.pk"], 2, "not a readable pickled DataFrame",
        files={"database.pk": '[{"a": 1}]'}),
    cli("sweep-db2json-missing", ["sweep", "db2json", "none.pk"], 2, "no database none.pk"),
    cli("sweep-db2json-folder", ["sweep", "db2json", "calc"], 2, "calc: is a folder", files={"calc/keep": "k"}),
    cli("sweep-db2json-bad-orient", ["sweep", "db2json", "-o", "sideways", "{sweepdb}"], 2,
        "-o sideways: not a DataFrame.to_json orient"),
    cli("sweep-db2table-unknown-column", ["sweep", "db2table", "{sweepdb}", "nope"], 2, "no columns ['nope']"),
    cli("sweep-checkdir-missing", ["sweep", "checkdir", "nocalc"], 2, "no calc dir nocalc"),
    cli("sweep-checkdir-corrupt", ["sweep", "checkdir", "calc"], 2, "calc/database.pk: not a readable pickled",
        files={"calc/database.pk": b"\x00" * 32}),
    Case("psweep-db2json-random", ["database.pk"], 2, "psweep-db2json: error: database.pk: not a readable pickled",
         files={"database.pk": os.urandom(32)}, program="psweep-db2json"),
    Case("psweep-db2table-missing", ["none.pk"], 2, "psweep-db2table: error: no database none.pk",
         program="psweep-db2table"),
    launch("psweep-plist-not-a-sequence", script("from xmanager.xm_local import sweep as ps\nps.plist('a', 3)"), 2,
           "s.py:10: TypeError"),
    launch("psweep-pgrid-of-garbage", script("from xmanager.xm_local import sweep as ps\nps.pgrid([1], [2])"), 2,
           "s.py:10: "),
    # ---- store files -----------------------------------------------------------------------------------
    cli("store-truncated-list", ["list"], 2, "database disk image is malformed", store="truncated"),
    cli("store-truncated-launch", ["launch", "s.py"], 2, "database disk image is malformed", store="truncated",
        files={"s.py": in_experiment("pass")}),
    cli("store-corrupt-show", ["show", WID], 2, "file is not a database", store="corrupt"),
    cli("store-text-list", ["list"], 2, "file is not a database", store="text"),
    cli("store-newer-schema-list", ["list"], 2, "has schema version 99, newer than this xmanager", store="newer"),
    cli("store-newer-schema-launch", ["launch", "s.py"], 2, "newer than this xmanager", store="newer",
        files={"s.py": in_experiment("pass")}),
    cli("store-corrupt-json-show", ["show", WID], 2, "a stored value is not valid JSON", store="badjson"),
    cli("store-corrupt-json-export", ["export", WID, "-o", "x.csv"], 2, "a stored value is not valid JSON",
        store="badjson"),
    cli("store-readonly-launch", ["launch", "s.py"], 2, "attempt to write a readonly database", store="readonly",
        files={"s.py": in_experiment("pass")}),
    cli("store-readonly-cancel", ["cancel", WID, "5"], 2, "has no work unit 5", store="readonly"),
    cli("store-readonly-no-shm", ["launch", "s.py"], 2, "unable to open database file", store="readonly-bare",
        files={"s.py": in_experiment("pass")}),
    cli("store-full-launch", ["launch", "s.py"], 2, "database or disk is full", store="full",
        files={"s.py": in_experiment("pass")}),
    cli("store-full-export", ["export", WID, "-o", "{mnt}/out.csv"], 2, "cannot write: No space left on device",
        store="full"),
    cli("store-full-no-shm", ["list"], 2, "(no space left in ", store="full-bare"),
]


# ---- the shared world ------------------------------------------------------------------------------------
WORLD_SCRIPT = script("with xm_local.create_experiment('world') as e:\n"
                      "    [exe] = e.package([xm.binary(xm_local.Local.Spec(), '/bin/true')])\n"
                      "    e.add_sweep(xm.Job(exe, xm_local.Local()), [{'i': 1}, {'i': 2}])\n"
                      "print('XID', e.experiment_id)")


def _run(program: str, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / program), *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


@dataclass
class World:
    root: Path
    env: dict[str, str]
    experiment_id: int
    sweepdb: Path
    sweepdb_truncated: Path
    mnt: Path | None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import pandas as pd

    root = tmp_path_factory.mktemp("bad-input")
    env = {**os.environ, "XM_DATA_DIR": str(root / "data"), "XM_TEST_VE_BUILD": str(root / "ve-build")}
    for name in ("XM_DATABASE_URL", "XM_LAUNCH_SCRIPT"):
        env.pop(name, None)
    (root / "world.py").write_text(WORLD_SCRIPT)
    done = _run("xmanager", ["launch", "world.py"], root, {**env, "XM_TEST_MARKER": str(root / "unused")})
    assert done.returncode == 0, done.stderr
    experiment_id = int(next(line for line in done.stdout.splitlines() if line.startswith("XID")).split()[1])
    sweepdb = root / "sweep" / "database.pk"
    sweepdb.parent.mkdir()
    pd.DataFrame({"a": [1, 2, 3], "_pset_id": ["x", "y", "z"]}).to_pickle(sweepdb)
    truncated = root / "sweep" / "truncated.pk"
    truncated.write_bytes(sweepdb.read_bytes()[: sweepdb.stat().st_size // 2])
    mnt = root / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                             text=True, timeout=30).returncode == 0
    try:
        yield World(root, env, experiment_id, sweepdb, truncated, mnt if mounted else None)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


# ---- stores of a case ----------------------------------------------------------------------------------
def _store_copy(world: World, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "xmanager.sqlite3"
    source = sqlite3.connect(world.root / "data" / "xmanager.sqlite3")
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=WAL")
    finally:
        target.close()
        source.close()
    return copy


def _leave_wal_files(store: Path) -> None:
    """A process reads the store and exits without closing it, leaving its -wal and -shm files."""
    code = "import os, sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('SELECT 1 FROM experiments').fetchall(); os._exit(0)"
    subprocess.run([sys.executable, "-c", code, str(store)], check=True, timeout=30)
    assert Path(f"{store}-shm").exists()


def _sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            db.execute(statement)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


@contextlib.contextmanager
def _store(world: World, case: Case, folder: Path) -> Iterator[Path]:
    """The store file the case runs against, in the state the case needs (yielded: the file to protect)."""
    if case.store == "world":
        yield world.root / "data" / "xmanager.sqlite3"
        return
    if case.store.startswith(("readonly", "full")):
        if world.mnt is None:
            pytest.skip("cannot mount a tmpfs here (mount -t tmpfs failed): the read-only and full-disk cases need one")
        for stale in world.mnt.iterdir():
            stale.unlink() if stale.is_file() else shutil.rmtree(stale)
        store = _store_copy(world, world.mnt)
        if not case.store.endswith("-bare"):  # As a store in use is: its -wal and -shm files exist.
            _leave_wal_files(store)
        filler = world.mnt / "filler"
        try:
            if case.store.startswith("readonly"):
                subprocess.run(["mount", "-o", "remount,ro", str(world.mnt)], check=True, timeout=30)
            else:
                with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as handle:
                    while True:
                        handle.write(b"\0" * 4096)
            yield store
        finally:
            if case.store.startswith("readonly"):
                subprocess.run(["mount", "-o", "remount,rw", str(world.mnt)], check=True, timeout=30)
            filler.unlink(missing_ok=True)
        return
    store = _store_copy(world, folder / "store")
    if case.store == "truncated":
        store.write_bytes(store.read_bytes()[: 3 * 4096])
    elif case.store == "corrupt":
        data = bytearray(store.read_bytes())
        data[:100] = os.urandom(100)  # The header: no longer a SQLite file.
        store.write_bytes(bytes(data))
    elif case.store == "text":
        store.write_text("experiments: none\n")
    elif case.store == "newer":
        _sql(store, "UPDATE xm_schema SET version = 99")
    elif case.store == "badjson":
        _sql(store, "UPDATE work_units SET args = '{bad', results = '[1'")
    yield store


# ---- what must not change --------------------------------------------------------------------------------
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def _files(folder: Path) -> dict[str, str]:
    """The case folder's files (its store copy, whose WAL files come and go, is checked as a protected file)."""
    return {str(p.relative_to(folder)): _digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] != "store"}


def _read_only(store: Path) -> sqlite3.Connection:
    """Reads without writing anything (immutable: no -shm, which a read-only mount could not hold either)."""
    return sqlite3.connect(f"file:{store}?mode=ro&immutable=1", uri=True)


def _rows(store: Path, experiment_ids: list[int]) -> list[tuple[Any, ...]]:
    db = _read_only(store)
    try:
        marks = ",".join("?" * len(experiment_ids))
        rows: list[tuple[Any, ...]] = []
        for table in ("experiments", "work_units", "jobs"):
            rows += db.execute(f"SELECT * FROM {table} WHERE experiment_id IN ({marks}) ORDER BY 1, 2",
                               experiment_ids).fetchall()
        return rows
    finally:
        db.close()


def _experiment_ids(store: Path) -> list[int]:
    db = _read_only(store)
    try:
        return [row[0] for row in db.execute("SELECT experiment_id FROM experiments")]
    finally:
        db.close()


def _substitute(text: str, world: World, folder: Path) -> str:
    return text.format(world=world.experiment_id, sweepdb=world.sweepdb, sweepdb_truncated=world.sweepdb_truncated,
                       mnt=world.mnt)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, world: World, figures: Any) -> None:
    folder = world.root / "cases" / case.id
    folder.mkdir(parents=True)
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "data.txt").write_text("not executable\n")
    marker = folder / "MARKER"
    with _store(world, case, folder) as store:
        env = {**world.env, **case.env, "XM_TEST_MARKER": str(marker)}
        if case.store != "world":
            env["XM_DATABASE_URL"] = f"sqlite:///{store}"
        readable = case.store in ("world", "readonly", "full", "newer", "badjson")
        old_ids = _experiment_ids(store) if readable else []
        old_rows = _rows(store, old_ids) if readable else []
        protected = [store, world.sweepdb, world.sweepdb_truncated]
        before_files = _files(folder)
        before = {path: _digest(path) for path in protected}
        argv = [_substitute(arg, world, folder) for arg in case.argv]
        result = _run(case.program, argv, folder, env)
        changed = [str(path) for path in protected if _digest(path) != before[path]
                   and not (case.rows_only and path == store)]
        if case.rows_only and readable and _rows(store, old_ids) != old_rows:
            changed.append(f"rows of {store}")
        after_files = _files(folder)
        changed += [name for name in before_files if after_files.get(name) != before_files[name]]
        created = sorted(set(after_files) - set(before_files))
        executed = marker.exists()
    figures.add(TITLE, tried=1, lost=int(bool(changed or created or executed)))

    stderr = result.stderr.strip()
    where = f"{case.program} {' '.join(a[:80] for a in argv)}\nstdout: {result.stdout[-2000:]}\nstderr: {stderr[-3000:]}"
    assert (result.returncode, executed, changed, created) == (case.code, False, [], []), where
    if case.traceback_ok:
        assert case.message in stderr, where
        return
    assert "Traceback" not in result.stderr, where
    if case.one_line:
        assert len(stderr.splitlines()) <= 1, where
    if case.message:
        last = stderr.splitlines()[-1] if stderr else ""
        assert case.message in (last if case.one_line else stderr), where
        if case.code != 0 and case.one_line:
            assert last.startswith(case.program), where


def test_the_table_has_at_least_100_cases() -> None:
    assert len(CASES) >= 100 and len({case.id for case in CASES}) == len(CASES)
