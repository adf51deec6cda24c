"""``xmanager sweep ...``: psweep's command-line helpers (push, pull, db2json, db2table).

``register(subparsers)`` adds the ``sweep`` command to the ``xmanager`` parser. Every
subcommand sets ``run`` (a function of the parsed arguments returning the exit status),
like the other ``xmanager`` commands.

    xmanager sweep push HOST [RSYNC_OPTS...]     # ssh HOST mkdir -pv ...; rsync calc/ HOST:.../calc/
    xmanager sweep pull HOST [RSYNC_OPTS...]     # rsync HOST:.../calc ./
    xmanager sweep db2json calc/database.pk      # the database as JSON on stdout (for jq)
    xmanager sweep db2table calc/database.pk [COLUMN...] [-a]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

EXIT_ERROR = 2


def _error(message: str, code: int = EXIT_ERROR) -> int:
    print(f"xmanager sweep: error: {message}", file=sys.stderr)
    return code


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
        return _error(f"{error.filename or error}: command not found")
    except subprocess.CalledProcessError as error:
        return _error(f"{error.cmd[0]} exited with status {error.returncode}", code=error.returncode or 1)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Copy ``calc/`` to the host."""
    return _transfer(args, "push")


def cmd_pull(args: argparse.Namespace) -> int:
    """Copy ``calc/`` back from the host."""
    return _transfer(args, "pull")


def _read_db(path: str) -> Any:
    import os

    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    from xmanager.xm_local.sweep.database import df_read

    return df_read(path)


def cmd_db2json(args: argparse.Namespace) -> int:
    """Print the database as JSON."""
    from xmanager.xm_local.sweep.database import df_to_json

    try:
        df = _read_db(args.db)
    except FileNotFoundError:
        return _error(f"no database {args.db}")
    print(df_to_json(df, orient=args.orient))
    return 0


def cmd_db2table(args: argparse.Namespace) -> int:
    """Print the database as a plain text table; book-keeping (``_``) columns only with ``-a``."""
    try:
        df = _read_db(args.db)
    except FileNotFoundError:
        return _error(f"no database {args.db}")
    if args.columns:
        unknown = [column for column in args.columns if column not in df.columns]
        if unknown:
            return _error(f"no columns {unknown} in {args.db} (have: {', '.join(map(str, df.columns))})")
        df = df[args.columns]
    elif not args.all:
        df = df[[column for column in df.columns if not str(column).startswith("_")]]
    print(df.to_string(index=args.index))
    return 0


def _add_transfer(commands: Any, name: str, help_text: str, run: Any) -> None:
    parser = commands.add_parser(
        name,
        help=help_text,
        description=f"{help_text}. Options after HOST go to rsync (so --dry-run after HOST is rsync's own).",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing (put before HOST)")
    parser.add_argument("--calc-dir", default="calc", help="the study folder (default: calc)")
    parser.add_argument(
        "--remote", metavar="DIR", help="the folder on HOST holding calc/ (default: this folder relative to $HOME)"
    )
    parser.add_argument("host", help="ssh host, as in 'ssh HOST'")
    parser.add_argument("rsync_opts", nargs=argparse.REMAINDER, help="extra rsync options, e.g. --delete")
    parser.set_defaults(run=run)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` command (and its subcommands) to an ``add_subparsers()`` object; returns its parser."""
    sweep = subparsers.add_parser("sweep", help="psweep-style study helpers: push, pull, db2json, db2table")
    commands = sweep.add_subparsers(dest="sweep_command", required=True, metavar="SUBCOMMAND")
    _add_transfer(commands, "push", "copy calc/ to the same folder under HOST's home", cmd_push)
    _add_transfer(commands, "pull", "copy calc/ back from the same folder under HOST's home", cmd_pull)

    db2json = commands.add_parser("db2json", help="print a sweep database as JSON")
    db2json.add_argument("db", help="database file, e.g. calc/database.pk")
    db2json.add_argument("-o", "--orient", default="records", help="pandas JSON orient (default: records)")
    db2json.set_defaults(run=cmd_db2json)

    db2table = commands.add_parser("db2table", help="print a sweep database as a text table")
    db2table.add_argument("db", help="database file, e.g. calc/database.pk")
    db2table.add_argument("columns", nargs="*", help="only these columns")
    db2table.add_argument("-a", "--all", action="store_true", help="also the book-keeping columns (names starting _)")
    db2table.add_argument("-i", "--index", action="store_true", help="also the index")
    db2table.set_defaults(run=cmd_db2table)
    return sweep


__all__ = ["cmd_db2json", "cmd_db2table", "cmd_pull", "cmd_push", "register"]
