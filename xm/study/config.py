"""Study designs: expand a TOML study file into the ordered blocks of each participant.

A study file has a ``[configuration]`` table and a ``[[blocks]]`` array, in the format read by
experiment-server. :func:`load_study` parses and validates the file; :meth:`Study.blocks_for`
gives one participant's blocks and :meth:`Study.psets` turns a participant range into psets
(plain dicts) that can be added to an experiment like any sweep.

This module is also experiment-server's ``_process_config``: :func:`process_config_file`,
:func:`verify_config`, :func:`resolve_extends`, :func:`resolve_function_calls`,
:class:`ChoicesFunction` have its names, arguments and results, and its own tests pass against them.

For a file experiment-server 0.3.9 accepts, :meth:`Study.blocks_for` gives what it gives: the same
blocks in the same order, the same ``choices`` draws (the random calls are made in the same order,
from a generator seeded with ``random_seed + participant_index``) and the same key order. The
orders, Latin squares and ``extends`` merges follow its rules (see :mod:`.ordering` and
:func:`resolve_extends`).

Differences from experiment-server 0.3.9
----------------------------------------
* **Private random generator in Study.** :meth:`Study.blocks_for` draws from its own
  ``random.Random(random_seed + participant_index)``; the process-wide ``random`` state is never
  seeded or advanced. The draws are the same. :func:`process_config_file` (experiment-server's
  function) seeds and draws from the global generator, as experiment-server does.
* **``$VAR`` inside lists.** A ``"$NAME"`` string is replaced wherever it occurs, including in
  lists held as table values and in nested lists (0.3.9 left ``x = ["$N"]`` unchanged).
* **``extends`` cycles warn.** The configs along a cycle are merged as in 0.3.9, with a warning.
* **Full TOML 1.0** through :mod:`tomllib` (0.3.9 used ``toml`` 0.10.2, which rejects, for
  instance, arrays of mixed types).
* **One error class.** Every configuration error is a :class:`StudyConfigError` (experiment-server's
  ``ExperimentServerConfigurationException``, and a ``ValueError``) whose message names the file,
  the block and the key, and the line where the TOML parser gives one. This covers errors 0.3.9
  reported as ``KeyError``, ``TypeError`` or ``AssertionError``: an unknown block in ``order``,
  ``init_blocks`` or ``final_blocks``; a call table without ``function_name`` or ``args``; calls
  sharing an ``id`` with different ``args`` or ``params``; malformed TOML.
* Config errors found without drawing (structure, unknown names, variables, ``extends``) are
  raised by :func:`load_study`; only "too many unique draws" depends on the participant and is
  raised by :meth:`Study.blocks_for`.

Behaviour kept from 0.3.9 on purpose (documented there): with a flat ``order`` list,
``within_groups_strategy`` is replaced by ``groups_strategy``; function-call tables inside lists
are not evaluated; each occurrence of a call is drawn separately (also when inherited through
``extends`` or when a block appears twice).
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
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
from xmanager.xm.study.errors import ExperimentServerException, StudyConfigError
from xmanager.xm.study.functions import (  # noqa: F401 - _resolve_function: experiment-server's name, tests call it
    ChoicesFunction,
    _resolve_function,
    resolve_function_calls,
)
from xmanager.xm.study.ordering import (
    INIT_FINAL_ORDERING_STRATEGY,
    ORDERING_STRATEGY,
    Draws,
    balanced_latin_square,
    check_strategy,
    participant_order,
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


def _substitute(value: Any, variables: dict[str, Any], key: str) -> Any:
    """Replace ``"$NAME"`` strings everywhere (tables, lists, nested lists)."""
    if isinstance(value, str) and value.startswith("$"):
        if value[1:] not in variables:
            raise StudyConfigError(f"unknown variable {value!r} (not in [configuration.variables])", key=key)
        return variables[value[1:]]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def resolve_extends(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge into each block (a dict with a ``name``) the blocks it ``extends``, in place; returns ``configs``.

    A block's own values win (:func:`merge_dicts`); chains are followed. The blocks are resolved in list
    order and a block reads the current (possibly already merged) version of its parent, as experiment-server
    does. Along a cycle the merge stops at the first block met twice, so the blocks of a cycle end up with
    each other's keys; every cycle is reported once with a warning.

    Raises:
      StudyConfigError: a block extends a name no block has.
    """
    names = [block.get("name") for block in configs]
    cycles: dict[frozenset[Any], list[Any]] = {}

    def resolve(index: int, seen: list[Any]) -> dict[str, Any]:
        block = configs[index]
        if "extends" not in block:
            return block
        parent = block["extends"]
        if parent in seen:
            cycle = [*seen[seen.index(parent):], parent]
            cycles.setdefault(frozenset(cycle), cycle)
            return block
        if parent not in names:
            raise StudyConfigError(
                f"`{parent}` is not a valid name. It must be a `name` of one of the blocks",
                block=str(block.get("name")),
                key="extends",
            )
        parent_index = names.index(parent)
        configs[index] = merge_dicts(block, resolve(parent_index, [*seen, names[parent_index]]))
        return configs[index]

    for index in range(len(configs)):
        configs[index] = resolve(index, [names[index]])
    for cycle in cycles.values():
        warnings.warn(
            f"`extends` cycle: {' -> '.join(map(str, cycle))}; the configs along it are merged into each other",
            UserWarning,
            stacklevel=2,
        )
    return configs


