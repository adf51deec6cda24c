"""``xmanager study ...``: create, check and expand study files (the experiment-server format).

``register(subparsers)`` adds the ``study`` command to the ``xmanager`` parser. The subcommands
and their options are named as in experiment-server 0.3.9, with the same short aliases:

    xmanager study new-config-file study.toml         # (n, new) a commented sample study
    xmanager study verify-config-file study.toml      # (v, verify) block orders of participants 1..5
    xmanager study generate-config-json study.toml -r 8 [-d out/]   # (g, generate)

The expansion itself lives in :mod:`xmanager.xm.study.config`; it is imported only when a
subcommand runs, so ``xmanager --help`` does not pay for it. A configuration error is reported
as one line, ``xmanager: error: <file>[:line], block '...', key '...': ...``, with exit status 2.
See docs/studies.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

VERIFY_PARTICIPANTS = 5
DEFAULT_FILE_NAME = "new_config.toml"

SAMPLE_CONFIG = """\
# A study design: which blocks (conditions) each participant goes through, in which order,
# and with which settings. The format is experiment-server's; see docs/studies.md.
#
#   xmanager study verify-config-file THIS_FILE              # block orders of participants 1..5
#   xmanager study generate-config-json THIS_FILE -r 8       # one JSON line per participant
#   xmanager study generate-config-json THIS_FILE -r 8 -d configs/

[configuration]
# Block names, as a list of groups. Here: a single group of four conditions. A flat list is
# read as one group whose order follows `groups_strategy` alone. A table such as
# order = { "1" = ["a", "b"], "2" = ["b", "a"] } gives participant p the list under key
# ((p - 1) % N) + 1.
order = [["slow", "medium", "fast", "adaptive"]]

# How the groups are ordered, and the blocks within each group:
# "as_is", "randomize" or "latin_square" (balanced; every group must have the same size).
groups_strategy = "as_is"
within_groups_strategy = "latin_square"

# Blocks before and after the ordered ones ("as_is" or "randomize").
init_blocks = ["training"]
init_blocks_strategy = "as_is"
final_blocks = ["questionnaire"]
final_blocks_strategy = "as_is"

# Participant p draws from a generator seeded with random_seed + p, so the output is reproducible.
random_seed = 0

# A string "$name" in a block is replaced by the variable's value (xmanager also does this
# inside lists; experiment-server 0.3.9 does not).
[configuration.variables]
trials = 20

[[blocks]]
name = "training"
config = { speed = 1.0, trials = 5, feedback = true }

[[blocks]]
name = "slow"
[blocks.config]
speed = 0.5
trials = "$trials"
feedback = false
# A call to random.choices, drawn anew for every block that holds it (also through `extends`).
# Calls that share an `id` form one group; with unique = true no value repeats within the group.
target_size = { function_name = "choices", args = [[4, 6, 8, 10, 12, 14, 16, 18]], params = { unique = true }, id = "size" }
# args as a table are passed by keyword: three draws, "easy" three times as likely.
difficulty = { function_name = "choices", args = { population = ["easy", "hard"], weights = [3, 1], k = 3 } }

# `extends` copies another block's config; the keys given here win.
[[blocks]]
name = "medium"
extends = "slow"
config = { speed = 1.0 }

[[blocks]]
name = "fast"
extends = "slow"
config = { speed = 2.0 }

[[blocks]]
name = "adaptive"
extends = "slow"
config = { speed = 1.0, adaptive = true }

[[blocks]]
name = "questionnaire"
config = { form = "nasa-tlx" }
"""


def _usage_error(message: str) -> Exception:
    from xmanager.xm_local.cli import UsageError

    return UsageError(message)


def _reported(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turns study-file errors into the one-line ``xmanager: error: ...`` report (exit status 2)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from xmanager.xm.study.config import StudyConfigError

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return command(args)
            except StudyConfigError as error:
                raise _usage_error(str(error)) from None
            finally:
                for warning in caught:
                    if not issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)):
                        print(f"xmanager: warning: {warning.message}", file=sys.stderr)

    return run


def _load(path: str) -> Any:
    from xmanager.xm.study.config import load_study

    return load_study(path)


def _json_default(value: Any) -> Any:
    # TOML dates and times have no JSON type; write them as ISO 8601 strings.
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _configs(study: Any, participant: int) -> list[dict[str, Any]]:
    """The configs of one participant's blocks: what experiment-server writes per participant."""
    return [block["config"] for block in study.blocks_for(participant)]


