"""The ``xmanager`` command: launch scripts, list and inspect experiments, cancel, export.

``xmanager launch script.py -- --flag=value`` imports the script with its folder on
``sys.path`` and runs its ``main(argv)`` through absl, like XManager; XManager's
``--xm_*`` flags (``xmanager.xm_flags``) are understood. Every failure goes through
:mod:`.cli_errors`: one line naming what and where (an error inside the launch script at the
script's own line), exit status 2 for usage and input errors and 1 when units failed;
``xmanager -v ...`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from xmanager.xm_local import config
from xmanager.xm_local.cli_errors import EXIT_FAILED_UNITS, FailedUnits, UsageError, shown

if TYPE_CHECKING:
    from xmanager.xm_local.experiment import LocalExperiment

#: Experiment ids are SQLite/PostgreSQL BIGINTs.
_MAX_ID = 2**63 - 1


# ---- launch -------------------------------------------------------------------------------------
def _import_script(path: str) -> Any:
    if not os.path.exists(path):
        raise UsageError(f"no launch script at {path!r}")
    if not os.path.isfile(path):
        raise UsageError(f"{path!r} is not a file")
    try:
        with open(path, "rb") as handle:
            if b"\0" in handle.read():
                raise UsageError(f"{path}: not a Python launch script (it holds NUL bytes)")
    except OSError as error:
        raise UsageError(f"cannot read the launch script {path!r}: {error.strerror}") from None
    folder = os.path.dirname(path)
    name = os.path.splitext(os.path.basename(path))[0]
    sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # Its errors are reported at the script's line (cli_errors).
    return module


def _failed_units(experiment_ids: list[int]) -> int:
    from xmanager.xm_local.experiment import get_experiment

    return sum(get_experiment(experiment_id).status_counts.get("failed", 0) for experiment_id in experiment_ids)


def _apply_xm_flags() -> None:
    """Acts on the XManager flags that mean something here (see docs/xmanager.md); the rest are accepted."""
    from xmanager import xm_flags
    from xmanager.executors.packaging import resolve_path

    if not xm_flags.value(xm_flags.BUILD_IMAGE_LOCALLY):
        raise UsageError("--noxm_build_image_locally asks for Google Cloud Build, which this launcher does not use: "
                         "images are built on the Docker engine at DOCKER_HOST")
    yaml_path = xm_flags.value(xm_flags.DB_YAML_CONFIG_PATH)
    if yaml_path:
        try:
            os.environ[config.DATABASE_ENV] = config.database_url_from_yaml(resolve_path(yaml_path))
        except ValueError as error:
            raise UsageError(f"--xm_db_yaml_config_path: {error}") from None


def cmd_launch(args: argparse.Namespace) -> int:
    script = os.path.abspath(args.script)
    os.environ["XM_LAUNCH_SCRIPT"] = script  # Relative paths in specs resolve against it.
    module = _import_script(script)
    main = getattr(module, "main", None)
    if not callable(main):
        raise UsageError(f"{args.script} defines no main(argv) function")
    script_args = list(args.script_args)
    if script_args and script_args[0] == "--":
        script_args = script_args[1:]
    from absl import app, flags
    from xmanager import xm_flags  # noqa: F401 - XManager's --xm_* flags, before parsing.
    from xmanager.xm_local.experiment import created_experiments

    def run_main(argv: list[str]) -> Any:
        _apply_xm_flags()
        return main(argv)

    created: list[int] = []
    created_experiments.set(created)
    try:
        app.run(run_main, argv=[script, f"--xm_launch_script={script}", *script_args],
                flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            return exit_.code if isinstance(exit_.code, int) else EXIT_FAILED_UNITS
    failed = _failed_units(created)
    if failed:
        raise FailedUnits(f"{failed} work unit(s) failed")
    return 0


# ---- inspection ---------------------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _when(timestamp: Optional[float]) -> str:
    return "" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no units"


def cmd_list(args: argparse.Namespace) -> int:
    from xmanager.xm_local.experiment import list_experiments

    experiments = list_experiments(title=args.title, tag=args.tag, limit=None if args.all else args.limit)
    rows = [
        (e.experiment_id, e.title, ",".join(e.tags), _when(e.created_at), e.work_unit_count, _summary(e.status_counts))
        for e in experiments
    ]
    print(_table(("ID", "TITLE", "TAGS", "CREATED", "UNITS", "STATUS"), rows) if rows else "no experiments")
    return 0


def experiment_id(text: str) -> int:
    """An argparse type: an experiment id (a number the store can hold)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"experiment id must be a number, got {shown(text)}") from None
    if not 0 <= number <= _MAX_ID:
        raise argparse.ArgumentTypeError(f"no experiment {shown(text)}: ids are numbers from 0 to {_MAX_ID}")
    return number


