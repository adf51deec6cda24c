"""``xmanager sweep ...``: psweep's command-line helpers, also under psweep's own script names.

``register(subparsers)`` adds the ``sweep`` command to the ``xmanager`` parser. Every
subcommand sets ``run`` (a function of the parsed arguments returning the exit status),
like the other ``xmanager`` commands; its errors are reported through
:mod:`xmanager.xm_local.cli_errors` (one line, exit status 2 for bad input).

    xmanager sweep push HOST [RSYNC_OPTS...]     # ssh HOST mkdir -pv ...; rsync calc/ HOST:.../calc/
    xmanager sweep pull HOST [RSYNC_OPTS...]     # rsync HOST:.../calc ./
    xmanager sweep db2json [-o ORIENT] calc/database.pk     # the database as JSON on stdout (for jq)
    xmanager sweep db2table [-f TABLEFMT -a -i] calc/database.pk [COLUMN...]
    xmanager sweep checkdir calc                 # pset folders vs. the database's _pset_ids, as JSON

The console scripts ``psweep-push``, ``psweep-pull``, ``psweep-db2json``,
``psweep-db2table`` and ``psweep-checkdir`` are the same commands with psweep 0.16's
names, options and output, so batch templates and shell scripts written for psweep run
unchanged.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Optional

from xmanager.xm_local.cli_errors import EXIT_BAD_INPUT, CommandFailed, UsageError

EXIT_ERROR = EXIT_BAD_INPUT
#: DataFrame.to_json's orients (``table`` too, which psweep's help does not list).
ORIENTS = ("split", "records", "index", "columns", "values", "table")


def _rsync_opts(values: list[str]) -> list[str]:
    return values[1:] if values[:1] == ["--"] else values


def _transfer(args: argparse.Namespace, direction: str) -> int:
    from xmanager.xm_local.sweep import rsync

    action = rsync.push if direction == "push" else rsync.pull
    try:
        action(
            args.host, _rsync_opts(args.rsync_opts), calc_dir=args.calc_dir, dry_run=args.dry_run, remote=args.remote
        )
    except FileNotFoundError as error:  # rsync or ssh not installed
        raise UsageError(f"{error.filename or error}: command not found") from None
    except subprocess.CalledProcessError as error:
        raise CommandFailed(f"{error.cmd[0]} exited with status {error.returncode}", error.returncode or 1) from None
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Copy ``calc/`` to the host."""
    return _transfer(args, "push")


def cmd_pull(args: argparse.Namespace) -> int:
    """Copy ``calc/`` back from the host."""
    return _transfer(args, "pull")


def _read_db(path: str) -> Any:
    """The database at ``path``; a missing file is a UsageError, an unreadable one a DatabaseError (cli_errors)."""
    import os

    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder, not a database file")
    if not os.path.isfile(path):
        raise UsageError(f"no database {path}")
    from xmanager.xm_local.sweep.database import df_read

    return df_read(path)


def cmd_db2json(args: argparse.Namespace) -> int:
    """Print the database as JSON."""
    from xmanager.xm_local.sweep.database import df_to_json

    if args.orient not in ORIENTS:  # pandas would raise a bare ValueError after reading the whole database.
        raise UsageError(f"-o {args.orient}: not a DataFrame.to_json orient (use one of {', '.join(ORIENTS)})")
    df = _read_db(args.db)
    print(df_to_json(df, orient=args.orient))
    return 0


def _table(df: Any, tablefmt: str, index: bool) -> str:
    """``df`` as psweep-db2table prints it: a ``tabulate`` table (pandas' own text table without tabulate)."""
    try:
        from tabulate import tabulate
    except ImportError:
        print(
            "xmanager sweep: tabulate is not installed; printing a pandas table (pip install tabulate for -f formats)",
            file=sys.stderr,
        )
        return str(df.to_string(index=index))
    return str(tabulate(df, headers="keys", tablefmt=tablefmt, showindex=index))


def cmd_db2table(args: argparse.Namespace) -> int:
    """Print the database as a text table: ``-a`` all columns, else the named ones, else the non-``_`` ones."""
    df = _read_db(args.db)
    if not args.all:
        if args.columns:
            unknown = [column for column in args.columns if column not in df.columns]
            if unknown:
                raise UsageError(f"no columns {unknown} in {args.db} (have: {', '.join(map(str, df.columns))})")
            df = df[args.columns]
        else:
            df = df[[column for column in df.columns if not str(column).startswith("_")]]
    print(_table(df, args.tablefmt, args.index))
    sys.stdout.flush()  # A closed pipe (| head) ends quietly, as psweep-db2table does (cli_errors.run).
    return 0


def cmd_checkdir(args: argparse.Namespace) -> int:
    """Print which ``_pset_id``s lack a folder in the calc dir and which folders lack a database row (JSON)."""
    import json
    import os

    from xmanager.xm_local.sweep.database import check_calc_dir

    if not os.path.isdir(args.calc_dir):
        raise UsageError(f"no calc dir {args.calc_dir}")
    df = _read_db(os.path.join(args.calc_dir, "database.pk"))
    found = check_calc_dir(args.calc_dir, df)
    print(json.dumps({key: sorted(value) for key, value in found.items()}))
    return 0


