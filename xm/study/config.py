"""Study designs: expand a TOML study file into the ordered blocks of each participant.

A study file has a ``[configuration]`` table and a ``[[blocks]]`` array, in the format read by
experiment-server. :func:`load_study` parses the file and checks what can be checked for every participant;
:meth:`Study.blocks_for` gives one participant's blocks and :meth:`Study.psets` turns a participant range into
psets (plain dicts) that can be added to an experiment like any sweep.

This module is also experiment-server's ``_process_config``: :func:`process_config_file`,
:func:`verify_config`, :func:`resolve_extends`, :func:`resolve_function_calls`, :class:`ChoicesFunction`
have its names, arguments and results, and its own tests pass against them.

The expansion is experiment-server 0.3.9's, step by step: the same blocks in the same order, the same
``choices`` draws (from a generator seeded with ``random_seed + participant_index``, drawn in the same
order), the same key order, and for a file it rejects the same exception with the same message (see
:mod:`.errors`), found in the same order. What remains different:

* :meth:`Study.blocks_for` draws from its own ``random.Random``; the process-wide ``random`` state is left
  alone (:func:`process_config_file` seeds and draws from it, as experiment-server does).
* Files are read as TOML 1.0 (:mod:`tomllib`); 0.3.9's ``toml`` 0.10.2 rejects some valid files (arrays of
  mixed types, ``nan``, ...) and reports malformed ones with other messages.
* Where 0.3.9 crashes, this module does not: ``blocks`` or ``order`` of the wrong type, ``configuration``
  that is not a table, an empty per-participant table, a Latin square over no groups (see the functions),
  and TOML dates and times, written to JSON as ISO 8601 strings.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import random
import re
import sys
import tomllib
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
from xmanager.xm.study.errors import (
    ExperimentServerException,
    InvalidStudyError,
    StudyConfigError,
)
from xmanager.xm.study.functions import (  # noqa: F401 - _resolve_function: experiment-server's name, tests call it
    ChoicesFunction,
    _resolve_function,
    resolve_function_calls,
)
from xmanager.xm.study.grid import fancy_grid
from xmanager.xm.study.ordering import (
    Draws,
    balanced_latin_square,
    construct_participant_condition,
)
from xmanager.xm.study.utils import merge_dicts

__all__ = [
    "ChoicesFunction",
    "Study",
    "StudyConfigError",
    "balanced_latin_square",
    "generate_config_json",
    "load_study",
    "process_config_file",
    "resolve_extends",
    "resolve_function_calls",
    "study_from_dict",
    "verify_config",
]

log = logging.getLogger(__name__)
VERIFY_PARTICIPANTS = range(1, 6)
_LINE_RE = re.compile(r"at line (\d+)")
# The built-in exceptions 0.3.9's expansion lets through for some files; they become StudyConfigErrors of their kind.
_BUILTIN_ERRORS = (KeyError, TypeError, AssertionError, IndexError, ValueError)


def _replace_variables(config: Any, variables: Any) -> Any:
    """``config`` with each string ``"$NAME"`` that is a value of a table, or an item of the top list, replaced.

    As experiment-server: tables are searched at every depth, lists are not (only the ``blocks`` list itself).
    """
    if isinstance(config, dict):
        items: Iterable[tuple[Any, Any]] = config.items()
    elif isinstance(config, list):
        items = enumerate(config)
    else:  # 0.3.9 fails with an UnboundLocalError; the caller reports "not a list".
        return config
    resolved: dict[Any, Any] = {}
    for key, value in items:
        if isinstance(value, str) and value.startswith("$"):
            try:
                resolved[key] = variables[value[1:]]
            except KeyError:
                raise InvalidStudyError(  # noqa: B904 - chained as in 0.3.9's tracebacks
                    f"The variable `{value}` does not exsist in `configuration.variables`", key=str(key)
                )
        elif isinstance(value, dict):
            resolved[key] = _replace_variables(value, variables)
        else:
            resolved[key] = value
    return list(resolved.values()) if isinstance(config, list) else resolved


def _resolve_extends(
    block: dict[str, Any], configs: list[dict[str, Any]], seen: list[Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Any]]:
    if "extends" not in block or block["extends"] in seen:
        return block, configs, seen
    try:
        parent = [other for other in configs if other["name"] == block["extends"]][0]
    except IndexError:
        raise InvalidStudyError(  # noqa: B904 - chained as in 0.3.9's tracebacks
            "`{}` is not a valid name. It must be a `name`.".format(block["extends"]),
            block=str(block["name"]),
            key="extends",
        )
    parent, configs, seen = _resolve_extends(parent, configs, [*seen, parent["name"]])
    configs[block["block_idx"]] = merge_dicts(block, parent)
    return configs[block["block_idx"]], configs, seen


def resolve_extends(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge into each block (a dict with a ``name``) the blocks it ``extends``, in place; returns ``configs``.

    A block's own values win (:func:`merge_dicts`); chains are followed. The blocks are resolved in list order
    and a block reads the current (possibly already merged) version of its parent, as experiment-server does.
    Along a cycle the merge stops at the first block met twice, so the blocks of a cycle end up with each
    other's keys.

    Raises:
      InvalidStudyError: a block extends a name no block has.
    """
    for index, block in enumerate(configs):
        block["block_idx"] = index
    for block in configs:
        configs[block["block_idx"]] = _resolve_extends(block, configs, [block["name"]])[0]
    for block in configs:
        del block["block_idx"]
    return configs