@attrs.frozen
class Study:
    """A parsed and validated study file. Use :func:`load_study` to build one."""

    path: str
    order: Any  # as in the file: a list of groups, a flat list of names, or a per-participant table
    groups_strategy: str
    within_groups_strategy: str
    init_blocks: Any
    final_blocks: Any
    init_blocks_strategy: str
    final_blocks_strategy: str
    random_seed: int
    blocks: dict[str, dict[str, Any]]  # name -> block with `extends` resolved, calls not evaluated

    def _rng(self, participant_index: int) -> random.Random:
        return random.Random(self.random_seed + participant_index)

    def order_for(self, participant_index: int, rng: Draws | None = None) -> list[str]:
        """The block names of one participant, in order (shuffles draw from ``rng``)."""
        try:
            return participant_order(
                self.order,
                participant_index,
                self.init_blocks,
                self.final_blocks,
                groups_strategy=self.groups_strategy,
                within_groups_strategy=self.within_groups_strategy,
                init_blocks_strategy=self.init_blocks_strategy,
                final_blocks_strategy=self.final_blocks_strategy,
                rng=self._rng(participant_index) if rng is None else rng,
            )
        except StudyConfigError as error:
            raise error.located(self.path, "configuration") from None

    def blocks_for(self, participant_index: int, rng: Draws | None = None) -> list[dict[str, Any]]:
        """The blocks of participant ``participant_index`` (1-based), as experiment-server gives them.

        Draws come from a generator seeded with ``random_seed + participant_index`` unless ``rng`` is given.
        """
        if not isinstance(participant_index, int) or isinstance(participant_index, bool) or participant_index < 1:
            raise StudyConfigError(f"participant index must be an int >= 1, got {participant_index!r}", file=self.path)
        if rng is None:
            rng = self._rng(participant_index)
        names = self.order_for(participant_index, rng)
        try:
            blocks = resolve_function_calls([copy.deepcopy(self.blocks[name]) for name in names], rng)
        except StudyConfigError as error:
            raise error.located(self.path) from None
        for block_id, block in enumerate(blocks):
            config = block.get("config")
            if not isinstance(config, dict):
                raise StudyConfigError("`config` must be a table", file=self.path, block=block["name"], key="config")
            config["participant_index"] = participant_index
            config["name"] = block["name"]
            config["block_id"] = block_id
        return blocks

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


