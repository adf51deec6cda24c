"""Index samplers: which sample indices go into each mini-batch.

A sampler produces batches of integer indices, either in order or shuffled, and maps positions in what it draws from
to absolute sample indices (:meth:`AbstractSampler.map_indices`). The ``shuffle`` arguments used here and in
:mod:`xmanager.xm.data.data_source` accept ``None``/``False`` (in order), ``True`` (the global ``np.random`` state;
the ``np.random`` module itself is taken the same way), a ``np.random.RandomState`` or a ``np.random.Generator``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "AbstractSampler",
    "StandardSampler",
    "SubsetSampler",
    "WeightedSampler",
    "WeightedSubsetSampler",
    "num_batches",
]

RandomSource = Any  # np.random module, np.random.RandomState or np.random.Generator


def check_batch_size(batch_size: Any) -> int:
    """Returns ``batch_size`` as an int, or raises ValueError/TypeError naming the argument."""
    if isinstance(batch_size, bool):
        raise TypeError(f"batch_size must be a positive int, got {batch_size!r}")
    try:
        value = operator.index(batch_size)
    except TypeError:
        raise TypeError(f"batch_size must be a positive int, got {batch_size!r}") from None
    if value <= 0:
        raise ValueError(f"batch_size must be a positive int, got {value}")
    return value


def check_repeats(repeats: Any) -> int:
    """Returns ``repeats`` as an int (>= 1, or -1 for infinite), or raises naming the argument."""
    if isinstance(repeats, bool):
        raise TypeError(f"repeats must be an int >= 1 or -1 (infinite), got {repeats!r}")
    try:
        value = operator.index(repeats)
    except TypeError:
        raise TypeError(f"repeats must be an int >= 1 or -1 (infinite), got {repeats!r}") from None
    if value == 0 or value < -1:
        raise ValueError(f"repeats must be an int >= 1 or -1 (infinite), got {value}")
    return value


def resolve_shuffle(shuffle: Any) -> RandomSource | None:
    """Maps a ``shuffle`` argument to a random source, or None for in-order iteration."""
    if shuffle is None or shuffle is False:
        return None
    if shuffle is True or shuffle is np.random:
        return np.random
    if isinstance(shuffle, (np.random.RandomState, np.random.Generator)):
        return shuffle
    raise TypeError(
        "shuffle must be None, False, True, a numpy.random.RandomState or a numpy.random.Generator, "
        f"got {type(shuffle).__name__}"
    )


def num_batches(n: int | float, batch_size: int) -> int | float:
    """The number of mini-batches needed to cover ``n`` samples (the last one may be short); inf stays inf."""
    batch_size = check_batch_size(batch_size)
    if isinstance(n, float):
        if math.isinf(n):
            return n
        raise TypeError(f"'{type(n).__name__}' object cannot be interpreted as an integer")  # operator.index's
    return (operator.index(n) + batch_size - 1) // batch_size


def _check_indices(indices: Any, name: str = "indices") -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of ints, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.intp)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an array of ints, got dtype {arr.dtype}")
    return arr


def _spans(length: int, repeats: int, batch_size: int) -> Iterator[list[tuple[int, int]]]:
    """In-order batches as lists of ``(start, stop)`` ranges; a batch wraps across passes when ``repeats != 1``."""
    if length == 0:
        return
    pending: list[tuple[int, int]] = []
    filled = 0
    done = 0
    while repeats == -1 or done < repeats:
        pos = 0
        while pos < length:
            take = min(batch_size - filled, length - pos)
            pending.append((pos, pos + take))
            filled += take
            pos += take
            if filled == batch_size:
                yield pending
                pending, filled = [], 0
        done += 1
    if pending:
        yield pending


def _chunk_passes(passes: Iterator[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Cuts a stream of per-pass index arrays into batches, wrapping across passes."""
    pending: list[np.ndarray] = []
    filled = 0
    for order in passes:
        pos = 0
        n = len(order)
        while pos < n:
            take = min(batch_size - filled, n - pos)
            pending.append(order[pos : pos + take])
            filled += take
            pos += take
            if filled == batch_size:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, filled = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def spans_to_indices(spans: list[tuple[int, int]]) -> np.ndarray:
    if len(spans) == 1:
        return np.arange(*spans[0])
    return np.concatenate([np.arange(a, b) for a, b in spans])


