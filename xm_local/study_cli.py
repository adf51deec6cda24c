"""``xmanager study ...``: create, check, expand and serve study files (the experiment-server format).

``register(subparsers)`` adds the ``study`` command to the ``xmanager`` parser. The subcommands
and their options are named as in experiment-server 0.3.9, with the same short aliases:

    xmanager study new-config-file study.toml         # (n, new) a commented sample study
    xmanager study verify-config-file study.toml      # (v, verify) block orders of participants 1..5
    xmanager study generate-config-json study.toml -r 8 [-d out/]   # (g, generate)
    xmanager study run study.toml [-i N] [-h HOST] [-p PORT] [-a]   # (r) the study server

This module is also experiment-server's ``cli``: :data:`cli` is its command group (the same
subcommands, without ``xmanager study`` in front), usable as ``cli()`` or with click's ``CliRunner``.
The subcommands call experiment-server's functions by their module and name
(``_process_config.verify_config``, ``_api._generate_config_json``, ``_server._server``), so code
that patches those sees the calls.

The study code itself is imported only when a subcommand runs, so ``xmanager --help`` does not pay
for it. An error is reported as one line, ``xmanager: error: <file>[:line], block '...', key '...':
...``, with exit status 2. See docs/studies.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

VERIFY_PARTICIPANTS = 5
DEFAULT_FILE_NAME = "new_config.toml"


def _usage_error(message: str) -> Exception:
    from xmanager.xm_local.cli import UsageError

    return UsageError(message)


def _reported(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turns study errors into the one-line ``xmanager: error: ...`` report (exit status 2)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from xmanager.xm.study.errors import ExperimentServerException

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return command(args)
            except ExperimentServerException as error:
                raise _usage_error(str(error)) from None
            finally:
                shown: set[str] = set()
                for warning in caught:
                    text = str(warning.message)
                    if text not in shown and not issubclass(
                        warning.category, (DeprecationWarning, PendingDeprecationWarning)
                    ):
                        shown.add(text)
                        print(f"xmanager: warning: {text}", file=sys.stderr)

    return run


# ---- new-config-file ----------------------------------------------------------------------------
@_reported
def cmd_new(args: argparse.Namespace) -> int:
    from xmanager.xm.study import utils

    print(f"wrote {utils.new_config_file(args.path)}")
    return 0


# ---- verify-config-file -------------------------------------------------------------------------
def _order_table(orders: list[list[str]]) -> str:
    from xmanager.xm_local.cli import _table

    headers = ["block", *(f"participant_{p}" for p in range(1, len(orders) + 1))]
    depth = max((len(order) for order in orders), default=0)
    rows = [[f"block_{i + 1}", *(order[i] if i < len(order) else "" for order in orders)] for i in range(depth)]
    return _table(headers, rows)


@_reported
def cmd_verify(args: argparse.Namespace) -> int:
    from xmanager.xm.study import config

    valid, reason = config.verify_config(f=args.config)
    if not valid:
        raise _usage_error(str(reason))
    study = config.load_study(args.config)
    orders = [[block["name"] for block in study.blocks_for(p)] for p in range(1, VERIFY_PARTICIPANTS + 1)]
    print(_order_table(orders))
    print(f"{args.config}: valid (participants 1..{VERIFY_PARTICIPANTS} expanded)")
    return 0


# ---- generate-config-json -----------------------------------------------------------------------
def _participant(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a participant number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"participants are numbered from 1, got {value}")
    return value


@_reported
def cmd_generate(args: argparse.Namespace) -> int:
    from xmanager.xm_local.studyserver import state

    if args.participant_range is None and args.participant_index is None:
        raise _usage_error("give -i/--participant-index N or -r/--participant-range N")
    if args.participant_range is not None:
        if args.participant_index is not None:
            print("xmanager: warning: both -i and -r given; -i is ignored", file=sys.stderr)
        participants: Sequence[int] = range(1, args.participant_range + 1)
    else:
        participants = [args.participant_index]
    written = state._generate_config_json(config_file=args.config, participant_indices=participants,
                                          out_dir=args.out_dir)
    for path in written or ():
        print(path)
    return 0


# ---- run ----------------------------------------------------------------------------------------
def _ask_default_participant(default: int) -> int:
    while True:
        answer = input(f"Default participant index [{default}]: ").strip()
        if not answer:
            return default
        try:
            return _participant(answer)
        except argparse.ArgumentTypeError as error:
            print(error, file=sys.stderr)


@_reported
def cmd_run(args: argparse.Namespace) -> int:
    from xmanager.xm_local.studyserver import http

    index = args.default_participant_index
    if args.ask_default_participant_index:
        index = _ask_default_participant(index)
    # experiment-server's four arguments; ours only when given, so that its calls look the same.
    extra: dict[str, Any] = {}
    if args.token is not None:
        extra["token"] = args.token
    if args.insecure:
        extra["insecure"] = True
    try:
        http._server(default_participant_index=index, host=args.host, port=args.port, config_file=args.config, **extra)
    except http.StudyServerError as error:
        raise _usage_error(str(error)) from None
    return 0


# ---- registration -------------------------------------------------------------------------------
def _add_commands(commands: Any) -> None:
    new = commands.add_parser(
        "new-config-file",
        aliases=["n", "new"],
        help="write a commented sample study file",
        description="Write a commented sample study file. A PATH not ending in .toml is a folder: "
        f"the file is PATH/{DEFAULT_FILE_NAME}. Missing folders are created; an existing file is never overwritten.",
    )
    new.add_argument("path", metavar="PATH")
    new.set_defaults(run=cmd_new)

    verify = commands.add_parser(
        "verify-config-file",
        aliases=["v", "verify"],
        help="check a study file and print the block orders of participants 1..5",
    )
    verify.add_argument("config", metavar="CONFIG")
    verify.set_defaults(run=cmd_verify)

    generate = commands.add_parser(
        "generate-config-json",
        aliases=["g", "generate"],
        help="expand a study file into the block configs of participants, as JSON",
        description="Expand a study file for one participant (-i) or participants 1..N (-r; it wins over -i). "
        "Without -d, print one JSON list of block configs per participant, one per line; with -d, write "
        "DIR/<config stem>-participant_<N>.json for each.",
    )
    generate.add_argument("config", metavar="CONFIG")
    generate.add_argument("-i", "--participant-index", type=_participant, metavar="N", help="only participant N")
    generate.add_argument("-r", "--participant-range", type=_participant, metavar="N", help="participants 1..N")
    generate.add_argument("-d", "--out-dir", metavar="DIR", help="write one file per participant here (created)")
    generate.set_defaults(run=cmd_generate)

    # experiment-server spells the host -h, so this subcommand's help is --help only.
    run = commands.add_parser(
        "run", aliases=["r"], add_help=False, help="serve the study over HTTP (experiment-server's REST API)",
        description="Serve the study: experiment-server's REST API, participants kept across restarts.",
    )
    run.add_argument("--help", action="help", help="show this help message and exit")
    run.add_argument("config", metavar="CONFIG")
    run.add_argument("-i", "--default-participant-index", type=_participant, default=1, metavar="N")
    run.add_argument("-h", "--host", default="127.0.0.1")
    run.add_argument("-p", "--port", default="5000")
    run.add_argument("-a", "--ask-default-participant-index", action="store_true",
                     help="ask for the default participant index on the terminal")
    run.add_argument("--token", default=os.environ.get("XM_STUDY_TOKEN"),
                     help="required for POST/PUT as 'Authorization: Bearer TOKEN' (default: $XM_STUDY_TOKEN); "
                     "needed to bind anything but 127.0.0.1")
    run.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without a token")
    run.set_defaults(run=cmd_run)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``study`` command (and its subcommands) to an ``add_subparsers()`` object; returns its parser."""
    study = subparsers.add_parser(
        "study", help="study designs: new-config-file, verify-config-file, generate-config-json, run"
    )
    _add_commands(study.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND"))
    return study


class ExperimentServerCli:
    """experiment-server's ``cli`` command group: ``cli()`` runs it on ``sys.argv[1:]``.

    ``main(args, prog_name, standalone_mode)`` is the call click's ``CliRunner`` makes: in standalone mode
    it ends with ``SystemExit`` (0, or 2 after a one-line error), else it returns the exit status.
    """

    name = "experiment-server"

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        del extra
        from xmanager.xm_local.cli import UsageError

        prog = prog_name or self.name
        parser = argparse.ArgumentParser(prog=prog, description="Study files and the study server "
                                         "(experiment-server's command line).")
        _add_commands(parser.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND"))
        parsed = parser.parse_args(list(sys.argv[1:] if args is None else args))
        try:
            code = parsed.run(parsed)
        except UsageError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            code = 2
        if standalone_mode:
            raise SystemExit(code)
        return code

    def __call__(self, args: Sequence[str] | None = None, **kwargs: Any) -> int:
        return self.main(args, **kwargs)


#: experiment-server's command group (its console script is ``experiment-server = experiment_server.cli:cli``).
cli = ExperimentServerCli()


def __getattr__(name: str) -> Any:
    if name == "SAMPLE_CONFIG":  # The sample study file, loaded (with xmanager.xm.study) only when asked for.
        from xmanager.xm.study.sample import SAMPLE_CONFIG

        return SAMPLE_CONFIG
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [  # noqa: F822 - SAMPLE_CONFIG comes from __getattr__
    "SAMPLE_CONFIG",
    "ExperimentServerCli",
    "cli",
    "cmd_generate",
    "cmd_new",
    "cmd_verify",
    "register",
]
