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
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from xmanager.xm.status import Status
from xmanager.xm_local import config
from xmanager.xm_local.cli_errors import EXIT_FAILED_UNITS, FailedUnits, UsageError, shown

if TYPE_CHECKING:
    from xmanager.xm_local.experiment import LocalExperiment
    from xmanager.xm_local.work_unit import LocalWorkUnit

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
    from xmanager.xm_local import progress

    progress.enable(not args.quiet)  # XM_PROGRESS=0 still hides it.
    progress.show_job_output = not args.quiet
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


#: ``--json`` documents carry this; it changes only when a field is removed or changes meaning (docs/cli.md).
JSON_VERSION = 1
#: Every unit status (``pending``, ``running``, ``completed``, ``failed``, ``cancelled``, ...).
STATUSES = tuple(status.value for status in Status)
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_time(text: str) -> float:
    """An argparse type: a date (``2024-05-01``, ``2024-05-01T12:30``, local time) or an age (``12h``, ``7d``)
    as epoch seconds."""
    import datetime

    age = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if age:
        return time.time() - int(age[1]) * _AGE_UNITS[age[2]]
    try:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date (YYYY-MM-DD[THH:MM[:SS]]) or an age (30m, 12h, 7d, 2w): {shown(text)}"
        ) from None


def _print_json(document: Any) -> None:
    import json

    json.dump(document, sys.stdout, indent=2, allow_nan=False, default=str)
    sys.stdout.write("\n")


