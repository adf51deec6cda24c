"""``xmanager study ...``: experiment-server 0.3.9's command line (create, check, expand and serve study files).

``register(subparsers)`` adds the ``study`` command to the ``xmanager`` parser; everything after ``study`` is
read as experiment-server reads its own arguments, so ``xmanager study ARGS`` does what ``experiment-server
ARGS`` does: the same subcommands and aliases, options, help page layout, messages (loguru-style log lines
on stderr), files, stdout bytes and exit statuses (see docs/studies.md), except that the help pages'
descriptions and the sample file's text are ours, and that ``run`` on an address other than loopback needs
``--token TOKEN`` (or ``--insecure``):

    xmanager study new-config-file study.toml         # (n, new) our commented sample study file
    xmanager study verify-config-file study.toml      # (v, verify) block orders of participants 1..5
    xmanager study generate-config-json study.toml -r 8 [-d out/]   # (g, generate)
    xmanager study run study.toml [-i N] [-h HOST] [-p PORT] [-a]   # (r) the study server

Where experiment-server crashes with a traceback (exit status 1), one line ``xmanager: error: ...`` is
printed instead, with the same exit status. This module is also experiment-server's ``cli``: :data:`cli` is
its command group, usable as ``cli()`` or with click's ``CliRunner``. The subcommands call
experiment-server's functions by their module and name (``_process_config.verify_config``,
``_api._generate_config_json``, ``_server._server``), so code that patches those sees the calls. The study
code itself is imported only when a subcommand runs, so ``xmanager --help`` does not pay for it.
"""

from __future__ import annotations

import argparse
import functools
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

GROUP_HELP = """
Options:
  --help  Show this message and exit.

Commands:
  generate-config-json (g,generate)
                                  Write participants' block configs as JSON.
  new-config-file (n,new)         Write a commented sample study file.
  run (r)                         Serve the study in CONFIG_FILE over HTTP.
  verify-config-file (v,verify)   Check a study file by expanding it.
"""

_HELP_OPTION = "  --help  Show this message and exit.\n"


def _ask_default_participant_index(values: dict[str, Any], given: set[str]) -> None:
    """``-a``: prompt for the default participant index (click's prompt, its messages and its checks)."""
    if not values.get("ask_default_participant_index"):
        return
    if "default_participant_index" in given:
        log.warning(
            "The value passed for `default_participant_index` (-i) is being overwritten with "
            "`ask_default_participant_index` (-a)."
        )
    default = values.get("default_participant_index", 1)
    while True:
        sys.stdout.write(f"Default participant index [{default}]:")
        sys.stdout.flush()
        try:
            answer = input(" ")
        except (EOFError, KeyboardInterrupt):
            raise _Aborted from None
        if not answer:
            values["default_participant_index"] = default
            return
        try:
            number = int(answer)
        except ValueError:
            print(f"Error: {answer!r} is not a valid integer range.")
            continue
        if number < 1:
            print(f"Error: {number} is not in the range x>=1.")
            continue
        values["default_participant_index"] = number
        return


class _Aborted(Exception):  # noqa: N818 - click's Abort
    pass


def _refused(message: str) -> Exception:
    """A refusal of ours: one line, exit status 2."""
    from xmanager.xm_local.cli_errors import UsageError

    return UsageError(message)


@functools.cache
def commands() -> tuple[Any, ...]:
    """The subcommands, as :class:`~xmanager.xm_local.studyserver.cli_parser.Command` (built when first asked for)."""
    from xmanager.xm_local.studyserver.cli_parser import Command, Option

    return _COMMANDS(Command, Option)