def _warn_deprecated(configuration: dict[str, Any], new: str, old: str, warn: bool) -> Any:
    value = configuration.get(new, None)
    old_value = configuration.get(old, None)
    if old_value is not None:
        if warn:
            warnings.warn(f"`{old}` is being deprecated, use `{new}`", FutureWarning, stacklevel=2)
        if value is None:
            return old_value
    return value


def _referenced(value: Any) -> list[Any]:
    """Every name in an ``order``, ``init_blocks`` or ``final_blocks`` that passed the ordering checks."""
    if isinstance(value, dict):
        return [name for names in value.values() for name in names]
    if isinstance(value, list):
        return [name for item in value for name in (item if isinstance(item, list) else [item])]
    return []


def _unknown_names(blocks: list[dict[str, Any]], *lists: Any) -> set[Any]:
    names = {block["name"] for block in blocks}
    return {name for value in lists for name in _referenced(value) if name not in names}


def _same_unknown_name(blocks: list[dict[str, Any]], *lists: Any) -> bool:
    """Whether every participant meets the same unknown name first: one name, in lists only (no tables)."""
    return len(_unknown_names(blocks, *lists)) == 1 and not any(isinstance(value, dict) for value in lists)


def _expand(
    data: dict[str, Any], participant_index: Any, seeded: Callable[[Any], Draws], *, warn: bool = True,
    stage: str = "blocks",
) -> Any:
    """experiment-server's ``_process_config`` on ``data``, which it changes (as there).

    ``seeded(random_seed + participant_index)`` gives the generator of the shuffles and draws. ``stage`` is
    ``"blocks"`` (the blocks), ``"names"`` (only the block names, in order) or ``"check"``: the steps whose
    outcome is the same for every participant, so that an error found there is the error every participant
    gets; returns None.
    """
    try:
        configuration = data["configuration"]
    except KeyError:
        raise InvalidStudyError("Missing `configuration` section.", key="configuration")  # noqa: B904 - as 0.3.9
    if not isinstance(configuration, dict):  # 0.3.9 fails with an AttributeError.
        raise InvalidStudyError(f"`configuration` is not a table, got {configuration}", key="configuration")
    variables = configuration.get("variables", {})
    groups_strategy = _warn_deprecated(configuration, "groups_strategy", "groups", warn)
    within_groups_strategy = _warn_deprecated(configuration, "within_groups_strategy", "within_groups", warn)
    init_blocks = configuration.get("init_blocks", [])
    final_blocks = configuration.get("final_blocks", [])
    init_blocks_strategy = configuration.get("init_blocks_strategy", None)
    final_blocks_strategy = configuration.get("final_blocks_strategy", None)
    rng = seeded(configuration.get("random_seed", 0) + participant_index)

    all_blocks = _replace_variables(data["blocks"], variables)
    if not isinstance(all_blocks, list):
        raise InvalidStudyError("`blocks` is not a list.", key="blocks")
    try:
        order = configuration["order"]
    except KeyError:
        raise InvalidStudyError("Missing `order` under `configuration`.", key="order")  # noqa: B904 - as 0.3.9
    for block in all_blocks:
        if "name" not in block:
            raise InvalidStudyError("One or more block(s) missing `name`.", key="name")
        if "config" not in block and "extends" not in block:
            raise InvalidStudyError("One or more block(s) missing `config`.", block=str(block["name"]), key="config")
        block["name"] = str(block["name"])

    try:
        blocks = construct_participant_condition(
            all_blocks, participant_index, order=order, init_block_names=init_blocks,
            final_block_names=final_blocks, groups_strategy=groups_strategy,
            within_groups_strategy=within_groups_strategy, init_blocks_strategy=init_blocks_strategy,
            final_blocks_strategy=final_blocks_strategy, rng=rng,
        )
    except KeyError:
        if stage == "check" and not _same_unknown_name(all_blocks, order, init_blocks, final_blocks):
            return None  # Which name is reported depends on the participant.
        raise
    if stage == "check" and _unknown_names(all_blocks, order, init_blocks, final_blocks):
        return None  # Another participant gets an unknown name (a per-participant table) before `extends`.
    block_names = [block["name"] for block in blocks]
    if stage == "names":
        return block_names
    resolved = {block["name"]: block for block in resolve_extends([merge_dicts(b, {}) for b in all_blocks])}
    if stage == "check":
        return None
    blocks = resolve_function_calls([resolved[name] for name in block_names], rng)
    for block_id, block in enumerate(blocks):
        block["config"]["participant_index"] = participant_index
        block["config"]["name"] = block["name"]
        block["config"]["block_id"] = block_id
    return blocks