# ---- arguments (shared by the subcommands and the psweep-* scripts) -----------------------------
def _transfer_arguments(parser: argparse.ArgumentParser, run: Any) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing (put before HOST)")
    parser.add_argument("--calc-dir", default="calc", help="the study folder (default: calc)")
    parser.add_argument(
        "--remote", metavar="DIR", help="the folder on HOST holding calc/ (default: this folder relative to $HOME)"
    )
    parser.add_argument("host", help="ssh host, as in 'ssh HOST'")
    parser.add_argument("rsync_opts", nargs=argparse.REMAINDER, help="extra rsync options, e.g. --delete")
    parser.set_defaults(run=run)


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    _transfer_arguments(parser, cmd_push)


def _pull_arguments(parser: argparse.ArgumentParser) -> None:
    _transfer_arguments(parser, cmd_pull)


def _db2json_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("db", metavar="file", help="database file, e.g. calc/database.pk")
    parser.add_argument(
        "-o", "--orient", default="records", help="DataFrame.to_json(orient=...): split, records (default), index, "
        "columns, values"
    )
    parser.set_defaults(run=cmd_db2json)


def _db2table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("db", metavar="file", help="database file, e.g. calc/database.pk")
    parser.add_argument("columns", metavar="column", nargs="*", help="only these columns")
    parser.add_argument(
        "-f", "--tablefmt", default="simple", help="a tabulate table format: plain, simple (default), grid, pipe, ..."
    )
    parser.add_argument("-a", "--all", action="store_true", help="all columns (default: those not starting with _)")
    parser.add_argument("-i", "--index", action="store_true", help="also the index")
    parser.set_defaults(run=cmd_db2table)


def _checkdir_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("calc_dir", metavar="CALC_DIR", help="the study folder, holding database.pk")
    parser.set_defaults(run=cmd_checkdir)


_TRANSFER_HELP = "Options after HOST go to rsync (so --dry-run after HOST is rsync's own)."
_COMMANDS: dict[str, tuple[str, Any]] = {
    "push": ("copy calc/ to the same folder under HOST's home", _push_arguments),
    "pull": ("copy calc/ back from the same folder under HOST's home", _pull_arguments),
    "db2json": ("print a sweep database as JSON", _db2json_arguments),
    "db2table": ("print a sweep database as a text table", _db2table_arguments),
    "checkdir": ("compare a calc dir's pset folders with its database", _checkdir_arguments),
}


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` command (and its subcommands) to an ``add_subparsers()`` object; returns its parser."""
    sweep = subparsers.add_parser("sweep", help="psweep-style study helpers: " + ", ".join(_COMMANDS))
    commands = sweep.add_subparsers(dest="sweep_command", required=True, metavar="SUBCOMMAND")
    for name, (help_text, add_arguments) in _COMMANDS.items():
        description = f"{help_text}. {_TRANSFER_HELP}" if name in ("push", "pull") else help_text
        parser = commands.add_parser(name, help=help_text, description=description)
        add_arguments(parser)
        parser.set_defaults(run=_reported(parser.get_default("run"), "xmanager sweep"))
    return sweep


def _reported(command: Any, prog: str) -> Any:
    """``command`` with its errors reported by :mod:`~xmanager.xm_local.cli_errors` (one line), returning the status."""

    def run(args: argparse.Namespace) -> int:
        from xmanager.xm_local import cli_errors

        context = cli_errors.Context(prog, verbose=bool(getattr(args, "verbose", False)))
        return cli_errors.run(lambda: int(command(args)), context)

    return run


def _script(name: str, argv: Optional[Sequence[str]]) -> int:
    help_text, add_arguments = _COMMANDS[name]
    parser = argparse.ArgumentParser(
        prog=f"psweep-{name}", description=f"{help_text} (the same as 'xmanager sweep {name}')."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)  # psweep's own usage errors (argparse's text).
    return int(_reported(args.run, f"psweep-{name}")(args))


def psweep_push(argv: Optional[Sequence[str]] = None) -> int:
    """The ``psweep-push`` console script."""
    return _script("push", argv)


def psweep_pull(argv: Optional[Sequence[str]] = None) -> int:
    """The ``psweep-pull`` console script."""
    return _script("pull", argv)


def psweep_db2json(argv: Optional[Sequence[str]] = None) -> int:
    """The ``psweep-db2json`` console script."""
    return _script("db2json", argv)


def psweep_db2table(argv: Optional[Sequence[str]] = None) -> int:
    """The ``psweep-db2table`` console script."""
    return _script("db2table", argv)


def psweep_checkdir(argv: Optional[Sequence[str]] = None) -> int:
    """The ``psweep-checkdir`` console script."""
    return _script("checkdir", argv)


__all__ = [
    "cmd_checkdir",
    "cmd_db2json",
    "cmd_db2table",
    "cmd_pull",
    "cmd_push",
    "psweep_checkdir",
    "psweep_db2json",
    "psweep_db2table",
    "psweep_pull",
    "psweep_push",
    "register",
]