def _jsonable(value: Any) -> Any:
    """Strict JSON: NaN and infinities (which results may hold) become null."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def experiment_json(experiment: LocalExperiment) -> dict[str, Any]:
    """An experiment in ``list --json`` and ``show --json`` (schema in docs/cli.md)."""
    counts = experiment.status_counts
    return {
        "experiment_id": experiment.experiment_id,
        "title": experiment.title,
        "tags": list(experiment.tags),
        "notes": experiment.notes,
        "creator": experiment.creator,
        "created_at": experiment.created_at,
        "archived": experiment.archived,
        "work_unit_count": experiment.work_unit_count,
        "status_counts": {status: int(counts.get(status, 0)) for status in STATUSES},
    }


def unit_json(unit: LocalWorkUnit) -> dict[str, Any]:
    """A work unit in ``show --json``."""
    status = unit.get_status()
    return {
        "work_unit_id": unit.work_unit_id,
        "status": str(status.status),
        "exit_code": status.exit_code,
        "message": status.message or "",
        "args": _jsonable(unit.args),
        "results": _jsonable(unit.results),
        "jobs": [
            {"name": job.name, "executor": job.executor, "status": str(job.status), "exit_code": job.exit_code,
             "message": job.message or "", "console_url": job.console_url}
            for job in unit.jobs.values()
        ],
    }


def cmd_list(args: argparse.Namespace) -> int:
    from xmanager.xm_local.experiment import list_experiments

    experiments = list_experiments(
        title=args.title, tag=args.tag, since=args.since, status=args.status,
        archived=None if args.all else False, limit=None if args.all else args.limit,
    )
    if args.json:
        _print_json({"version": JSON_VERSION, "experiments": [experiment_json(e) for e in experiments]})
        return 0
    rows = [
        (e.experiment_id, e.title + (" (archived)" if e.archived else ""), ",".join(e.tags), _when(e.created_at),
         e.work_unit_count, _summary(e.status_counts))
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
    units = [unit for unit in experiment.work_units.values()
             if args.status is None or str(unit.get_status().status) == args.status]
    if args.json:
        _print_json({"version": JSON_VERSION, "experiment": experiment_json(experiment),
                     "work_units": [unit_json(unit) for unit in units]})
        return 0
    archived = "  (archived)" if experiment.archived else ""
    print(f"experiment {experiment.experiment_id}: {experiment.title!r}  created {_when(experiment.created_at)}"
          f"{archived}")
    if experiment.tags:
        print(f"tags: {', '.join(experiment.tags)}")
    if experiment.notes:
        print(f"notes: {experiment.notes}")
    print(f"units: {_summary(experiment.status_counts)}")
    rows = []
    for unit in units:
        status = unit.get_status()
        exit_code = "" if status.exit_code is None else status.exit_code
        rows.append((unit.work_unit_id, status.status, exit_code, _compact(unit.args), _compact(unit.results),
                     status.message))
    if rows:
        print(_table(("WU", "STATUS", "EXIT", "ARGS", "RESULTS", "MESSAGE"), rows))
    from xmanager.xm_local.search import best_trial_line  # A search's units: its best trial, marked.

    if (best := best_trial_line(experiment)) is not None:
        print(best)
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


def _no_output(unit: LocalWorkUnit, job_name: str) -> str:
    """Why a job has no log file: it has not started yet, or never did (its failure or cancel message)."""
    job = unit.jobs[job_name]
    if not job.status.is_terminal:
        return "(no output yet: the job has not started)" if str(job.status) == "pending" else "(no output)"
    why = job.message or unit.get_status().message
    return f"(no output: the job never started ({job.status}): {why})" if why else "(no output)"


def cmd_logs(args: argparse.Namespace) -> int:
    experiment = _experiment(args.experiment_id)
    units = list(experiment.work_units.values())
    if args.work_unit is not None:
        units = [unit for unit in units if unit.work_unit_id == args.work_unit]
        if not units or not units[0].jobs:
            raise UsageError(f"experiment {experiment.experiment_id} has no work unit {args.work_unit}")
    streams = ("stdout", "stderr") if args.stream == "both" else (args.stream,)
    targets = [(unit, job.name, stream) for unit in units for job in unit.jobs.values()
               if not args.job or job.name == args.job for stream in streams]
    if args.follow:
        return _follow(experiment, targets)
    for unit, job_name, stream in targets:
        path = getattr(unit.logs(job_name), stream)
        print(f"==> work unit {unit.work_unit_id}, job {job_name}, {stream}: {path} <==")
        if path and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as log:
                sys.stdout.write(log.read())
        else:
            print(_no_output(unit, job_name))
    return 0


#: How often ``logs -f`` reads the files and the units' statuses.
_FOLLOW_S = 0.5


def _follow(experiment: LocalExperiment, targets: list[tuple[LocalWorkUnit, str, str]]) -> int:
    """Prints the logs as they grow (a header whenever the file changes, as ``tail -f``) until every
    unit they belong to has ended."""
    import codecs

    offsets: dict[int, int] = {}
    decoders = {index: codecs.getincrementaldecoder("utf-8")("replace") for index in range(len(targets))}
    shown_header: Optional[int] = None
    said: set[int] = set()
    while True:
        experiment.refresh()  # Statuses first: whatever a unit wrote before it ended is read below.
        ended = all(not unit.get_status().is_active for unit, _, _ in targets)
        for index, (unit, job_name, stream) in enumerate(targets):
            path = getattr(unit.logs(job_name), stream)
            header = f"==> work unit {unit.work_unit_id}, job {job_name}, {stream}: {path} <=="
            if not path or not os.path.exists(path):
                if ended and index not in said:
                    print(header)
                    print(_no_output(unit, job_name))
                    said.add(index)
                continue
            with open(path, "rb") as log:
                log.seek(offsets.get(index, 0))
                data = log.read()
                offsets[index] = log.tell()
            text = decoders[index].decode(data, final=ended)
            if text:
                if shown_header != index:
                    print(header)
                    shown_header = index
                said.add(index)
                sys.stdout.write(text)
                sys.stdout.flush()
        if ended:
            return 0
        time.sleep(_FOLLOW_S)


# ---- managing experiments -----------------------------------------------------------------------
def cmd_tag(args: argparse.Namespace) -> int:
    add: list[str] = []
    remove: list[str] = []
    for change in args.changes:
        sign, tag = (change[0], change[1:]) if change[:1] in ("+", "-") else ("+", change)
        if not tag.strip():
            raise UsageError(f"tag: {shown(change)} names no tag (use +TAG to add, -TAG to remove)")
        (add if sign == "+" else remove).append(tag)
    experiment = _experiment(args.experiment_id)
    tags = experiment.edit_tags(add=add, remove=remove) if args.changes else experiment.tags
    print(f"experiment {experiment.experiment_id} tags: {', '.join(tags) or '(none)'}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    experiment = _experiment(args.experiment_id)
    if args.text is None:
        print(experiment.notes)
        return 0
    experiment.set_notes(args.text)
    print(f"experiment {experiment.experiment_id}: notes {'set' if args.text else 'cleared'}")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    experiments = [_experiment(number) for number in args.experiment_ids]  # All exist before any changes.
    for experiment in experiments:
        if args.undo:
            experiment.unarchive()
        else:
            experiment.archive()
    done = "unarchived" if args.undo else "archived (xmanager list --all shows it)"
    for experiment in experiments:
        print(f"experiment {experiment.experiment_id} {done}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    experiment = _experiment(args.experiment_id)
    what = (f"experiment {experiment.experiment_id} {experiment.title!r} ({experiment.work_unit_count} work "
            f"unit(s), its records and job folders)")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"delete {experiment.experiment_id}: no terminal to confirm on; "
                             "pass --yes to delete without asking")
        sys.stderr.write(f"delete {what}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return EXIT_FAILED_UNITS
    try:
        experiment.delete()
    except RuntimeError as error:
        raise UsageError(str(error)) from None
    print(f"deleted {what}")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    try:
        import shtab
    except ImportError:
        raise UsageError("completion needs shtab: pip install 'xmanager-launcher[cli]'") from None
    print(shtab.complete(_parser(), shell=args.shell))
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
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless its text already says it or there is none worth saying."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class _Version(argparse.Action):
    """``--version``: the version module is read only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        from xmanager.xm.version import __version__

        print(f"xmanager {__version__}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as UsageError, so they are one line like every other (subcommands inherit it),
    and help that shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("xmanager").strip()
        raise UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xmanager", description="Launch experiments and inspect their results.")
    parser.add_argument("--db", metavar="URL", help=f"database URL (default: ${config.DATABASE_ENV} or the SQLite file)")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true",
                          help="print the traceback of an error too, and debug messages")
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="only warnings and errors: no progress, no job output on the terminal")
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's word
        return commands.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")

    def experiment_arg(subparser: argparse.ArgumentParser) -> None:
        subparser.add_argument("experiment_id", type=experiment_id, help="the experiment's id (see xmanager list)")

    launch = command("launch", "run a launch script's main(argv), showing its units' progress")
    launch.add_argument("script", help="the launch script (a Python file defining main(argv))")
    launch.add_argument("script_args", nargs=argparse.REMAINDER, help="flags for the script, after --")
    launch.set_defaults(run=cmd_launch)

    listing = command("list", "list experiments, newest first (archived ones with --all)")
    listing.add_argument("--title", help="title substring (* as wildcard)")
    listing.add_argument("--tag", help="only experiments with this tag")
    listing.add_argument("--since", type=since_time, metavar="DATE",
                         help="only experiments created since DATE: 2024-05-01, 2024-05-01T12:30 (local time) "
                              "or an age: 30m, 12h, 7d, 2w")
    listing.add_argument("--status", choices=STATUSES, help="only experiments with a work unit in this status")
    listing.add_argument("--limit", type=int, default=50, help="at most this many experiments")
    listing.add_argument("--all", action="store_true", help="archived experiments too, and no --limit")
    listing.add_argument("--json", action="store_true", help="one JSON document (schema in docs/cli.md)")
    listing.set_defaults(run=cmd_list)

    show = command("show", "an experiment's work units and their statuses")
    experiment_arg(show)
    show.add_argument("--status", choices=STATUSES, help="only the work units in this status")
    show.add_argument("--json", action="store_true", help="one JSON document (schema in docs/cli.md)")
    show.set_defaults(run=cmd_show)

    cancel = command("cancel", "cancel an experiment's unfinished work units (or some of them)")
    experiment_arg(cancel)
    cancel.add_argument("work_units", metavar="work_unit", nargs="*", type=unit_id, help="only these work units")
    cancel.set_defaults(run=cmd_cancel)

    logs = command("logs", "print the logs of an experiment's jobs")
    experiment_arg(logs)
    logs.add_argument("work_unit", nargs="?", type=unit_id, help="only this work unit's jobs")
    logs.add_argument("--job", help="only this job of each unit")
    logs.add_argument("--stream", choices=("stdout", "stderr", "both"), default="both", help="which output")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="print the output as it grows, until the work units end")
    logs.set_defaults(run=cmd_logs)

    tag = command("tag", "add (+TAG) or remove (-TAG) an experiment's tags; without changes, print them")
    experiment_arg(tag)
    tag.add_argument("changes", nargs=argparse.REMAINDER, metavar="+TAG|-TAG", help="tags to add or remove")
    tag.set_defaults(run=cmd_tag)

    note = command("note", "set an experiment's notes ('' clears them); without TEXT, print them")
    experiment_arg(note)
    note.add_argument("text", nargs="?", metavar="TEXT", help="the new notes (replacing the old)")
    note.set_defaults(run=cmd_note)

    archive = command("archive", "hide experiments from xmanager list (list --all shows them); nothing is deleted")
    archive.add_argument("experiment_ids", nargs="+", type=experiment_id, metavar="experiment_id",
                         help="the experiments' ids")
    archive.set_defaults(run=cmd_archive, undo=False)
    unarchive = command("unarchive", "show archived experiments in xmanager list again")
    unarchive.add_argument("experiment_ids", nargs="+", type=experiment_id, metavar="experiment_id",
                           help="the experiments' ids")
    unarchive.set_defaults(run=cmd_archive, undo=True)

    delete = command("delete", "delete an experiment's records and job folders (none of its units may be running)")
    experiment_arg(delete)
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=cmd_delete)

    completion = command("completion", "print a shell completion script: eval \"$(xmanager completion bash)\"")
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell")
    completion.set_defaults(run=cmd_completion)

    export = commands.add_parser("export", help="write an experiment's table (or its metrics) to a file")
    experiment_arg(export)
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
        from xmanager.xm_local import progress

        progress.configure_logging(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
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