def _run(data: dict[str, Any], participant_index: Any, seeded: Callable[[Any], Draws], file: str | None,
         **options: Any) -> Any:
    """:func:`_expand`, its built-in exceptions turned into StudyConfigErrors of their kind, located in ``file``."""
    try:
        return _expand(data, participant_index, seeded, **options)
    except StudyConfigError as error:
        error.located(file)
        raise
    except _BUILTIN_ERRORS as error:
        raise StudyConfigError.like(error, file=file).with_traceback(error.__traceback__) from None


def _check_participant(participant_index: Any) -> None:
    if participant_index < 1:
        raise InvalidStudyError(f"Participant index needs to be greater than 0, got {participant_index}")


@attrs.frozen
class Study:
    """A parsed study file whose participant-independent checks passed. Use :func:`load_study` to build one."""

    path: str
    data: dict[str, Any]  # The document as parsed; never changed (each expansion works on a copy).

    @property
    def random_seed(self) -> Any:
        return self.data["configuration"].get("random_seed", 0)

    def _seeded(self, rng: Draws | None) -> Callable[[Any], Draws]:
        return random.Random if rng is None else (lambda seed: rng)

    def order_for(self, participant_index: int, rng: Draws | None = None) -> list[str]:
        """The block names of one participant, in order (shuffles draw from ``rng``)."""
        _check_participant(participant_index)
        return _run(copy.deepcopy(self.data), participant_index, self._seeded(rng), self.path, stage="names")

    def blocks_for(self, participant_index: int, rng: Draws | None = None) -> list[dict[str, Any]]:
        """The blocks of participant ``participant_index`` (1-based), as experiment-server gives them.

        Draws come from a generator seeded with ``random_seed + participant_index`` unless ``rng`` is given.

        Raises:
          StudyConfigError: what experiment-server raises for this participant (see :mod:`.errors`).
        """
        _check_participant(participant_index)
        return _run(copy.deepcopy(self.data), participant_index, self._seeded(rng), self.path)

    def psets(self, participants: range | Sequence[int]) -> list[dict[str, Any]]:
        """One pset per (participant, block): participant index, block id, block name and the block's config."""
        psets: list[dict[str, Any]] = []
        for p in participants:
            for block in self.blocks_for(p):
                config = block["config"]
                psets.append(
                    {
                        "participant_index": p,
                        "block_id": config["block_id"],
                        "block_name": block["name"],
                        **config,
                    }
                )
        return psets