# ---- new-config-file ----------------------------------------------------------------------------
@_reported
def cmd_new(args: argparse.Namespace) -> int:
    target = args.path
    if not target.endswith(".toml"):  # As experiment-server: anything else names a folder.
        target = os.path.join(target, DEFAULT_FILE_NAME)
    if os.path.exists(target):
        raise _usage_error(f"{target} already exists; not overwriting it")
    folder = os.path.dirname(target)
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(target, "x", encoding="utf-8") as out:
            out.write(SAMPLE_CONFIG)
    except FileExistsError:
        raise _usage_error(f"{target} already exists; not overwriting it") from None
    except OSError as error:
        raise _usage_error(f"cannot write {target}: {error.strerror or error}") from None
    print(f"wrote {target}")
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
    study = _load(args.config)
    participants = range(1, VERIFY_PARTICIPANTS + 1)
    # Expand fully (draws included): some errors only show up for a given participant.
    orders = [[block["name"] for block in study.blocks_for(p)] for p in participants]
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
    study = _load(args.config)
    if args.participant_range is not None:
        participants = list(range(1, args.participant_range + 1))
    else:
        participants = [args.participant_index]
    # Expand everyone before writing anything, so an error leaves no partial output.
    documents = {p: _configs(study, p) for p in participants}
    if args.out_dir is None:
        for configs in documents.values():
            sys.stdout.write(json.dumps(configs, default=_json_default) + "\n")
        return 0
    stem = os.path.splitext(os.path.basename(args.config))[0]
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        for p, configs in documents.items():
            path = os.path.join(args.out_dir, f"{stem}-participant_{p}.json")
            with open(path, "w", encoding="utf-8") as out:
                out.write(json.dumps(configs, indent=2, default=_json_default))
            print(path)
    except OSError as error:
        raise _usage_error(f"cannot write to {args.out_dir}: {error.strerror or error}") from None
    return 0


# ---- registration -------------------------------------------------------------------------------
def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``study`` command (and its subcommands) to an ``add_subparsers()`` object; returns its parser."""
    study = subparsers.add_parser(
        "study", help="study designs: new-config-file, verify-config-file, generate-config-json"
    )
    commands = study.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND")

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
        description="Expand a study file for one participant (-i) or participants 1..N (-r). Without -d, "
        "print one JSON list of block configs per participant, one per line; with -d, write "
        "DIR/<config stem>-participant_<N>.json for each.",
    )
    generate.add_argument("config", metavar="CONFIG")
    which = generate.add_mutually_exclusive_group(required=True)
    which.add_argument("-i", "--participant-index", type=_participant, metavar="N", help="only participant N")
    which.add_argument("-r", "--participant-range", type=_participant, metavar="N", help="participants 1..N")
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
    run.add_argument("-p", "--port", type=int, default=5000)
    run.add_argument("--token", default=os.environ.get("XM_STUDY_TOKEN"),
                     help="required for POST/PUT as 'Authorization: Bearer TOKEN' (default: $XM_STUDY_TOKEN); "
                     "needed to bind anything but 127.0.0.1")
    run.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without a token")
    run.set_defaults(run=cmd_run)
    return study


@_reported
def cmd_run(args: argparse.Namespace) -> int:
    from xmanager.xm_local.studyserver import StudyServerError, serve

    if not os.path.isfile(args.config):
        raise _usage_error(f"no study file at {args.config!r}")
    try:
        serve(args.config, host=args.host, port=args.port, default_participant=args.default_participant_index,
              token=args.token, insecure=args.insecure)
    except StudyServerError as error:
        raise _usage_error(str(error)) from None
    return 0


__all__ = ["SAMPLE_CONFIG", "cmd_generate", "cmd_new", "cmd_verify", "register"]