def load_study(path: str | os.PathLike[str]) -> Study:
    """Read and validate a TOML study file."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        match = _LINE_RE.search(str(exc))
        raise StudyConfigError(
            f"malformed TOML: {exc}", file=file, line=int(match.group(1)) if match else None
        ) from None
    except OSError as exc:
        raise StudyConfigError(f"cannot read the file: {exc.strerror or exc}", file=file) from None
    return study_from_dict(data, file)


def _strategy(conf: dict[str, Any], new: str, old: str | None, allowed: dict[str, str], file: str) -> str:
    value = conf.get(new)
    if old is not None and conf.get(old) is not None:
        warnings.warn(f"{file}: `{old}` is deprecated, use `{new}`", FutureWarning, stacklevel=4)
        if value is None:
            value = conf[old]
            new = old
    return check_strategy(value, allowed, new)


def _referenced(value: Any) -> list[str]:
    """Every block name in a well-formed ``order``, ``init_blocks`` or ``final_blocks``."""
    if isinstance(value, dict):
        return [name for names in value.values() for name in names]
    if isinstance(value, list):
        return [name for entry in value for name in (entry if isinstance(entry, list) else [entry])]
    return []


def study_from_dict(data: dict[str, Any], file: str = "<study>") -> Study:
    """Validate a parsed study document (see :func:`load_study`)."""
    conf = data.get("configuration")
    if not isinstance(conf, dict):
        raise StudyConfigError("missing [configuration] table", file=file, key="configuration")
    try:
        variables = conf.get("variables", {})
        if not isinstance(variables, dict):
            raise StudyConfigError("must be a table", key="variables")
        groups_strategy = _strategy(conf, "groups_strategy", "groups", ORDERING_STRATEGY, file)
        within_strategy = _strategy(conf, "within_groups_strategy", "within_groups", ORDERING_STRATEGY, file)
        init_strategy = _strategy(conf, "init_blocks_strategy", None, INIT_FINAL_ORDERING_STRATEGY, file)
        final_strategy = _strategy(conf, "final_blocks_strategy", None, INIT_FINAL_ORDERING_STRATEGY, file)
        random_seed = conf.get("random_seed", 0)
        if not isinstance(random_seed, int) or isinstance(random_seed, bool):
            raise StudyConfigError(f"must be an integer, got {random_seed!r}", key="random_seed")
    except StudyConfigError as error:
        raise error.located(file, "configuration") from None

    raw_blocks = data.get("blocks")
    if not isinstance(raw_blocks, list):
        raise StudyConfigError("`blocks` must be an array of tables ([[blocks]])", file=file, key="blocks")
    blocks: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_blocks):
        label = str(raw.get("name", f"#{i + 1}")) if isinstance(raw, dict) else f"#{i + 1}"
        try:
            if not isinstance(raw, dict):
                raise StudyConfigError("a block must be a table", key="blocks")
            block = {k: _substitute(v, variables, k) for k, v in raw.items()}
            if "name" not in block:
                raise StudyConfigError("missing `name`", key="name")
            if "config" not in block and "extends" not in block:
                raise StudyConfigError("needs `config` or `extends`", key="config")
            if "config" in block and not isinstance(block["config"], dict):
                raise StudyConfigError("`config` must be a table", key="config")
        except StudyConfigError as error:
            raise error.located(file, label) from None
        block["name"] = name = str(block["name"])
        if name in seen:
            raise StudyConfigError("duplicate block name", file=file, block=name, key="name")
        seen.add(name)
        blocks.append(block)
    try:
        resolved = {block["name"]: block for block in resolve_extends(blocks)}
    except StudyConfigError as error:
        raise error.located(file) from None

    if "order" not in conf:
        raise StudyConfigError("missing `order`", file=file, block="configuration", key="order")
    order = conf["order"]
    init_blocks = conf.get("init_blocks", [])
    final_blocks = conf.get("final_blocks", [])
    study = Study(
        path=file,
        order=order,
        groups_strategy=groups_strategy,
        within_groups_strategy=within_strategy,
        init_blocks=init_blocks,
        final_blocks=final_blocks,
        init_blocks_strategy=init_strategy,
        final_blocks_strategy=final_strategy,
        random_seed=random_seed,
        blocks=resolved,
    )
    study.order_for(1, random.Random(0))  # Checks the structure of the order and the strategies.
    for key, value in (("order", order), ("init_blocks", init_blocks), ("final_blocks", final_blocks)):
        for name in _referenced(value):
            if name not in resolved:
                raise StudyConfigError("unknown block (not a `name` in [[blocks]])", file=file, block=name, key=key)
    return study


# -- experiment-server's functions --------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    # TOML dates and times have no JSON type; write them as ISO 8601 strings.
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _blocks_from_global_random(study: Study, participant_index: int, suppress_message: bool) -> list[dict[str, Any]]:
    random.seed(study.random_seed + participant_index)
    blocks = study.blocks_for(participant_index, rng=random)  # type: ignore[arg-type]
    if not suppress_message and log.isEnabledFor(logging.INFO):
        log.info("Configuration loaded:\n%s", json.dumps(blocks, indent=2, default=_json_default))
    return blocks


def process_config_file(
    f: str | os.PathLike[str], participant_index: int, suppress_message: bool = False
) -> list[dict[str, Any]]:
    """The blocks of participant ``participant_index`` of the TOML study file ``f`` (experiment-server's function).

    As in experiment-server, Python's global random generator is seeded with ``random_seed +
    participant_index`` and the shuffles and draws come from it (the values are those of
    :meth:`Study.blocks_for`). The blocks are logged at INFO unless ``suppress_message``.

    Raises:
      StudyConfigError: the file is invalid, or ``participant_index`` < 1.
      ExperimentServerException: ``f`` does not end in ``.toml``.
    """
    if not isinstance(participant_index, int) or participant_index < 1:
        raise StudyConfigError(f"participant index must be an int >= 1, got {participant_index!r}", file=os.fspath(f))
    if Path(f).suffix != ".toml":
        raise ExperimentServerException(f"{os.fspath(f)}: invalid file type, expected a `.toml` file")
    return _process_toml(f, participant_index, suppress_message)


def _process_toml(
    f: str | os.PathLike[str], participant_index: int, suppress_message: bool = False
) -> list[dict[str, Any]]:
    return _blocks_from_global_random(load_study(f), participant_index, suppress_message)


def _process_config(
    configuration: dict[str, Any], participant_index: int, suppress_message: bool = False
) -> list[dict[str, Any]]:
    return _blocks_from_global_random(study_from_dict(configuration), participant_index, suppress_message)


def verify_config(
    f: str | os.PathLike[str],
    test_func: Callable[[list[dict[str, Any]]], tuple[bool, str]] | None = None,
    raise_on_error: bool = False,
) -> tuple[bool, str | None]:
    """Expand participants 1..5 of ``f``; ``(True, None)`` if that works, else ``(False, reason)``.

    ``test_func(blocks)`` (optional) is called for each participant and must return ``(True, _)``; a
    ``(False, reason)`` fails the check. With ``raise_on_error`` the error is raised instead of returned.
    """
    try:
        for participant in VERIFY_PARTICIPANTS:
            blocks = process_config_file(f, participant, suppress_message=True)
            if test_func is not None:
                passed, reason = test_func(blocks)
                if not passed:
                    raise AssertionError(f"test_func failed for participant {participant}: {reason}")
    except Exception as error:
        log.info("config verification failed: %s", error)  # The caller gets the reason.
        if raise_on_error:
            raise
        return False, str(error)
    log.info("%s: valid (participants %d..%d expanded)", os.fspath(f), VERIFY_PARTICIPANTS[0], VERIFY_PARTICIPANTS[-1])
    return True, None


def generate_config_json(
    config_file: str | os.PathLike[str],
    participant_indices: Iterable[int],
    out_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Write each participant's list of block configs as JSON; returns the files written.

    Without ``out_dir``, one JSON document per participant goes to stdout, each on its own line. With it,
    ``out_dir`` is created if needed and each participant gets ``<config stem>-participant_<N>.json``
    (indented by 2, as experiment-server writes them). Every participant is expanded before anything is
    written, so an error leaves no partial output.

    Raises:
      ExperimentServerException: ``out_dir`` exists and is not a folder, or cannot be written.
      StudyConfigError: the study file is invalid.
    """
    if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExperimentServerException(f"the output location {os.fspath(out_dir)} exists and is not a folder")
    documents = {
        p: [block["config"] for block in process_config_file(config_file, p, suppress_message=True)]
        for p in participant_indices
    }
    if out_dir is None:
        for configs in documents.values():
            sys.stdout.write(json.dumps(configs, default=_json_default) + "\n")
        return []
    stem = Path(config_file).stem
    written = []
    try:
        os.makedirs(out_dir, exist_ok=True)
        for p, configs in documents.items():
            path = os.path.join(out_dir, f"{stem}-participant_{p}.json")
            with open(path, "w", encoding="utf-8") as out:
                out.write(json.dumps(configs, indent=2, default=_json_default))
            written.append(path)
    except OSError as error:
        raise ExperimentServerException(f"cannot write to {os.fspath(out_dir)}: {error.strerror or error}") from None
    log.info("Generated files:\n%s", "\n".join(written))
    return written

