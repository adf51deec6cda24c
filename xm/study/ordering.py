"""The order of one participant's blocks: groups, blocks within groups, init and final blocks.

The rules (and the names, for code written against experiment-server's ``_participant_ordering``):

* ``order`` is a list of groups (lists of block names). A flat list of names is one group, and then
  ``groups_strategy`` orders it on its own (``within_groups_strategy`` is not used). A table
  ``{"1": [...], "2": [...]}`` gives participant p the list under key ``(p - 1) % N + 1``, and then
  ``groups_strategy`` must be ``"as_is"``.
* ``"randomize"`` shuffles with ``rng`` (Python's global generator unless another is given).
* ``"latin_square"`` takes a row of :func:`balanced_latin_square`: for n groups, participant p gets row
  ``(p - 1) % n``; within groups of k blocks, each row lasts for G consecutive participants (G groups) and
  participant p gets row ``((p - 1) % (k * G)) // G``. For odd n the square has 2n rows, of which only the
  first n are used, as experiment-server 0.3.9 does (those n rows alone are not a Latin square; for a full
  counterbalance of an odd number of conditions, give the 2n orders as a per-participant table).
* ``init_blocks`` and ``final_blocks`` (a list, or a per-participant table as above) go before and after the
  ordered blocks, ``"as_is"`` or shuffled (``"randomize"``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from xmanager.xm.study.errors import StudyConfigError

__all__ = [
    "INIT_FINAL_ORDERING_STRATEGY",
    "ORDERING_STRATEGY",
    "Draws",
    "balanced_latin_square",
    "check_strategy",
    "construct_participant_condition",
    "participant_order",
]


class Draws(Protocol):
    """Where shuffles and ``choices`` draws come from: a ``random.Random``, or the ``random`` module itself."""

    def shuffle(self, x: list[Any]) -> None: ...

    def choices(self, population: Sequence[Any], *args: Any, **kwargs: Any) -> list[Any]: ...


class _Strategies(dict[str, str]):
    """The allowed strategy names, also readable as attributes (``ORDERING_STRATEGY.latin_square``)."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


ORDERING_STRATEGY = _Strategies({name: name for name in ("randomize", "latin_square", "as_is")})
INIT_FINAL_ORDERING_STRATEGY = _Strategies({name: name for name in ("randomize", "as_is")})


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


def check_strategy(value: Any, allowed: dict[str, str], key: str) -> str:
    """``value`` as a strategy name (``None`` is ``"as_is"``); raises StudyConfigError naming ``key``."""
    if value is None:
        return "as_is"
    if not isinstance(value, str) or value not in allowed:
        raise StudyConfigError(f"must be one of {list(allowed)}, got {value!r}", key=key)
    return value