def _read(f: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed TOML file. An unreadable file raises what ``open`` raises (as in 0.3.9)."""
    file = os.fspath(f)
    with open(file, "rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            match = _LINE_RE.search(str(exc))
            raise StudyConfigError.of(ValueError)(
                str(exc), file=file, line=int(match.group(1)) if match else None
            ) from None


def load_study(path: str | os.PathLike[str]) -> Study:
    """Read a TOML study file and check it (the checks whose outcome is the same for every participant).

    Raises:
      StudyConfigError: what experiment-server raises for every participant of this file.
      OSError: the file cannot be read.
    """
    return study_from_dict(_read(path), os.fspath(path))


def study_from_dict(data: dict[str, Any], file: str = "<study>") -> Study:
    """A :class:`Study` of a parsed study document (see :func:`load_study`)."""
    data = copy.deepcopy(data)
    _run(copy.deepcopy(data), 1, random.Random, file, warn=False, stage="check")
    return Study(path=file, data=data)


# -- experiment-server's functions --------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    # TOML dates and times have no JSON type; write them as ISO 8601 strings (0.3.9 fails with a TypeError).
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _seed_global(seed: Any) -> Draws:
    random.seed(seed)
    return random


def process_config_file(
    f: str | os.PathLike[str], participant_index: int, suppress_message: bool = False
) -> list[dict[str, Any]]:
    """The blocks of participant ``participant_index`` of the TOML study file ``f`` (experiment-server's function).

    As in experiment-server, Python's global random generator is seeded with ``random_seed +
    participant_index`` and the shuffles and draws come from it (the values are those of
    :meth:`Study.blocks_for`). The blocks are logged at INFO unless ``suppress_message``.

    Raises:
      InvalidStudyError: ``participant_index`` < 1.
      ExperimentServerException: ``f`` does not end in ``.toml``.
      StudyConfigError: the file is invalid (see :mod:`.errors`).
      OSError: the file cannot be read.
    """
    _check_participant(participant_index)
    if Path(f).suffix != ".toml":
        raise ExperimentServerException("Invalid file type. Expected `.toml`")
    return _process_toml(f, participant_index, suppress_message)


def _process_toml(
    f: str | os.PathLike[str], participant_index: int, suppress_message: bool = False
) -> list[dict[str, Any]]:
    return _process_config(_read(f), participant_index, suppress_message, file=os.fspath(f))


def _process_config(
    configuration: dict[str, Any], participant_index: int, suppress_message: bool = False, *, file: str | None = None
) -> list[dict[str, Any]]:
    """experiment-server's function: the blocks of a parsed study document, which it changes (as there)."""
    blocks = _run(configuration, participant_index, _seed_global, file)
    if not suppress_message:
        log.info("Configuration loaded: \n%s", json.dumps(blocks, indent=2, default=_json_default))
    return blocks


def verify_config(
    f: str | os.PathLike[str],
    test_func: Callable[[list[dict[str, Any]]], tuple[bool, str]] | None = None,
    raise_on_error: bool = False,
) -> tuple[bool, str | None]:
    """Expand participants 1..5 of ``f``; ``(True, None)`` if that works, else ``(False, reason)``.

    On success the block names of each participant are logged as a table (INFO), as experiment-server does;
    on failure the exception is logged with its traceback (ERROR) and ``reason`` is its
    :func:`traceback.format_exception_only` text. ``test_func(blocks)`` (optional) is called for each
    participant and must return ``(True, _)``; ``(False, reason)`` fails the check with an AssertionError.
    With ``raise_on_error`` the error is raised instead of returned.
    """
    try:
        table = _get_table_for_participants(f, test_func)
        log.info("Ordering for 5 participants: \n\n%s\n", fancy_grid(table))
        log.info("Config file verification successful for %s", f)
        return True, None
    except Exception as error:
        log.exception("%s", error)
        if raise_on_error:
            raise
        return False, "\n".join(traceback.format_exception_only(error))


def _get_table_for_participants(
    f: str | os.PathLike[str],
    test_func: Callable[[list[dict[str, Any]]], tuple[bool, str]] | None = None,
    from_ppid: int = 1,
    to_ppid: int = 5,
) -> list[list[Any]]:
    """A header row (``block``, ``participant_<p>``...) and one row of block names per position."""
    names: dict[int, dict[str, str]] = {}
    for participant in range(from_ppid, to_ppid + 1):
        blocks = process_config_file(f, participant_index=participant, suppress_message=True)
        names[participant] = {f"block_{index + 1}": block["name"] for index, block in enumerate(blocks)}
        if test_func is not None:
            passed, reason = test_func(blocks)
            assert passed, f"test_func failed for {participant} with reason, {reason}"  # noqa: S101 - as there
    positions = sorted({key for row in names.values() for key in row}, key=lambda key: int(key.split("_", 1)[1]))
    participants = range(from_ppid, to_ppid + 1)
    table: list[list[Any]] = [["block", *(f"participant_{p}" for p in participants)]]
    table += [[key, *(names[p].get(key) for p in participants)] for key in positions]
    return table


def generate_config_json(
    config_file: str | os.PathLike[str],
    participant_indices: Iterable[int],
    out_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Write each participant's list of block configs as JSON (experiment-server's ``_generate_config_json``).

    Without ``out_dir``, one JSON document per participant goes to stdout, with nothing between them. With it,
    ``out_dir`` is created if needed (logged) and each participant gets ``<config stem>-participant_<N>.json``,
    indented by 2; the files written are logged at the end. Participants are expanded and written one by one,
    so an error leaves the output of the participants before it.

    Raises:
      ExperimentServerException: ``out_dir`` exists and is not a folder.
      StudyConfigError: the study file is invalid.
    """
    if out_dir is not None:
        out_dir = Path(out_dir)
        if not out_dir.exists():
            log.info("Creating direcotry %s", out_dir)
            out_dir.mkdir(parents=True)
        elif not out_dir.is_dir():
            raise ExperimentServerException(f"`out_file_location` should be a directory. Got {out_dir}")
    written = []
    for participant in participant_indices:
        configs = [block["config"] for block in process_config_file(config_file, participant, suppress_message=True)]
        if out_dir is None:
            sys.stdout.write(json.dumps(configs, default=_json_default))
            continue
        path = out_dir / f"{Path(config_file).stem}-participant_{participant}.json"
        written.append(path)
        with open(path, "w") as out:
            out.write(json.dumps(configs, indent=2, default=_json_default))
    if written:
        log.info("Generated files: \n%s", "\n".join(str(path) for path in written))
