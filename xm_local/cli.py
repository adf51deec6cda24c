"""The ``xmanager`` command: launch scripts, list and inspect experiments, cancel, export.

``xmanager launch script.py -- --flag=value`` imports the script with its folder on
``sys.path`` and runs its ``main(argv)`` through absl, like XManager; XManager's
``--xm_*`` flags (``xmanager.xm_flags``) are understood. The exit status is non-zero
when a unit of an experiment it launched failed. Bad input (missing script, no ``main``,
unknown id, unusable database URL) and a missing service (no Docker engine, no cloud
credentials, no Bazel) get one line, no traceback.
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

if TYPE_CHECKING:
    from xmanager.xm_local.experiment import LocalExperiment

EXIT_BAD_INPUT = 2
EXIT_FAILED_UNITS = 1


class UsageError(Exception):
    """Bad input: reported as one line."""


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    print(f"xmanager: error: {message}", file=sys.stderr)
    raise SystemExit(code)


# ---- launch -------------------------------------------------------------------------------------
def _import_script(path: str) -> Any:
    if not os.path.exists(path):
        raise UsageError(f"no launch script at {path!r}")
    if not os.path.isfile(path):
        raise UsageError(f"{path!r} is not a file")
    folder = os.path.dirname(path)
    name = os.path.splitext(os.path.basename(path))[0]
    sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise UsageError(f"{error.filename}:{error.lineno}: SyntaxError: {error.msg}") from None
    return module


def _failed_units(experiment_ids: list[int]) -> int:
    from xmanager.xm_local.experiment import get_experiment

    return sum(get_experiment(experiment_id).status_counts.get("failed", 0) for experiment_id in experiment_ids)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


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
    from xmanager.executors.api import LaunchError
    from xmanager.xm.core import ExperimentFailedError
    from xmanager.xm_local.experiment import created_experiments

    def run_main(argv: list[str]) -> Any:
        _apply_xm_flags()
        return main(argv)

    created: list[int] = []
    created_experiments.set(created)
    try:
        app.run(run_main, argv=[script, f"--xm_launch_script={script}", *script_args], flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            return exit_.code if isinstance(exit_.code, int) else 1
    except ExperimentFailedError as error:
        print(f"xmanager: {error}", file=sys.stderr)
        return EXIT_FAILED_UNITS
    except LaunchError as error:
        print(f"xmanager: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILED_UNITS
    except KeyboardInterrupt:
        print("xmanager: interrupted", file=sys.stderr)
        return 130
    failed = _failed_units(created)
    if failed:
        print(f"xmanager: {failed} work unit(s) failed", file=sys.stderr)
        return EXIT_FAILED_UNITS
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


def _experiment(experiment_id: str) -> LocalExperiment:
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
    if args.work_unit is None:
        count = experiment.cancel(message)
    else:
        unit = experiment.work_units.get(args.work_unit)
        count = int(unit is not None and unit.get_status().is_active)
        if unit is not None:
            unit.stop(message=message)
    print(f"cancelled {count} work unit(s) of experiment {experiment.experiment_id}")
    return 0


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
    experiment = _experiment(args.experiment_id)
    frame = experiment.to_dataframe()
    extension = {"csv": "csv", "parquet": "parquet", "pickle": "pkl"}[args.format]
    output = args.output or f"experiment_{experiment.experiment_id}.{extension}"
    if args.format == "csv":
        frame.to_csv(output, index=False)
    elif args.format == "parquet":
        try:
            frame.to_parquet(output, index=False)
        except ImportError:
            raise UsageError("parquet export needs pyarrow: pip install 'xmanager[parquet]'") from None
    else:
        frame.to_pickle(output)
    print(f"wrote {len(frame)} rows to {output}")
    return 0


# ---- entry point --------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xmanager", description="Launch experiments and inspect their results.")
    parser.add_argument("--db", metavar="URL", help=f"database URL (default: ${config.DATABASE_ENV} or the SQLite file)")
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
    show.add_argument("experiment_id")
    show.set_defaults(run=cmd_show)

    cancel = commands.add_parser("cancel", help="cancel an experiment's unfinished work units (or one of them)")
    cancel.add_argument("experiment_id")
    cancel.add_argument("work_unit", nargs="?", type=int, help="only this work unit")
    cancel.set_defaults(run=cmd_cancel)

    logs = commands.add_parser("logs", help="print the logs of an experiment's jobs")
    logs.add_argument("experiment_id")
    logs.add_argument("work_unit", nargs="?", type=int)
    logs.add_argument("--job", help="only this job of each unit")
    logs.add_argument("--stream", choices=("stdout", "stderr", "both"), default="both")
    logs.set_defaults(run=cmd_logs)

    export = commands.add_parser("export", help="write an experiment's table to a file")
    export.add_argument("experiment_id")
    export.add_argument("--format", choices=("csv", "parquet", "pickle"), default="csv")
    export.add_argument("-o", "--output")
    export.set_defaults(run=cmd_export)

    from xmanager.xm_local.sweep import cli as sweep_cli

    sweep_cli.register(commands)
    from xmanager.xm_local import study_cli  # The study code itself is imported only when a subcommand runs.

    study_cli.register(commands)
    from xmanager.testing import devcluster_cli  # Test servers (not for production), loaded when the command runs.

    devcluster_cli.register(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.db:
        os.environ[config.DATABASE_ENV] = args.db
    from xmanager.xm.core import NotFoundError
    from xmanager.xm_local.store.driver import StoreError

    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (UsageError, StoreError, NotFoundError) as error:
        _fail(str(error))
    except BrokenPipeError:  # `xmanager show ... | head`
        return 0


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()


__all__ = ["entrypoint", "main"]