def block_names(value: Any, key: str) -> list[str]:
    """A copy of ``value``, which must be a list of block names (strings)."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise StudyConfigError(f"expected a list of block names (strings), got {value!r}", key=key)
    return list(value)


def per_participant(table: dict[Any, Any], participant_index: int, key: str) -> list[str]:
    """The list a per-participant table gives participant ``participant_index`` (every entry is checked)."""
    try:
        by_number = {int(number): names for number, names in table.items()}
    except (TypeError, ValueError):
        raise StudyConfigError(f"keys must be participant numbers 1..N, got {list(table)}", key=key) from None
    if not by_number:
        raise StudyConfigError("a per-participant table needs at least the key 1", key=key)
    if sorted(by_number) != list(range(1, len(by_number) + 1)):
        raise StudyConfigError(f"keys must be exactly 1..{len(by_number)}, got {list(table)}", key=key)
    for number, names in by_number.items():
        block_names(names, f"{key}.{number}")
    return list(by_number[(participant_index - 1) % len(by_number) + 1])


def _groups(order: Any, key: str) -> tuple[list[list[str]], bool]:
    """The groups of a list ``order``, and whether it was a flat list of names (one group)."""
    if not isinstance(order, list):
        raise StudyConfigError(f"must be a list, a list of lists or a table, got {order!r}", key=key)
    if all(isinstance(group, list) for group in order):
        return [block_names(group, f"{key}[{i}]") for i, group in enumerate(order)], False
    return [block_names(order, key)], True


def _edge(value: Any, participant_index: int, strategy: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        names = per_participant(value, participant_index, key)
        if strategy != "as_is":
            raise StudyConfigError(f"the strategy must be 'as_is' when `{key}` is a per-participant table", key=key)
        return names
    return block_names(value, key)


def participant_order(
    order: Any,
    participant_index: int,
    init_blocks: Any = None,
    final_blocks: Any = None,
    *,
    groups_strategy: str | None = None,
    within_groups_strategy: str | None = None,
    init_blocks_strategy: str | None = None,
    final_blocks_strategy: str | None = None,
    rng: Draws = random,  # type: ignore[assignment]
) -> list[str]:
    """The block names of one participant, in order. The arguments are not changed.

    Raises:
      StudyConfigError: a strategy, ``order``, ``init_blocks`` or ``final_blocks`` is malformed (the key is named).
    """
    groups_strategy = check_strategy(groups_strategy, ORDERING_STRATEGY, "groups_strategy")
    within = check_strategy(within_groups_strategy, ORDERING_STRATEGY, "within_groups_strategy")
    init_strategy = check_strategy(init_blocks_strategy, INIT_FINAL_ORDERING_STRATEGY, "init_blocks_strategy")
    final_strategy = check_strategy(final_blocks_strategy, INIT_FINAL_ORDERING_STRATEGY, "final_blocks_strategy")
    if isinstance(order, dict):
        groups = [per_participant(order, participant_index, "order")]
        if groups_strategy != "as_is":
            raise StudyConfigError("the strategy must be 'as_is' when `order` is a per-participant table", key="order")
    else:
        groups, flat = _groups(order, "order")
        if flat:  # One group: its order is the groups' strategy (as experiment-server does, on purpose).
            within = groups_strategy
    if groups_strategy == "randomize":
        rng.shuffle(groups)
    elif groups_strategy == "latin_square" and groups:
        row = balanced_latin_square(len(groups))[(participant_index - 1) % len(groups)]
        groups = [groups[i] for i in row]
    if within == "randomize":
        for group in groups:
            rng.shuffle(group)
    elif within == "latin_square":
        sizes = {len(group) for group in groups}
        if len(sizes) != 1:
            raise StudyConfigError("a within-group latin square needs groups of the same size", key="within_groups_strategy")
        size = sizes.pop()
        if size:
            count = len(groups)
            row = balanced_latin_square(size)[((participant_index - 1) % (size * count)) // count]
            groups = [[group[i] for i in row] for group in groups]
    init = _edge(init_blocks, participant_index, init_strategy, "init_blocks")
    if init_strategy == "randomize":
        rng.shuffle(init)
    final = _edge(final_blocks, participant_index, final_strategy, "final_blocks")
    if final_strategy == "randomize":
        rng.shuffle(final)
    return init + [name for group in groups for name in group] + final


def construct_participant_condition(
    config: list[dict[str, Any]],
    participant_index: int,
    order: Any,
    init_block_names: Any,
    final_block_names: Any,
    within_groups_strategy: str | None = None,
    groups_strategy: str | None = None,
    init_blocks_strategy: str | None = None,
    final_blocks_strategy: str | None = None,
    *,
    rng: Draws = random,  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """The blocks of ``config`` (dicts with a ``name``) in participant ``participant_index``'s order.

    experiment-server's function, with its argument order. Block names are made strings in place; the
    blocks returned are the dicts of ``config`` themselves. Shuffles draw from Python's global generator
    unless ``rng`` is given.

    Raises:
      StudyConfigError: duplicate or unknown block names, or a malformed order or strategy.
    """
    by_name: dict[str, dict[str, Any]] = {}
    for block in config:
        name = block["name"] = str(block["name"])
        if name in by_name:
            raise StudyConfigError("duplicate block name", block=name, key="name")
        by_name[name] = block
    names = participant_order(
        order,
        participant_index,
        init_block_names,
        final_block_names,
        groups_strategy=groups_strategy,
        within_groups_strategy=within_groups_strategy,
        init_blocks_strategy=init_blocks_strategy,
        final_blocks_strategy=final_blocks_strategy,
        rng=rng,
    )
    for name in names:
        if name not in by_name:
            raise StudyConfigError("unknown block (not the `name` of a block)", block=name)
    return [by_name[name] for name in names]
