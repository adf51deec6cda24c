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

The checks, their order, their messages and the exceptions are experiment-server 0.3.9's, except where it
crashes (an ``order`` that is neither a list nor a dict, an empty per-participant dict, a Latin square over
no groups or empty groups).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from xmanager.xm.study.errors import InvalidStudyError

__all__ = [
    "INIT_FINAL_ORDERING_STRATEGY",
    "ORDERING_STRATEGY",
    "Draws",
    "balanced_latin_square",
    "construct_participant_condition",
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


def construct_participant_condition(
    config: list[dict[str, Any]],
    participant_index: int,
    order: Any,
    init_block_names: Any,
    final_block_names: Any,
    within_groups_strategy: Any = None,
    groups_strategy: Any = None,
    init_blocks_strategy: Any = None,
    final_blocks_strategy: Any = None,
    *,
    rng: Draws = random,
) -> list[dict[str, Any]]:
    """The blocks of ``config`` (dicts with a ``name``) in participant ``participant_index``'s order.

    experiment-server's function, with its arguments, checks, messages and side effects: block names are made
    strings in place, shuffles reorder the lists of ``order``, ``init_block_names`` and ``final_block_names``
    in place, and the blocks returned are the dicts of ``config`` themselves. Shuffles draw from Python's
    global generator unless ``rng`` is given.

    Raises:
      InvalidStudyError: an unknown strategy, duplicate block names, a malformed ``order``, ``init_block_names``
        or ``final_block_names``, groups of different sizes under a within-group Latin square.
      KeyError: a name in the order is not the name of a block (as experiment-server).
      AssertionError: ``init_block_names`` or ``final_block_names`` is neither a list nor a dict (as there).
    """
    within_groups_strategy = _strategy(within_groups_strategy, ORDERING_STRATEGY, "within_groups")
    groups_strategy = _strategy(groups_strategy, ORDERING_STRATEGY, "groups")
    init_blocks_strategy = _strategy(init_blocks_strategy, INIT_FINAL_ORDERING_STRATEGY, "init_blocks_strategy")
    final_blocks_strategy = _strategy(final_blocks_strategy, INIT_FINAL_ORDERING_STRATEGY, "final_blocks_strategy")

    by_name: dict[str, dict[str, Any]] = {}
    for block in config:
        name = block["name"] = str(block["name"])
        if name in by_name:
            raise InvalidStudyError(f"Duplicate block name: {name}", block=name, key="name")
        by_name[name] = block

    if isinstance(order, list):
        if not all(isinstance(group, list) for group in order):
            order = [order]
            within_groups_strategy = groups_strategy  # A flat list is one group, ordered by `groups_strategy`.
        if not all(isinstance(name, str) for group in order for name in group):
            raise InvalidStudyError(f"All conditions in order were expected to be strings, got {order}", key="order")
        groups = order
    elif isinstance(order, dict):
        groups = [_dict_order(participant_index, order, groups_strategy, "order", ORDERING_STRATEGY)]
    else:  # 0.3.9 fails with an UnboundLocalError.
        raise InvalidStudyError(
            f"`order` should be a list, a list of lists or a dict of block names, got {order}", key="order"
        )

    if groups_strategy == ORDERING_STRATEGY.randomize:
        rng.shuffle(groups)
    elif groups_strategy == ORDERING_STRATEGY.latin_square and groups:  # No groups: 0.3.9 divides by zero.
        row = balanced_latin_square(len(groups))[(participant_index - 1) % len(groups)]
        groups = [groups[i] for i in row]

    if within_groups_strategy == ORDERING_STRATEGY.randomize:
        for group in groups:
            rng.shuffle(group)
    elif within_groups_strategy == ORDERING_STRATEGY.latin_square:
        sizes = {len(group) for group in groups}
        if len(sizes) != 1:
            raise InvalidStudyError(
                f"Currently {ORDERING_STRATEGY.latin_square} not supported for `within_groups` when the number of "
                "elements in all groups are not the same",
                key="within_groups_strategy",
            )
        size = sizes.pop()
        if size:  # Empty groups: 0.3.9 divides by zero.
            rows = [row for row in balanced_latin_square(size) for row in [row] * len(groups)]
            row = rows[(participant_index - 1) % (size * len(groups))]
            groups = [[group[i] for i in row] for group in groups]

    init = _edge_blocks(participant_index, init_block_names, init_blocks_strategy, "init_blocks")
    if init_blocks_strategy == INIT_FINAL_ORDERING_STRATEGY.randomize:
        rng.shuffle(init)
    final = _edge_blocks(participant_index, final_block_names, final_blocks_strategy, "final_blocks")
    if final_blocks_strategy == INIT_FINAL_ORDERING_STRATEGY.randomize:
        rng.shuffle(final)
    return [by_name[name] for name in [*init, *(name for group in groups for name in group), *final]]


def _strategy(value: Any, allowed: dict[str, str], what: str) -> str:
    if value is None:
        return "as_is"
    if value not in list(allowed.values()):
        raise InvalidStudyError(f"Allowed values for `{what}` are {allowed.values()}, for {value}", key=what)
    return value


def _edge_blocks(participant_index: int, names: Any, strategy: str, what: str) -> list[str]:
    """The ``init_blocks`` or ``final_blocks`` of one participant (the list itself when it is a list)."""
    if isinstance(names, list):
        if not all(isinstance(name, str) for name in names):
            raise InvalidStudyError(f"All conditions in order were expected to be strings, got {names}", key=what)
    elif isinstance(names, dict):
        names = _dict_order(participant_index, names, strategy, what, INIT_FINAL_ORDERING_STRATEGY)
    assert isinstance(names, list)  # noqa: S101 - experiment-server's check (and exception)
    return names


def _dict_order(participant_index: int, table: dict[Any, Any], strategy: str, what: str, allowed: Any) -> list[str]:
    """The list a per-participant table gives participant ``participant_index``, with experiment-server's checks."""
    by_index = {int(key): value for key, value in table.items()}
    if not all(isinstance(names, list) for names in by_index.values()):
        raise InvalidStudyError(f"Each group in {what} for all participants needs to be list, got {by_index}", key=what)
    if not all(isinstance(name, str) for names in by_index.values() for name in names):
        raise InvalidStudyError(
            f"All conditions in {what} for all participants needs to be a strings, got {by_index}", key=what
        )
    if not all(index + 1 in by_index for index in range(len(by_index))):
        raise InvalidStudyError(
            f"Keys order in {what} should match the consecutive indices starting from 1. Got keys "
            f"{list(by_index)}, expected keys {[index + 1 for index in range(len(by_index))]}",
            key=what,
        )
    if strategy != allowed.as_is:
        raise InvalidStudyError(
            f"Ordering strategy for {what} should be {allowed.as_is} when {what} is a dictionary. Got {strategy}",
            key=what,
        )
    if not by_index:  # 0.3.9 divides by zero.
        raise InvalidStudyError(f"{what} is an empty dictionary; its keys should be the indices starting from 1", key=what)
    return by_index[(participant_index - 1) % len(by_index) + 1]