def unit_id(text: str) -> int:
    """An argparse type: a work unit id (1, 2, ...)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"work unit id must be a number, got {shown(text)}") from None
    if not 0 <= number <= _MAX_ID:
        raise argparse.ArgumentTypeError(f"no work unit {shown(text)}: ids are numbers from 1 to {_MAX_ID}")
    return number


def _experiment(experiment_id: int) -> LocalExperiment:
    from xmanager.xm_local.experiment import get_experiment

    return get_experiment(experiment_id)


def _compact(value: dict[str, Any], width: int = 60) -> str:
    text = " ".join(f"{k}={v}" for k, v in value.items())
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_show(args: argparse.Namespace) -> int:
    experiment = _experiment(args.experiment_id)
    experiment.refresh()  # Units on cluster executors: one status query per executor.
    print(f"experiment {experiment.experiment_id}: {experiment.title!r}  created {_when(experiment.created_at)}")
    if experiment.tags:
        print(f"tags: {', '.join(experiment.tags)}")
    print(f"units: {_summary(experiment.status_counts)}")
    units = experiment.work_units.values()
    rows = []
    for unit in units:
        status = unit.get_status()
        exit_code = "" if status.exit_code is None else status.exit_code
        rows.append((unit.work_unit_id, status.status, exit_code, _compact(unit.args), _compact(unit.results),
                     status.message))
    if rows:
        print(_table(("WU", "STATUS", "EXIT", "ARGS", "RESULTS", "MESSAGE"), rows))
    # Executors with a web console (Vertex AI) give each job a link.
    links = [(unit.work_unit_id, job.name, job.console_url) for unit in units for job in unit.jobs.values()
             if job.console_url]
    if links:
        print("links:")
        for unit_id, job_name, url in links:
            print(f"  {unit_id} {job_name}: {url}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    experiment = _experiment(args.experiment_id)
    message = "cancelled by xmanager cancel"
    if not args.work_units:
        count = experiment.cancel(message)
    else:
        units = experiment.work_units
        missing = [str(number) for number in args.work_units if number not in units]
        if missing:  # Nothing is cancelled when any id is wrong: a typo must not stop the units named beside it.
            raise UsageError(
                f"experiment {experiment.experiment_id} has no work unit {', '.join(missing)} "
                f"(it has {_id_ranges(sorted(units))}); nothing cancelled"
            )
        count = 0
        for number in dict.fromkeys(args.work_units):
            unit = units[number]
            if unit.get_status().is_active:
                count += 1
                unit.stop(message=message)
    print(f"cancelled {count} work unit(s) of experiment {experiment.experiment_id}")
    return 0


def _id_ranges(ids: Sequence[int]) -> str:
    """``1-3, 5`` for [1, 2, 3, 5]; ``no work units`` for []."""
    if not ids:
        return "no work units"
    parts: list[str] = []
    start = previous = ids[0]
    for number in [*ids[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return "units " + ", ".join(parts)


def cmd_logs(args: argparse.Namespace) -> int:
    experiment = _experiment(args.experiment_id)
    units = list(experiment.work_units.values())
    if args.work_unit is not None:
        units = [unit for unit in units if unit.work_unit_id == args.work_unit]
        if not units or not units[0].jobs:
            raise UsageError(f"experiment {experiment.experiment_id} has no work unit {args.work_unit}")
    streams = ("stdout", "stderr") if args.stream == "both" else (args.stream,)
    for unit in units:
        for job in unit.jobs.values():
            if args.job and job.name != args.job:
                continue
            files = unit.logs(job.name)
            for stream in streams:
                path = getattr(files, stream)
                print(f"==> work unit {unit.work_unit_id}, job {job.name}, {stream}: {path} <==")
                if path and os.path.exists(path):
                    with open(path, encoding="utf-8", errors="replace") as log:
                        sys.stdout.write(log.read())
                else:
                    print("(no output)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from xmanager.xm_local import export

    experiment = _experiment(args.experiment_id)
    done = export.export(experiment, args.format, args.output, metrics=args.metrics)
    print(done, file=sys.stderr if args.output == export.STDOUT else sys.stdout)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from xmanager.xm_local.ui import command

    return command.run(args.host, args.port, args.token, args.database_url or config.database_url())


# ---- entry point --------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with its errors as UsageError, so they are one line like every other (subcommands inherit it)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("xmanager").strip()
        raise UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xmanager", description="Launch experiments and inspect their results.")
    parser.add_argument("--db", metavar="URL", help=f"database URL (default: ${config.DATABASE_ENV} or the SQLite file)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the traceback of an error too")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    launch = commands.add_parser("launch", help="run a launch script's main(argv)")
    launch.add_argument("script")
    launch.add_argument("script_args", nargs=argparse.REMAINDER, help="flags for the script, after --")
    launch.set_defaults(run=cmd_launch)

    listing = commands.add_parser("list", help="list experiments, newest first")
    listing.add_argument("--title", help="title substring (* as wildcard)")
    listing.add_argument("--tag")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--all", action="store_true", help="no limit")
    listing.set_defaults(run=cmd_list)

    show = commands.add_parser("show", help="an experiment's work units and their statuses")
    show.add_argument("experiment_id", type=experiment_id)
    show.set_defaults(run=cmd_show)

    cancel = commands.add_parser("cancel", help="cancel an experiment's unfinished work units (or one of them)")
    cancel.add_argument("experiment_id", type=experiment_id)
    cancel.add_argument("work_units", metavar="work_unit", nargs="*", type=unit_id, help="only these work units")
    cancel.set_defaults(run=cmd_cancel)

    logs = commands.add_parser("logs", help="print the logs of an experiment's jobs")
    logs.add_argument("experiment_id", type=experiment_id)
    logs.add_argument("work_unit", nargs="?", type=unit_id)
    logs.add_argument("--job", help="only this job of each unit")
    logs.add_argument("--stream", choices=("stdout", "stderr", "both"), default="both")
    logs.set_defaults(run=cmd_logs)

    export = commands.add_parser("export", help="write an experiment's table (or its metrics) to a file")
    export.add_argument("experiment_id", type=experiment_id)
    export.add_argument("--format", choices=("csv", "parquet", "pickle", "json", "tensorboard"), default="csv",
                        help="json: one object per unit; tensorboard: a folder of event files, a run per unit")
    export.add_argument("-o", "--output", help="the file (a folder for tensorboard); - writes to stdout")
    export.add_argument("--metrics", action="store_true",
                        help="the metrics over time (work_unit_id, step, time, name, value) instead of the units")
    export.set_defaults(run=cmd_export)

    dashboard = commands.add_parser("ui", help="serve the dashboard: experiments, units, logs and metrics in a browser")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    dashboard.add_argument("--port", type=int, default=8050, help="port (default: 8050; 0 picks a free one)")
    dashboard.add_argument("--token", help="access token, needed to serve beyond loopback and then to cancel "
                           "(default: $XM_UI_TOKEN)")
    dashboard.add_argument("--database-url", metavar="URL", help="the store (default: --db, $XM_DATABASE_URL or the SQLite file)")
    dashboard.set_defaults(run=cmd_ui)

    from xmanager.xm_local.sweep import cli as sweep_cli

    sweep_cli.register(commands)
    from xmanager.xm_local import study_cli  # The study code itself is imported only when a subcommand runs.

    study_cli.register(commands)
    from xmanager.testing import devcluster_cli  # Test servers (not for production), loaded when the command runs.

    devcluster_cli.register(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from xmanager.xm_local import cli_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    context = cli_errors.Context("xmanager", verbose=_verbose(argv))

    def command() -> int:
        args = _parser().parse_args(argv)
        if args.db:
            os.environ[config.DATABASE_ENV] = args.db
        if args.command == "launch":
            context.user_files.append(os.path.abspath(args.script))  # Its errors are reported at its own lines.
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)

    return cli_errors.run(command, context)


def _verbose(argv: Sequence[str]) -> bool:
    """Whether -v/--verbose comes before the command (read before parsing, so parse errors see it too)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-v", "--verbose"):
            return True
        elif arg == "--db":
            skip = True  # Its value follows.
        elif not arg.startswith("-") or arg == "--":
            return False
    return False


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()


__all__ = ["entrypoint", "main"]