def _COMMANDS(Command: Any, Option: Any) -> tuple[Any, ...]:  # noqa: N802, N803 - reads as the table it is
    return (
        Command(
            "generate-config-json", ("g", "generate"), "CONFIG_FILE", "path",
            (
                Option(("-i", "--participant-index"), "participant_index", "int"),
                Option(("-r", "--participant-range"), "participant_range", "int"),
                Option(("-d", "--out-dir"), "out_dir", "dir"),
            ),
            "\n  Write participants' block configs as JSON.\n\n"
            "  Expands CONFIG_FILE for one participant (-i N) or for participants 1 to N\n"
            "  (-r N; with both, -r wins) and writes, for each participant, the list of its\n"
            "  blocks' configs. With -d, each list goes to a file of its own,\n"
            "  DIRECTORY/<name>-participant_<N>.json, where <name> is CONFIG_FILE's name\n"
            "  without `.toml`, and the folder is created if it is missing; without -d, the\n"
            "  lists are printed to stdout back to back, with nothing between them.\n\n"
            "Options:\n"
            "  -i, --participant-index INTEGER\n"
            "  -r, --participant-range INTEGER\n"
            "  -d, --out-dir DIRECTORY\n"
            "  --help                          Show this message and exit.\n",
        ),
        Command(
            "new-config-file", ("n", "new"), "NEW_FILE_LOCATION", "text", (),
            "\n  Write a commented sample study file.\n\n"
            "  If NEW_FILE_LOCATION ends in `.toml`, it names the file to write, and\n"
            "  missing parent folders are made. Any other location is taken as a folder to\n"
            "  create (with its parents), and the file is written in it as\n"
            "  `new_config.toml`. An existing file is never overwritten, and an existing\n"
            "  location that does not end in `.toml` is refused.\n\n"
            "Options:\n" + _HELP_OPTION,
        ),
        Command(
            "run", ("r",), "CONFIG_FILE", "text",
            (
                Option(("-i", "--default-participant-index"), "default_participant_index", "int>=1", 1, eager=True),
                Option(("-h", "--host"), "host", "text", "127.0.0.1"),
                Option(("-p", "--port"), "port", "text", "5000"),
                Option(("-a", "--ask-default-participant-index"), "ask_default_participant_index", "flag",
                       callback=_ask_default_participant_index),
            ),
            "\n  Serve the study in CONFIG_FILE over HTTP.\n\n"
            "  Starts the study server (experiment-server's REST API under /api/, and a web\n"
            "  page at /) on HOST:PORT, 127.0.0.1:5000 unless -h or -p say otherwise.\n"
            "  Requests that name no participant act on the default participant index: -i,\n"
            "  or typed in at a prompt with -a. Edits to CONFIG_FILE are picked up by the\n"
            "  next API request.\n\n"
            "Options:\n"
            "  -i, --default-participant-index INTEGER RANGE\n"
            "                                  [x>=1]\n"
            "  -h, --host TEXT\n"
            "  -p, --port TEXT\n"
            "  -a, --ask-default-participant-index\n"
            "  --help                          Show this message and exit.\n",
            # Ours, off the help page so that it lists 0.3.9's options only: an access token for POST and PUT
            # (default $XM_STUDY_TOKEN; needed to bind anything but loopback), serving another address without
            # one, and keeping the participants in <config>.participants.sqlite3.
            hidden=(
                Option(("--token",), "token", "text", None),
                Option(("--insecure",), "insecure", "flag"),
                Option(("--persist",), "persist", "flag"),
            ),
        ),
        Command(
            "verify-config-file", ("v", "verify"), "CONFIG_FILE", "path", (),
            "\n  Check a study file by expanding it.\n\n"
            "  Expands CONFIG_FILE for participants 1 to 5 and logs a table of the blocks\n"
            "  each of them gets, in order. If the file has a problem, the error is logged\n"
            "  with its traceback instead.\n\n"
            "Options:\n" + _HELP_OPTION,
        ),
    )


# ---- the subcommands (experiment-server's function names, which its log lines show) -------------------
def verify_config_file(values: dict[str, Any]) -> int:
    from xmanager.xm.study import config

    config.verify_config(f=values["argument"])
    return 0


def generate_config_json(values: dict[str, Any]) -> int:
    from xmanager.xm.study.errors import ExperimentServerException
    from xmanager.xm_local.studyserver import state

    index, count = values["participant_index"], values["participant_range"]
    if index is None and count is None:
        log.error("Both `participant-index` and `participant-range` cannot be empty.")
        return 0
    if index is not None and count is not None:
        log.error("Both `participant-index` and `participant-range` provided. Ignoring `participant-index`.")
    try:
        state._generate_config_json(
            config_file=values["argument"],
            participant_indices=range(1, count + 1) if count is not None else [index],
            out_dir=values["out_dir"],
        )
    except ExperimentServerException:  # Logged and done, as loguru's logger.catch does there.
        log.error(
            "An error has been caught in function 'generate_config_json', process '%s' (%d), thread '%s' (%d):",
            multiprocessing.current_process().name, os.getpid(), threading.current_thread().name,
            threading.get_ident(), exc_info=True,
        )
    return 0


def new_config_file(values: dict[str, Any]) -> int:
    from xmanager.xm.study import utils

    utils.new_config_file(values["argument"])
    return 0