def _take(indices: np.ndarray, positions: Any) -> np.ndarray:
    """``indices[positions]`` for an int array or a slice of positions."""
    return indices[positions] if isinstance(positions, slice) else indices[np.asarray(positions)]


class AbstractSampler:
    """Base class of samplers."""

    def map_indices(self, indices: Any) -> Any:
        """Absolute sample indices for positions in what the sampler draws from (identity unless it is a subset)."""
        return indices

    def num_indices_generated(self) -> int | float:
        """The number of indices generated over a full iteration (``np.inf`` when infinite)."""
        raise NotImplementedError

    def in_order_indices_batch_iterator(self, batch_size: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def shuffled_indices_batch_iterator(self, batch_size: int, shuffle_rng: RandomSource) -> Iterator[np.ndarray]:
        raise NotImplementedError


class StandardSampler(AbstractSampler):
    """All indices ``0 .. length-1``, ``repeats`` times (-1: forever). Shuffling draws a new permutation per pass."""

    def __init__(self, length: int, repeats: int = 1) -> None:
        length = operator.index(length)
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.length = length
        self.repeats = check_repeats(repeats)

    def num_indices_generated(self) -> int | float:
        return np.inf if self.repeats == -1 else self.length * self.repeats

    def in_order_spans(self, batch_size: int) -> Iterator[list[tuple[int, int]]]:
        """In-order batches as ``(start, stop)`` ranges, so that callers can slice instead of fancy-indexing."""
        return _spans(self.length, self.repeats, check_batch_size(batch_size))

    def in_order_indices_batch_iterator(self, batch_size: int) -> Iterator[np.ndarray]:
        spans = self.in_order_spans(batch_size)
        return (spans_to_indices(s) for s in spans)

    def shuffled_indices_batch_iterator(self, batch_size: int, shuffle_rng: RandomSource) -> Iterator[np.ndarray]:
        batch_size = check_batch_size(batch_size)
        return _chunk_passes(self._perms(shuffle_rng), batch_size)

    def _perms(self, rng: RandomSource) -> Iterator[np.ndarray]:
        if self.length == 0:
            return
        done = 0
        while self.repeats == -1 or done < self.repeats:
            yield rng.permutation(self.length)
            done += 1


class SubsetSampler(AbstractSampler):
    """The given ``indices``, ``repeats`` times (-1: forever); shuffled per pass."""

    def __init__(self, indices: Any, repeats: int = 1) -> None:
        self.indices = _check_indices(indices)
        self.length = len(self.indices)
        self.repeats = check_repeats(repeats)

    def map_indices(self, indices: Any) -> np.ndarray:
        """``self.indices[indices]``: positions in the subset to absolute indices."""
        return _take(self.indices, indices)

    def num_indices_generated(self) -> int | float:
        return np.inf if self.repeats == -1 else len(self.indices) * self.repeats

    def in_order_indices_batch_iterator(self, batch_size: int) -> Iterator[np.ndarray]:
        spans = _spans(len(self.indices), self.repeats, check_batch_size(batch_size))
        return (self.indices[spans_to_indices(s)] for s in spans)

    def shuffled_indices_batch_iterator(self, batch_size: int, shuffle_rng: RandomSource) -> Iterator[np.ndarray]:
        batch_size = check_batch_size(batch_size)
        inner = StandardSampler(len(self.indices), self.repeats)
        return (self.indices[b] for b in _chunk_passes(inner._perms(shuffle_rng), batch_size))


def _check_weights(weights: Any, name: str) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"{name} must have a positive sum")
    return w / total


