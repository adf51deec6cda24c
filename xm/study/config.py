"""Study designs: expand a TOML study file into the ordered blocks of each participant.

A study file has a ``[configuration]`` table and a ``[[blocks]]`` array, in the format read by
experiment-server. :func:`load_study` parses and validates the file; :meth:`Study.blocks_for`
gives one participant's blocks and :meth:`Study.psets` turns a participant range into psets
(plain dicts) that can be added to an experiment like any sweep.

For a sound file, the output of :meth:`Study.blocks_for` is the same as experiment-server
0.3.9 gives for the same file and participant: the same blocks in the same order, the same
``choices`` draws (the random calls are made in the same order, from a generator seeded with
``random_seed + participant_index``), and the same key order.

Differences from experiment-server 0.3.9
----------------------------------------
* **Private random generator.** Every expansion draws from its own
  ``random.Random(random_seed + participant_index)``; the process-wide ``random`` state is
  never seeded or advanced. The draws themselves are the same.
* **Balanced Latin square for an odd number of conditions.** For odd n the square has 2n rows
  (each row followed by its reverse) and all of them are used: participant p gets row
  ``(p - 1) % (2 * n)``. 0.3.9 only ever used the first n rows, which for odd n is neither a
  Latin square nor balanced. For even n the n rows are used as before. Within groups, each row
  still lasts for ``number of groups`` consecutive participants, and participant p gets row
  ``((p - 1) // n_groups) % len(square)``: identical to 0.3.9 for even group sizes, all 2k rows
  for odd group sizes k. Participants 1..n get the same order as in 0.3.9 for groups.
* **``$VAR`` inside lists.** A ``"$NAME"`` string is replaced wherever it occurs, including in
  lists held as dict values and in nested lists (0.3.9 left ``x = ["$N"]`` unchanged).
* **``extends`` cycles are an error.** 0.3.9 silently merged the configs along the cycle.
* **Full TOML 1.0** through :mod:`tomllib` (0.3.9 used ``toml`` 0.10.2, which rejects, for
  instance, arrays of mixed types).
* **One error class.** Every configuration error is a :class:`StudyConfigError` (a
  ``ValueError``) whose message names the file, the block and the key, and the line where the
  TOML parser gives one. This covers errors 0.3.9 reported as ``KeyError``, ``TypeError`` or
  ``AssertionError``: an unknown block in ``order``, ``init_blocks`` or ``final_blocks``; a
  call table without ``function_name`` or ``args``; calls sharing an ``id`` with different
  ``args`` or ``params``; malformed TOML.
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
import json
import os
import random
import re
import tomllib
import warnings
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = ["Study", "StudyConfigError", "balanced_latin_square", "load_study"]

STRATEGIES = ("as_is", "randomize", "latin_square")
INIT_FINAL_STRATEGIES = ("as_is", "randomize")
_CALL_KEYS = frozenset({"function_name", "args", "params", "id"})
_UNIQUE_RETRIES = 21
_LINE_RE = re.compile(r"at line (\d+)")


class StudyConfigError(ValueError):
    """A study file is invalid. The message names the file, the block, the key and the line."""

    def __init__(
        self,
        detail: str,
        *,
        file: str | None = None,
        block: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.detail = detail
        self.file = file
        self.block = block
        self.key = key
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.file or "<study>"
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.block is not None:
            parts.append(f"block {self.block!r}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        return ": ".join([", ".join(parts), self.detail])


def balanced_latin_square(n: int) -> list[list[int]]:
    """Rows of a balanced Latin square of order ``n`` (Bradley's construction).

    The first row is ``0, 1, n-1, 2, n-2, ...`` and row r adds r (mod n). For odd n every row is
    followed by its reverse, giving 2n rows in which every ordered pair of neighbours occurs
    equally often.
    """
    first: list[int] = []
    low, high = 0, n - 1
    for position in range(n):
        if position < 2 or position % 2 == 1:
            first.append(low)
            low += 1
        else:
            first.append(high)
            high -= 1
    rows: list[list[int]] = []
    for shift in range(n):
        row = [(value + shift) % n for value in first]
        rows.append(row)
        if n % 2 == 1:
            rows.append(row[::-1])
    return rows


def _merge(child: Any, parent: Any) -> dict[str, Any]:
    """Recursive merge: child wins, ``None`` falls back to the parent, child keys first."""
    keys = list(child.keys()) if isinstance(child, dict) else []
    if isinstance(parent, dict):
        keys += [k for k in parent if k not in keys]
    merged: dict[str, Any] = {}
    for key in keys:
        a = child.get(key) if isinstance(child, dict) else None
        b = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(a, dict) and isinstance(b, dict):
            merged[key] = _merge(a, b)
        else:
            merged[key] = a if a is not None else b
    return merged


@attrs.frozen
class _Ctx:
    """Where we are in the file, for error messages."""

    file: str
    block: str | None = None

    def error(self, detail: str, key: str | None = None) -> StudyConfigError:
        return StudyConfigError(detail, file=self.file, block=self.block, key=key)


def _substitute(value: Any, variables: dict[str, Any], ctx: _Ctx, key: str) -> Any:
    """Replace ``"$NAME"`` strings everywhere (dicts, lists, nested lists)."""
    if isinstance(value, str) and value.startswith("$"):
        if value[1:] not in variables:
            raise ctx.error(f"unknown variable {value!r} (not in [configuration.variables])", key)
        return variables[value[1:]]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, ctx, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, ctx, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _is_call(value: Any) -> bool:
    return isinstance(value, dict) and 2 <= len(value) <= 4 and all(k in _CALL_KEYS for k in value)


@attrs.define
class _ChoicesGroup:
    """State of one group of ``choices`` calls for one participant."""

    args: Any
    params: Any
    unique: bool
    drawn: list[Any] = attrs.field(factory=list)


class _Expander:
    """Evaluates the function-call tables of one participant's blocks."""

    def __init__(self, rng: random.Random, file: str) -> None:
        self._rng = rng
        self._file = file
        self._groups: dict[tuple[str, Any], _ChoicesGroup] = {}

    def resolve(self, value: dict[str, Any], ctx: _Ctx, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if _is_call(v):
                out[k] = self._call(v, ctx, sub)
            elif isinstance(v, dict):
                out[k] = self.resolve(v, ctx, sub)
            else:
                out[k] = v
        return out

    def _call(self, table: dict[str, Any], ctx: _Ctx, key: str) -> Any:
        if "function_name" not in table or "args" not in table:
            raise ctx.error("a function-call table needs `function_name` and `args`", key)
        name, args, params = table["function_name"], table["args"], table.get("params")
        if name != "choices":
            raise ctx.error(f"unknown function {name!r} (supported: 'choices')", key)
        if "id" in table and table["id"] is not None:
            signature: tuple[str, Any] = ("id", json.dumps(table["id"], sort_keys=True))
        else:
            signature = ("call", json.dumps({"function_name": name, "args": args, "params": params}, sort_keys=True))
        group = self._groups.get(signature)
        if group is None:
            group = self._groups[signature] = _ChoicesGroup(args, params, _unique_param(params, ctx, key))
        elif group.args != args or group.params != params:
            raise ctx.error(f"calls with id {table.get('id')!r} differ in `args` or `params`", key)
        return self._choices(group, ctx, key)

    def _choices(self, group: _ChoicesGroup, ctx: _Ctx, key: str) -> list[Any]:
        if isinstance(group.args, list):
            positional, keywords = group.args, {}
        elif isinstance(group.args, dict):
            positional, keywords = [], group.args
        else:
            raise ctx.error(f"`args` must be a list or a table, got {group.args!r}", key)

        def draw() -> list[Any]:
            try:
                return self._rng.choices(*positional, **keywords)
            except (TypeError, ValueError, IndexError) as exc:
                raise ctx.error(f"invalid `args` for choices: {exc}", key) from None

        choice = draw()
        if not group.unique:
            return choice
        attempts = 0
        while any(c in group.drawn for c in choice) or len(_distinct(choice)) != len(choice):
            if attempts >= _UNIQUE_RETRIES:
                break
            attempts += 1
            choice = draw()
        group.drawn.extend(choice)
        if len(_distinct(group.drawn)) != len(group.drawn):
            raise ctx.error("more unique `choices` draws than elements in `args`", key)
        return choice


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _unique_param(params: Any, ctx: _Ctx, key: str) -> bool:
    if params is None:
        return False
    if not isinstance(params, dict):
        raise ctx.error("`params` of choices must be a table", key)
    if len(params) > 1 or (len(params) == 1 and "unique" not in params):
        raise ctx.error(f"`params` of choices allows only `unique`, got {sorted(params)}", key)
    return bool(params.get("unique", False))


def _per_participant(value: dict[str, Any], participant_index: int, ctx: _Ctx, key: str) -> list[str]:
    try:
        table = {int(k): v for k, v in value.items()}
    except ValueError:
        raise ctx.error(f"keys must be participant numbers 1..N, got {list(value)}", key) from None
    if sorted(table) != list(range(1, len(table) + 1)):
        raise ctx.error(f"keys must be exactly 1..{len(table)}, got {list(value)}", key)
    return list(table[(participant_index - 1) % len(table) + 1])


@attrs.frozen
class Study:
    """A parsed and validated study file. Use :func:`load_study` to build one."""

    path: str
    order: list[list[str]] | dict[str, list[str]]
    flat_order: bool
    groups_strategy: str
    within_groups_strategy: str
    init_blocks: list[str] | dict[str, list[str]]
    final_blocks: list[str] | dict[str, list[str]]
    init_blocks_strategy: str
    final_blocks_strategy: str
    random_seed: Any
    blocks: dict[str, dict[str, Any]]  # name -> wrapper with `extends` resolved, calls not evaluated

    def order_for(self, participant_index: int, rng: random.Random | None = None) -> list[str]:
        """The block names of one participant, in order (draws the shuffles from ``rng``)."""
        if rng is None:
            rng = random.Random(self.random_seed + participant_index)
        ctx = _Ctx(self.path, "configuration")
        if isinstance(self.order, dict):
            groups = [_per_participant(self.order, participant_index, ctx, "order")]
        else:
            groups = [list(g) for g in self.order]
        within = self.groups_strategy if self.flat_order else self.within_groups_strategy
        if self.groups_strategy == "randomize":
            rng.shuffle(groups)
        elif self.groups_strategy == "latin_square":
            square = balanced_latin_square(len(groups))
            groups = [groups[i] for i in square[(participant_index - 1) % len(square)]]
        if within == "randomize":
            for group in groups:
                rng.shuffle(group)
        elif within == "latin_square" and groups:
            size = len(groups[0])
            square = balanced_latin_square(size)
            row = square[((participant_index - 1) // len(groups)) % len(square)]
            groups = [[g[i] for i in row] for g in groups]
        init = self._edge(self.init_blocks, participant_index, ctx, "init_blocks")
        if self.init_blocks_strategy == "randomize":
            rng.shuffle(init)
        final = self._edge(self.final_blocks, participant_index, ctx, "final_blocks")
        if self.final_blocks_strategy == "randomize":
            rng.shuffle(final)
        return init + [name for g in groups for name in g] + final

    @staticmethod
    def _edge(value: list[str] | dict[str, list[str]], p: int, ctx: _Ctx, key: str) -> list[str]:
        if isinstance(value, dict):
            return _per_participant(value, p, ctx, key)
        return list(value)

    def blocks_for(self, participant_index: int) -> list[dict[str, Any]]:
        """The blocks of participant ``participant_index`` (1-based), as experiment-server gives them."""
        if not isinstance(participant_index, int) or participant_index < 1:
            raise StudyConfigError(f"participant index must be an int >= 1, got {participant_index!r}", file=self.path)
        rng = random.Random(self.random_seed + participant_index)
        names = self.order_for(participant_index, rng)
        expander = _Expander(rng, self.path)
        out: list[dict[str, Any]] = []
        for block_id, name in enumerate(names):
            block = expander.resolve(self.blocks[name], _Ctx(self.path, name), "")
            config = block.get("config")
            if not isinstance(config, dict):
                raise StudyConfigError("`config` must be a table", file=self.path, block=name, key="config")
            config["participant_index"] = participant_index
            config["name"] = name
            config["block_id"] = block_id
            out.append(copy.deepcopy(block))
        return out

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


def _strategy(conf: dict[str, Any], new: str, old: str | None, allowed: Sequence[str], ctx: _Ctx) -> str:
    value = conf.get(new)
    if old is not None and conf.get(old) is not None:
        warnings.warn(f"{ctx.file}: `{old}` is deprecated, use `{new}`", FutureWarning, stacklevel=4)
        if value is None:
            value = conf[old]
            new = old
    if value is None:
        return "as_is"
    if value not in allowed:
        raise ctx.error(f"must be one of {list(allowed)}, got {value!r}", new)
    return str(value)


def _names(value: Any, ctx: _Ctx, key: str, known: dict[str, Any]) -> None:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ctx.error(f"expected a list of block names, got {value!r}", key)
    for n in value:
        if n not in known:
            raise StudyConfigError(f"unknown block {n!r} (not a `name` in [[blocks]])", file=ctx.file, block=n, key=key)


def _check_order_value(value: Any, ctx: _Ctx, key: str, known: dict[str, Any], strategy: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _names(v, ctx, f"{key}.{k}", known)
        _per_participant(value, 1, ctx, key)
        if strategy != "as_is":
            raise ctx.error(f"the strategy must be 'as_is' when `{key}` is a per-participant table", key)
    else:
        _names(value, ctx, key, known)


def study_from_dict(data: dict[str, Any], file: str = "<study>") -> Study:
    """Validate a parsed study document (see :func:`load_study`)."""
    ctx = _Ctx(file, "configuration")
    conf = data.get("configuration")
    if not isinstance(conf, dict):
        raise StudyConfigError("missing [configuration] table", file=file, key="configuration")
    variables = conf.get("variables", {})
    if not isinstance(variables, dict):
        raise ctx.error("must be a table", "variables")
    groups_strategy = _strategy(conf, "groups_strategy", "groups", STRATEGIES, ctx)
    within_strategy = _strategy(conf, "within_groups_strategy", "within_groups", STRATEGIES, ctx)
    init_strategy = _strategy(conf, "init_blocks_strategy", None, INIT_FINAL_STRATEGIES, ctx)
    final_strategy = _strategy(conf, "final_blocks_strategy", None, INIT_FINAL_STRATEGIES, ctx)
    random_seed = conf.get("random_seed", 0)
    if not isinstance(random_seed, int) or isinstance(random_seed, bool):
        raise ctx.error(f"must be an integer, got {random_seed!r}", "random_seed")

    raw_blocks = data.get("blocks")
    if not isinstance(raw_blocks, list):
        raise StudyConfigError("`blocks` must be an array of tables ([[blocks]])", file=file, key="blocks")
    blocks: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(raw_blocks):
        label = str(raw.get("name", f"#{i + 1}")) if isinstance(raw, dict) else f"#{i + 1}"
        bctx = _Ctx(file, label)
        if not isinstance(raw, dict):
            raise bctx.error("a block must be a table", "blocks")
        block = {k: _substitute(v, variables, bctx, k) for k, v in raw.items()}
        if "name" not in block:
            raise bctx.error("missing `name`", "name")
        if "config" not in block and "extends" not in block:
            raise bctx.error("needs `config` or `extends`", "config")
        if "config" in block and not isinstance(block["config"], dict):
            raise bctx.error("`config` must be a table", "config")
        block["name"] = name = str(block["name"])
        if name in blocks:
            raise _Ctx(file, name).error("duplicate block name", "name")
        blocks[name] = block

    resolved = _resolve_extends(blocks, file)

    if "order" not in conf:
        raise ctx.error("missing `order`", "order")
    order = conf["order"]
    flat = False
    if isinstance(order, list):
        if not all(isinstance(g, list) for g in order):
            order, flat = [order], True
        for i, group in enumerate(order):
            _names(group, ctx, "order" if flat else f"order[{i}]", resolved)
        effective_within = groups_strategy if flat else within_strategy
        if effective_within == "latin_square" and len({len(g) for g in order}) > 1:
            raise ctx.error("a within-group latin square needs groups of the same size", "within_groups_strategy")
    elif isinstance(order, dict):
        _check_order_value(order, ctx, "order", resolved, groups_strategy)
    else:
        raise ctx.error(f"must be a list, a list of lists or a table, got {order!r}", "order")
    init_blocks = conf.get("init_blocks", [])
    final_blocks = conf.get("final_blocks", [])
    _check_order_value(init_blocks, ctx, "init_blocks", resolved, init_strategy)
    _check_order_value(final_blocks, ctx, "final_blocks", resolved, final_strategy)

    return Study(
        path=file,
        order=order,
        flat_order=flat,
        groups_strategy=groups_strategy,
        within_groups_strategy=within_strategy,
        init_blocks=init_blocks,
        final_blocks=final_blocks,
        init_blocks_strategy=init_strategy,
        final_blocks_strategy=final_strategy,
        random_seed=random_seed,
        blocks=resolved,
    )


def _resolve_extends(blocks: dict[str, dict[str, Any]], file: str) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}

    def resolve(name: str, path: list[str]) -> dict[str, Any]:
        if name in done:
            return done[name]
        block = blocks[name]
        parent = block.get("extends")
        if parent is None:
            done[name] = block
            return block
        parent = str(parent)
        if parent not in blocks:
            raise StudyConfigError(f"extends unknown block {parent!r}", file=file, block=name, key="extends")
        if parent in path:
            cycle = " -> ".join([*path[path.index(parent) :], parent])
            raise StudyConfigError(f"`extends` cycle: {cycle}", file=file, block=name, key="extends")
        done[name] = _merge(block, resolve(parent, [*path, parent]))
        return done[name]

    for name in blocks:
        resolve(name, [name])
    return done