def run(values: dict[str, Any]) -> int:
    from xmanager.xm_local.studyserver import http

    index = values["default_participant_index"]
    host = values["host"]
    # experiment-server's four arguments; ours only when given, so that its calls look the same.
    extra: dict[str, Any] = {}
    token = values.get("token") or os.environ.get("XM_STUDY_TOKEN")
    if token is not None:
        extra["token"] = token
    if values.get("insecure"):
        extra["insecure"] = True
    elif not token and not http.is_loopback(host):  # Unlike 0.3.9: anyone who can reach it could move participants.
        raise _refused(
            f"refusing to serve on {host!r} without an access token, as anyone who can reach it could move participants: "
            "pass --token TOKEN (clients send `Authorization: Bearer TOKEN` on POST and PUT), or --insecure to serve "
            "without one, as experiment-server does"
        )
    if values.get("persist"):
        extra["persist"] = True
    http._server(default_participant_index=index if index > 0 else None, host=host, port=values["port"],
                 config_file=values["argument"], **extra)
    return 0


_HANDLERS = {
    "generate-config-json": generate_config_json,
    "new-config-file": new_config_file,
    "run": run,
    "verify-config-file": verify_config_file,
}


def _crash_text(error: BaseException) -> str:
    """One line for an error experiment-server would crash on: ``[where: ]Kind: message``."""
    from xmanager.xm.study.errors import StudyConfigError

    builtin: type = type(error)  # Or the built-in exception class a StudyConfigError kind also is.
    if isinstance(error, StudyConfigError):
        builtin = next(c for c in type(error).__mro__ if not issubclass(c, StudyConfigError))
        where = f"{error.location}: " if error.location else ""
        return f"{where}{builtin.__name__}: {error.detail}"
    return f"{builtin.__name__}: {error}"


#: The commands whose argument is a study file, read as UTF-8 TOML.
_READS_CONFIG = ("generate-config-json", "run", "verify-config-file")


def _check_utf8(path: str) -> None:
    """A study file that is not UTF-8 text is refused in one line (0.3.9 logs or prints a UnicodeDecodeError traceback)."""
    from xmanager.xm_local.cli_errors import UsageError

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return  # Missing or unreadable: the command reports it as 0.3.9 does.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); study files are UTF-8 TOML"
        ) from None


def main(argv: Sequence[str], prog: str = "xmanager study", name: str = "xmanager", verbose: bool = False) -> int:
    """Run one command line (``argv`` after the program); the exit status. Errors go through
    :mod:`xmanager.xm_local.cli_errors`, reported as ``name: error:`` (``verbose``: with the traceback)."""
    from xmanager.xm_local import cli_errors
    from xmanager.xm_local.studyserver import cli_parser
    from xmanager.xm_local.studyserver.loglines import to_stderr

    def command() -> int:
        try:
            command, values = cli_parser.parse(prog, commands(), GROUP_HELP, list(argv))
        except cli_parser.ParseExit as end:
            (sys.stdout if end.stream == "stdout" else sys.stderr).write(end.text)
            return end.code
        except _Aborted:
            print("Aborted!", file=sys.stderr)
            return 1
        if command.name in _READS_CONFIG:
            _check_utf8(values["argument"])
        try:
            return _HANDLERS[command.name](values)
        except (cli_errors.UsageError, BrokenPipeError):
            raise
        except Exception as error:  # experiment-server crashes here (a traceback, exit status 1): one line, status 1.
            raise cli_errors.CommandFailed(_crash_text(error), 1) from error

    with to_stderr():
        return cli_errors.run(command, cli_errors.Context(name, verbose=verbose))


# ---- registration -------------------------------------------------------------------------------
def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``study`` command to an ``add_subparsers()`` object; what follows ``study`` is read by :func:`main`."""
    study = subparsers.add_parser(
        "study",
        help="study designs: new-config-file, verify-config-file, generate-config-json, run (experiment-server's CLI)",
        add_help=False,
        prefix_chars="\x1f",  # Nothing after `study` is an option of this parser: main() reads it all.
    )
    study.add_argument("argv", nargs=argparse.REMAINDER, help="the study command and its arguments (see xmanager study --help)")
    study.set_defaults(run=lambda args: main(args.argv, verbose=getattr(args, "verbose", False)))
    return study


class ExperimentServerCli:
    """experiment-server's ``cli`` command group: ``cli()`` runs it on ``sys.argv[1:]``.

    ``main(args, prog_name, standalone_mode)`` is the call click's ``CliRunner`` makes: in standalone mode it
    ends with ``SystemExit`` (the exit status), else it returns the exit status.
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
        prog = prog_name or self.name
        code = main(list(sys.argv[1:] if args is None else args), prog=prog, name=prog)
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
    "commands",
    "main",
    "register",
]