def _check_labels(y: Any, n_classes: int | None = None) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be a 1-D array of integer class labels, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"y must hold integer class labels, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("y must hold non-negative class labels")
    if n_classes is not None:
        if isinstance(n_classes, bool):
            raise TypeError(f"n_classes must be a positive int, got {n_classes!r}")
        try:
            n_classes = operator.index(n_classes)
        except TypeError:
            raise TypeError(f"n_classes must be a positive int, got {n_classes!r}") from None
        if n_classes < 1:
            raise ValueError(f"n_classes must be a positive int, got {n_classes}")
        if labels.size and labels.max() >= n_classes:
            raise ValueError(f"n_classes={n_classes} but y contains label {int(labels.max())}")
    return labels.astype(np.intp)


class WeightedSampler(AbstractSampler):
    """Draws indices with replacement, with probability proportional to ``weights``; infinite, shuffled only.

    ``weights`` holds the normalised probabilities (summing to 1).
    """

    def __init__(self, weights: Any) -> None:
        self.p = _check_weights(weights, "weights")
        self.length = len(self.p)

    @property
    def weights(self) -> np.ndarray:
        return self.p

    def num_indices_generated(self) -> float:
        return np.inf

    def in_order_indices_batch_iterator(self, batch_size: int) -> Iterator[np.ndarray]:
        raise NotImplementedError(
            f"{type(self).__name__} draws random samples and cannot produce in-order batches; "
            "pass shuffle=True, a RandomState or a Generator"
        )

    def shuffled_indices_batch_iterator(self, batch_size: int, shuffle_rng: RandomSource) -> Iterator[np.ndarray]:
        batch_size = check_batch_size(batch_size)
        return self._draw(batch_size, shuffle_rng)

    def _draw(self, batch_size: int, rng: RandomSource) -> Iterator[np.ndarray]:
        n = len(self.p)
        while True:
            yield rng.choice(n, size=batch_size, p=self.p)

    @staticmethod
    def class_balancing_sample_weights(y: Any) -> np.ndarray:
        """Per-sample weights ``1 / (count(y_i) * n_present_classes)``, so that each present class sums to the same."""
        labels = _check_labels(y)
        if labels.size == 0:
            raise ValueError("y must not be empty")
        counts = np.bincount(labels)
        n_present = int(np.count_nonzero(counts))
        return 1.0 / (counts[labels] * float(n_present))

    @classmethod
    def class_balancing_sampler(cls, y: Any, n_classes: int | None = None) -> WeightedSampler:
        """A sampler drawing every class present in ``y`` equally often.

        ``n_classes`` (as in batchup's README) is optional; when given it is checked against ``y``.
        """
        _check_labels(y, n_classes)
        return cls(cls.class_balancing_sample_weights(y))


class WeightedSubsetSampler(WeightedSampler):
    """Like :class:`WeightedSampler`, drawing from ``indices`` with the matching ``sub_weights``.

    ``sub_weights`` holds the normalised probabilities of the subset's samples.
    """

    def __init__(self, sub_weights: Any, indices: Any) -> None:
        super().__init__(sub_weights)
        self.indices = _check_indices(indices)
        if len(self.indices) != len(self.p):
            raise ValueError(
                f"sub_weights and indices must have the same length, got {len(self.p)} and {len(self.indices)}"
            )

    @property
    def sub_weights(self) -> np.ndarray:
        return self.p

    def map_indices(self, indices: Any) -> np.ndarray:
        """``self.indices[indices]``: positions in the subset to absolute indices."""
        return _take(self.indices, indices)

    def _draw(self, batch_size: int, rng: RandomSource) -> Iterator[np.ndarray]:
        for b in super()._draw(batch_size, rng):
            yield self.indices[b]

    @classmethod
    def class_balancing_sampler(  # type: ignore[override]
        cls, y: Any, indices: Any, n_classes: int | None = None
    ) -> WeightedSubsetSampler:
        """Class-balanced sampling of the subset ``indices`` of ``y`` (the full label array)."""
        labels = _check_labels(y, n_classes)
        idx = _check_indices(indices)
        weights = WeightedSampler.class_balancing_sample_weights(labels[idx])
        return cls(weights, idx)
