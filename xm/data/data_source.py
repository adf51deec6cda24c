"""Data sources: objects that produce mini-batches (tuples of arrays), with batchup-compatible names and semantics.

Typical use::

    ds = ArrayDataSource([train_X, train_y])
    for batch_X, batch_y in ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(0)):
        ...

In-order batches of an :class:`ArrayDataSource` without ``indices`` are taken with slices, so for numpy arrays they
are views of the data (do not modify them in place unless you mean to modify the data). Shuffled batches are gathered
with the permutation and are copies.

A source composed only of random-access sources (``CompositeDataSource``, ``ChoiceDataSource``, ``map``) is random
access too: ``batch_indices_iterator`` yields its index batches (tuples of the members' for a composite,
:class:`ChoiceBatch` for a choice) in the order ``batch_iterator`` uses, and ``samples_by_indices_nomapping`` turns one
into the batch, which is what the worker pools rely on.
"""

from __future__ import annotations

import collections.abc
import itertools
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from xmanager.xm.data import sampling
from xmanager.xm.data.sampling import check_batch_size, check_repeats, resolve_shuffle

__all__ = [
    "AbstractDataSource",
    "ArrayDataSource",
    "CallableDataSource",
    "ChoiceBatch",
    "ChoiceDataSource",
    "CompositeDataSource",
    "IteratorDataSource",
    "MapDataSource",
    "RandomAccessDataSource",
    "batch_map_concat",
    "batch_map_mean",
    "coerce_data_source",
    "length_of_batch",
    "stratified_order",
    "stratified_shuffled_order",
    "trim_batch",
]

Batch = tuple[Any, ...]


class ChoiceBatch(NamedTuple):
    """One index batch of a :class:`ChoiceDataSource`: the member's sample indices and which member it is."""

    sample_indices: Any
    ds_index: int


def length_of_batch(batch: Any) -> int:
    """The number of samples in a (possibly nested) batch.

    Tuples are structure: the length is that of their first element, recursively. Anything else (an array, a list)
    is one item whose ``len()`` is the answer.
    """
    if isinstance(batch, ChoiceBatch):
        return len(batch.sample_indices)
    if isinstance(batch, tuple):
        return length_of_batch(batch[0])
    return len(batch)


def trim_batch(batch: Any, length: int) -> Any:
    """``batch`` cut to its first ``length`` samples, keeping its tuple structure (lists are items, as above)."""
    if isinstance(batch, ChoiceBatch):
        return ChoiceBatch(trim_batch(batch.sample_indices, length), batch.ds_index)
    if isinstance(batch, tuple):
        return tuple(trim_batch(item, length) for item in batch)
    return batch[:length]


# batchup's names for the two helpers above.
_length_of_batch = length_of_batch
_trim_batch = trim_batch


def _as_tuple(result: Any) -> tuple[Any, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _wrap_progress(
    batch_iter: Iterable[Any], progress_iter_func: Callable[..., Iterable[Any]] | None, n_batches: int | None
) -> Iterable[Any]:
    if n_batches is not None:
        batch_iter = itertools.islice(batch_iter, n_batches)
    if progress_iter_func is not None:
        batch_iter = progress_iter_func(batch_iter, total=n_batches, leave=False)
    return batch_iter


def _check_n_batches(n_batches: Any) -> int | None:
    if n_batches is None:
        return None
    if isinstance(n_batches, bool) or not isinstance(n_batches, (int, np.integer)) or n_batches < 0:
        raise ValueError(f"n_batches must be a non-negative int or None, got {n_batches!r}")
    return int(n_batches)


def _results(result: Any, func: Callable[..., Any], scalars: bool) -> tuple[Any, ...] | None:
    """``func``'s result for one batch as a tuple: None stays None, an array (or, if ``scalars``, a number) is one
    result, a tuple or list holds several; anything else is a TypeError."""
    if result is None:
        return None
    if isinstance(result, (tuple, list)):
        return tuple(result)
    if isinstance(result, np.ndarray) or (scalars and isinstance(result, (numbers.Number, np.generic))):
        return (result,)
    allowed = "an array, a number" if scalars else "an array"
    raise TypeError(
        f"{getattr(func, '__name__', func)!r} must return None, {allowed} or a tuple of them per batch, "
        f"got {type(result).__name__}"
    )


def batch_map_concat(
    func: Callable[..., Any],
    batch_iter: Iterable[Any],
    progress_iter_func: Callable[..., Iterable[Any]] | None = None,
    n_batches: int | None = None,
    prepend_args: Sequence[Any] | None = None,
) -> tuple[Any, ...] | None:
    """Applies ``func(*prepend_args, *batch)`` to each batch and concatenates the results along axis 0.

    ``func`` returns an array, a tuple of arrays or None (nothing kept). Returns a tuple with one concatenated array
    per result position (a 1-tuple for a single array), or None when no results were produced. At most ``n_batches``
    batches are taken from ``batch_iter``, so a long iterator can be processed a few batches at a time.
    """
    n_batches = _check_n_batches(n_batches)
    pre = tuple(prepend_args) if prepend_args is not None else ()
    parts: list[list[Any]] | None = None
    for batch in _wrap_progress(batch_iter, progress_iter_func, n_batches):
        values = _results(func(*pre, *_as_tuple(batch)), func, scalars=False)
        if values is None:
            continue
        if parts is None:
            parts = [[] for _ in values]
        elif len(values) != len(parts):
            raise ValueError(f"func returned {len(values)} results for a batch, {len(parts)} before")
        for acc, v in zip(parts, values):
            acc.append(v)
    if parts is None:
        return None
    return tuple(np.concatenate(acc, axis=0) for acc in parts)


def batch_map_mean(
    func: Callable[..., Any],
    batch_iter: Iterable[Any],
    progress_iter_func: Callable[..., Iterable[Any]] | None = None,
    sum_axis: int | tuple[int, ...] | None = None,
    n_batches: int | None = None,
    prepend_args: Sequence[Any] | None = None,
) -> tuple[Any, ...] | None:
    """The per-sample mean of ``func``'s results over the batches, as a tuple (a 1-tuple for a single result).

    Without ``sum_axis``, ``func`` returns the *sum* over the batch (a number, an array or a tuple of them); with
    ``sum_axis`` it returns per-sample values that are summed along ``sum_axis``. The sums are divided by the number
    of samples in the batches processed (as float64). Returns None when ``func`` returned nothing.
    """
    n_batches = _check_n_batches(n_batches)
    pre = tuple(prepend_args) if prepend_args is not None else ()
    sums: list[Any] | None = None
    n_samples = 0
    for batch in _wrap_progress(batch_iter, progress_iter_func, n_batches):
        args = _as_tuple(batch)
        values = _results(func(*pre, *args), func, scalars=True)
        n_samples += length_of_batch(args)
        if values is None:
            continue
        arrays = [np.asarray(v) for v in values]
        if sum_axis is not None:
            arrays = [v.sum(axis=sum_axis) for v in arrays]
        if sums is None:
            sums = arrays
        else:
            if len(arrays) != len(sums):
                raise ValueError(f"func returned {len(arrays)} results for a batch, {len(sums)} before")
            sums = [s + v for s, v in zip(sums, arrays)]
    if sums is None:
        return None
    return tuple(np.asarray(s, dtype=float) / float(n_samples) for s in sums)


class AbstractDataSource:
    """Base class: a source of mini-batches."""

    @property
    def is_random_access(self) -> bool:
        return False

    def num_samples(self, **kwargs: Any) -> int | float | None:
        """Samples in one full iteration: an int, ``np.inf`` for infinite sources, or None when unknown."""
        raise NotImplementedError

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Batch]:
        raise NotImplementedError

    def map(self, fn: Callable[..., Any]) -> MapDataSource:
        """A source whose batches are ``fn(*batch)``."""
        return MapDataSource(self, fn)

    def _n_batches_for(self, batch_size: int, n_batches: int | None, kwargs: dict[str, Any]) -> int | None:
        batch_size = check_batch_size(batch_size)
        if n_batches is not None:
            return _check_n_batches(n_batches)
        n = self.num_samples(**kwargs)
        if n is None:
            return None
        if np.isinf(n):
            raise ValueError(f"n_batches must be given for an infinite data source ({type(self).__name__})")
        return int(sampling.num_batches(int(n), batch_size))

    def batch_map_concat(
        self,
        func: Callable[..., Any],
        batch_size: int,
        progress_iter_func: Callable[..., Iterable[Any]] | None = None,
        n_batches: int | None = None,
        prepend_args: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...] | None:
        """:func:`batch_map_concat` over this source's batches (``kwargs`` go to :meth:`batch_iterator`)."""
        n_batches = self._n_batches_for(batch_size, n_batches, kwargs)
        return batch_map_concat(
            func, self.batch_iterator(batch_size, **kwargs), progress_iter_func, n_batches, prepend_args
        )

    def batch_map_mean(
        self,
        func: Callable[..., Any],
        batch_size: int,
        progress_iter_func: Callable[..., Iterable[Any]] | None = None,
        sum_axis: int | tuple[int, ...] | None = None,
        n_batches: int | None = None,
        prepend_args: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...] | None:
        """:func:`batch_map_mean` over this source's batches (``kwargs`` go to :meth:`batch_iterator`)."""
        n_batches = self._n_batches_for(batch_size, n_batches, kwargs)
        return batch_map_mean(
            func, self.batch_iterator(batch_size, **kwargs), progress_iter_func, sum_axis, n_batches, prepend_args
        )


class RandomAccessDataSource(AbstractDataSource):
    """A source whose samples can be fetched by index; batches follow a sampler.

    Without ``sampler``, a :class:`~xmanager.xm.data.sampling.StandardSampler` (or a ``SubsetSampler`` when
    ``indices`` is given) with ``repeats`` is used. ``repeats=-1`` iterates forever.
    """

    def __init__(
        self,
        length: int,
        indices: Any = None,
        repeats: int = 1,
        sampler: sampling.AbstractSampler | None = None,
        include_indices: bool = False,
    ) -> None:
        self.length = int(length)
        repeats = check_repeats(repeats)
        if sampler is not None:
            if indices is not None:
                raise ValueError("sampler cannot be combined with indices; give one or the other")
            if repeats != 1:
                raise ValueError(f"sampler cannot be combined with repeats={repeats}; give one or the other")
            if not isinstance(sampler, sampling.AbstractSampler):
                raise TypeError(f"sampler must be a sampling.AbstractSampler, got {type(sampler).__name__}")
        self.indices: np.ndarray | None = None
        if indices is not None:
            idx = np.asarray(indices)
            if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
                raise ValueError(f"indices must be a 1-D array of ints, got shape {idx.shape}, dtype {idx.dtype}")
            if idx.size and (idx.min() < -self.length or idx.max() >= self.length):
                raise IndexError(f"indices out of range for data of length {self.length}")
            self.indices = np.where(idx < 0, idx + self.length, idx) if idx.size else idx.astype(np.intp)
        self.repeats = repeats
        self.include_indices = bool(include_indices)
        if sampler is None:
            if self.indices is None:
                sampler = sampling.StandardSampler(self.length, repeats=repeats)
            else:
                sampler = sampling.SubsetSampler(self.indices, repeats=repeats)
        self.sampler = sampler

    @property
    def is_random_access(self) -> bool:
        return True

    def num_samples(self, **kwargs: Any) -> int | float:
        return self.sampler.num_indices_generated()

    def samples_by_indices_nomapping(self, indices: Any) -> Batch:
        """The samples at absolute ``indices`` (an int array or a slice, into the underlying data)."""
        raise NotImplementedError

    def samples_by_indices(self, indices: Any) -> Batch:
        """The samples at ``indices`` mapped by the sampler (positions in ``self.indices`` when it is a subset)."""
        return self.samples_by_indices_nomapping(self.sampler.map_indices(indices))

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator[np.ndarray]:
        """Batches of absolute indices, in order or shuffled (see :func:`sampling.resolve_shuffle`)."""
        batch_size = check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        if rng is None:
            return self.sampler.in_order_indices_batch_iterator(batch_size)
        return self.sampler.shuffled_indices_batch_iterator(batch_size, rng)

    def batch_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator[Batch]:
        """Batches of samples (tuples), in order or shuffled. The last batch may be short."""
        indices_iter = self.batch_indices_iterator(batch_size, shuffle=shuffle, **kwargs)
        return (self.samples_by_indices_nomapping(idx) for idx in indices_iter)


def _check_array_like(x: Any, position: int) -> int:
    if not (hasattr(x, "__len__") and hasattr(x, "__getitem__")):
        raise TypeError(f"data[{position}] must be an array-like with __len__ and __getitem__, got {type(x).__name__}")
    return len(x)


def _gather(arr: Any, idx: np.ndarray) -> Any:
    if isinstance(arr, np.ndarray):
        return arr.take(idx, axis=0)
    return arr[idx]


class ArrayDataSource(RandomAccessDataSource):
    """Batches from a list of equal-length array-likes; each batch is ``(X_b, y_b, ...)``.

    With ``include_indices`` each batch starts with the absolute sample indices: ``(idx, X_b, y_b, ...)``.
    """

    def __init__(
        self,
        data: list[Any],
        indices: Any = None,
        repeats: int = 1,
        sampler: sampling.AbstractSampler | None = None,
        include_indices: bool = False,
    ) -> None:
        if not isinstance(data, list):
            raise TypeError(f"data must be a list of array-likes, got {type(data).__name__}")
        if not data:
            raise ValueError("data must contain at least one array-like")
        lengths = [_check_array_like(x, i) for i, x in enumerate(data)]
        if len(set(lengths)) != 1:
            raise ValueError(f"all arrays in data must have the same length, got lengths {lengths}")
        self.data = data
        super().__init__(lengths[0], indices=indices, repeats=repeats, sampler=sampler, include_indices=include_indices)

    def samples_by_indices_nomapping(self, indices: Any) -> Batch:
        if isinstance(indices, slice):
            batch = tuple(x[indices] for x in self.data)
            if self.include_indices:
                return (np.arange(*indices.indices(self.length)), *batch)
            return batch
        idx = np.asarray(indices)
        batch = tuple(_gather(x, idx) for x in self.data)
        return (idx, *batch) if self.include_indices else batch

    def _slice_batch(self, spans: list[tuple[int, int]]) -> Batch:
        if len(spans) == 1:
            sl = slice(*spans[0])
            batch = tuple(x[sl] for x in self.data)
            if self.include_indices:
                return (np.arange(*spans[0]), *batch)
            return batch
        # A batch wrapping across passes: join the slices.
        pieces = []
        for x in self.data:
            if isinstance(x, np.ndarray):
                pieces.append(np.concatenate([x[a:b] for a, b in spans], axis=0))
            else:
                pieces.append(x[sampling.spans_to_indices(spans)])
        batch = tuple(pieces)
        if self.include_indices:
            return (sampling.spans_to_indices(spans), *batch)
        return batch

    def batch_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator[Batch]:
        batch_size = check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        if rng is None and type(self.sampler) is sampling.StandardSampler:
            return (self._slice_batch(spans) for spans in self.sampler.in_order_spans(batch_size))
        return super().batch_iterator(batch_size, shuffle=shuffle, **kwargs)


def _num_samples_to_value(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and np.isinf(value):
        return value
    raise TypeError(f"num_samples must be an int, np.inf or None, got {value!r}")


class CallableDataSource(AbstractDataSource):
    """Batches from ``batch_iterator_fn(batch_size, **kwargs)``.

    ``num_samples_fn`` is None (unknown), an int, ``np.inf``, or a callable taking the same keyword arguments.
    """

    def __init__(self, batch_iterator_fn: Callable[..., Iterable[Any]], num_samples_fn: Any = None) -> None:
        if not callable(batch_iterator_fn):
            raise TypeError(f"batch_iterator_fn must be callable, got {type(batch_iterator_fn).__name__}")
        if num_samples_fn is not None and not callable(num_samples_fn):
            _num_samples_to_value(num_samples_fn)
        self.batch_iterator_fn = batch_iterator_fn
        self.num_samples_fn = num_samples_fn

    def num_samples(self, **kwargs: Any) -> int | float | None:
        if callable(self.num_samples_fn):
            return _num_samples_to_value(self.num_samples_fn(**kwargs))
        return _num_samples_to_value(self.num_samples_fn)

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Batch]:
        batch_size = check_batch_size(batch_size)
        return iter(self.batch_iterator_fn(batch_size, **kwargs))


class IteratorDataSource(AbstractDataSource):
    """Batches from an existing iterator; ``batch_size`` and other arguments are ignored. Can be consumed once."""

    def __init__(self, batch_iter: Iterable[Any], n_samples: Any = None) -> None:
        self.batch_iter = iter(batch_iter)
        self.n_samples = _num_samples_to_value(n_samples)

    def num_samples(self, **kwargs: Any) -> int | float | None:
        return self.n_samples

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Batch]:
        check_batch_size(batch_size)
        return self.batch_iter


def _check_sources(datasets: Any, owner: str) -> list[AbstractDataSource]:
    if not isinstance(datasets, (list, tuple)) or not datasets:
        raise TypeError(f"{owner}: datasets must be a non-empty list of data sources")
    out = []
    for i, d in enumerate(datasets):
        if not isinstance(d, AbstractDataSource):
            raise TypeError(f"{owner}: datasets[{i}] must be a data source, got {type(d).__name__}")
        out.append(d)
    return out


def _require_random_access(source: AbstractDataSource, method: str) -> None:
    if not source.is_random_access:
        raise TypeError(
            f"{type(source).__name__}.{method} needs random access, and a member data source does not have it"
        )


class CompositeDataSource(AbstractDataSource):
    """Zips several sources: each step takes one batch from every member (each shuffled independently).

    With ``flatten`` the batches are joined into one tuple, otherwise a tuple of per-member tuples. With ``trim`` the
    member batches of a step are cut to the shortest one. Iteration stops when any member is exhausted. When every
    member is random access, so is the composite: its index batches are tuples of the members' index batches (always
    cut to the shortest) and ``samples_by_indices`` takes such a tuple.
    """

    def __init__(self, datasets: list[AbstractDataSource], flatten: bool = True, trim: bool = True) -> None:
        self.datasets = _check_sources(datasets, "CompositeDataSource")
        self.flatten = bool(flatten)
        self.trim = bool(trim)

    @property
    def is_random_access(self) -> bool:
        return all(d.is_random_access for d in self.datasets)

    def num_samples(self, **kwargs: Any) -> int | float | None:
        counts = [d.num_samples(**kwargs) for d in self.datasets]
        known = [c for c in counts if c is not None]
        return min(known) if known else None

    def _combine(self, batches: Sequence[Any]) -> Any:
        parts = [_as_tuple(b) for b in batches]
        if self.trim:
            lengths = [length_of_batch(p) for p in parts]
            if min(lengths) != max(lengths):
                parts = [trim_batch(p, min(lengths)) for p in parts]
        if self.flatten:
            return tuple(itertools.chain.from_iterable(parts))
        return tuple(parts)

    def _per_member(self, indices: Any, method: str) -> list[Any]:
        _require_random_access(self, method)
        if not isinstance(indices, (tuple, list)):
            raise ValueError(
                f"CompositeDataSource.{method} takes a tuple with one index batch per member "
                f"({len(self.datasets)}), not a {type(indices).__name__}"
            )
        if len(indices) != len(self.datasets):
            raise ValueError(
                f"CompositeDataSource.{method} takes one index batch per member ({len(self.datasets)}), "
                f"got {len(indices)}"
            )
        return list(indices)

    def samples_by_indices_nomapping(self, indices: Any) -> Any:
        """The batch for ``indices``, a tuple with one index batch (absolute indices) per member."""
        per_member = self._per_member(indices, "samples_by_indices_nomapping")
        return self._combine(
            [d.samples_by_indices_nomapping(i) for d, i in zip(self.datasets, per_member)]  # type: ignore[attr-defined]
        )

    def samples_by_indices(self, indices: Any) -> Any:
        """The batch for ``indices``, a tuple with one index batch per member, mapped by each member."""
        per_member = self._per_member(indices, "samples_by_indices")
        return self._combine(
            [d.samples_by_indices(i) for d, i in zip(self.datasets, per_member)]  # type: ignore[attr-defined]
        )

    def batch_indices_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        """Tuples of the members' index batches, cut to the shortest (``kwargs`` such as ``shuffle`` go to each)."""
        _require_random_access(self, "batch_indices_iterator")
        batch_size = check_batch_size(batch_size)
        iterators = [d.batch_indices_iterator(batch_size, **kwargs) for d in self.datasets]  # type: ignore[attr-defined]
        return (self._trim_indices(step) for step in zip(*iterators))

    @staticmethod
    def _trim_indices(step: tuple[Any, ...]) -> tuple[Any, ...]:
        lengths = [length_of_batch(b) for b in step]
        if min(lengths) != max(lengths):
            return tuple(trim_batch(b, min(lengths)) for b in step)
        return tuple(step)

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Any]:
        batch_size = check_batch_size(batch_size)
        iterators = [d.batch_iterator(batch_size, **kwargs) for d in self.datasets]
        return (self._combine(step) for step in zip(*iterators))


def stratified_order(batches_per_member: Sequence[int]) -> np.ndarray:
    """Member positions for a stratified in-order pass: every member's batches spread evenly over the pass.

    The pass has as many steps as the largest member has batches; member ``d`` with ``n_d`` batches takes its
    ``k``-th batch at step ``ceil(k * max_n / n_d)``. Within a step members come in their order.
    """
    counts = np.asarray(batches_per_member, dtype=np.int64)
    if counts.size == 0 or counts.max() <= 0:
        return np.zeros(0, dtype=np.int64)
    longest = int(counts.max())
    steps, members = [], []
    for member, n in enumerate(counts):
        k = np.arange(int(n), dtype=np.int64)
        steps.append((k * longest + n - 1) // n)
        members.append(np.full(int(n), member, dtype=np.int64))
    step, owner = np.concatenate(steps), np.concatenate(members)
    return owner[np.lexsort((owner, step))]


def stratified_shuffled_order(batches_per_member: Sequence[int], shuffle_rng: Any) -> np.ndarray:
    """Member positions for a stratified shuffled pass: each member as often as it has batches, in random order."""
    counts = [int(n) for n in batches_per_member]
    order = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return order[shuffle_rng.permutation(order.size)]


class ChoiceDataSource(AbstractDataSource):
    """Each batch comes whole from one member source.

    Not stratified, the members take turns (in their order, or in a fresh random order every round when shuffling)
    until one of them is exhausted. Stratified, when every member has a known finite size, the whole of every member
    is used: each member appears as often as it has batches, spread evenly through the pass (in order) or at random
    (shuffled); otherwise members take turns as above. Members are shuffled with the same random source.

    Random access when every member is: index batches are :class:`ChoiceBatch` ``(sample_indices, ds_index)`` and
    ``samples_by_indices`` takes one.
    """

    def __init__(self, datasets: list[AbstractDataSource], stratified: bool = False) -> None:
        self.datasets = _check_sources(datasets, "ChoiceDataSource")
        self.stratified = bool(stratified)

    @property
    def is_random_access(self) -> bool:
        return all(d.is_random_access for d in self.datasets)

    def num_samples(self, **kwargs: Any) -> int | float:
        """The members' sizes added up, an unknown size counting as 0."""
        counts = [d.num_samples(**kwargs) for d in self.datasets]
        return sum(c for c in counts if c is not None)

    def batch_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator[Any]:
        batch_size = check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        iterators = [d.batch_iterator(batch_size, shuffle=shuffle, **kwargs) for d in self.datasets]
        return (choice.sample_indices for choice in self._ds_iterator(batch_size, iterators, rng, **kwargs))

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator[ChoiceBatch]:
        """:class:`ChoiceBatch` index batches in the order :meth:`batch_iterator` uses."""
        _require_random_access(self, "batch_indices_iterator")
        batch_size = check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        iterators = [
            d.batch_indices_iterator(batch_size, shuffle=rng, **kwargs)  # type: ignore[attr-defined]
            for d in self.datasets
        ]
        return self._ds_iterator(batch_size, iterators, rng, **kwargs)

    def _member_batch(self, indices: Any, method: str) -> tuple[Any, Any]:
        _require_random_access(self, method)
        if not isinstance(indices, ChoiceBatch):
            raise TypeError(f"ChoiceDataSource.{method} takes a ChoiceBatch, got {type(indices).__name__}")
        return self.datasets[indices.ds_index], indices.sample_indices

    def samples_by_indices_nomapping(self, indices: ChoiceBatch) -> Any:
        member, sample_indices = self._member_batch(indices, "samples_by_indices_nomapping")
        return member.samples_by_indices_nomapping(sample_indices)

    def samples_by_indices(self, indices: ChoiceBatch) -> Any:
        member, sample_indices = self._member_batch(indices, "samples_by_indices")
        return member.samples_by_indices(sample_indices)

    def _ds_iterator(
        self, batch_size: int, iterators: Sequence[Iterator[Any]], shuffle_rng: Any, **kwargs: Any
    ) -> Iterator[ChoiceBatch]:
        """``ChoiceBatch(item, member)`` for the items of the members' ``iterators``, in the order described above."""
        batches = self._stratified_batches(batch_size, shuffle_rng, kwargs) if self.stratified else None
        if batches is not None:
            if shuffle_rng is None:
                order = stratified_order(batches)
            else:
                order = stratified_shuffled_order(batches, shuffle_rng)
            return self._in_order_of(iterators, order)
        return self._in_turns(iterators, shuffle_rng)

    def _stratified_batches(self, batch_size: int, shuffle_rng: Any, kwargs: dict[str, Any]) -> list[int] | None:
        counts = [d.num_samples(shuffle=shuffle_rng, **kwargs) for d in self.datasets]
        if any(c is None or np.isinf(c) for c in counts):
            return None
        return [int(sampling.num_batches(int(c), batch_size)) for c in counts]  # type: ignore[arg-type]

    @staticmethod
    def _in_order_of(iterators: Sequence[Iterator[Any]], order: np.ndarray) -> Iterator[ChoiceBatch]:
        for member in order:
            try:
                item = next(iterators[member])
            except StopIteration:
                return
            yield ChoiceBatch(item, int(member))

    @staticmethod
    def _in_turns(iterators: Sequence[Iterator[Any]], shuffle_rng: Any) -> Iterator[ChoiceBatch]:
        while True:
            members = range(len(iterators)) if shuffle_rng is None else shuffle_rng.permutation(len(iterators))
            for member in members:
                try:
                    item = next(iterators[member])
                except StopIteration:
                    return
                yield ChoiceBatch(item, int(member))

    # batchup's names for the two pass orders.
    _ds_indices_stratified_in_order = staticmethod(stratified_order)
    _ds_indices_stratified_shuffled = staticmethod(stratified_shuffled_order)


class MapDataSource(AbstractDataSource):
    """Batches of ``source`` passed through ``fn(*batch)``; ``fn`` returns the new batch (usually a tuple).

    Random access when ``source`` is: index batches are the source's, and ``samples_by_indices`` applies ``fn``.
    """

    def __init__(self, source: AbstractDataSource, fn: Callable[..., Any]) -> None:
        if not isinstance(source, AbstractDataSource):
            raise TypeError(f"source must be a data source, got {type(source).__name__}")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.source = source
        self.fn = fn

    @property
    def is_random_access(self) -> bool:
        return self.source.is_random_access

    def num_samples(self, **kwargs: Any) -> int | float | None:
        return self.source.num_samples(**kwargs)

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Any]:
        inner = self.source.batch_iterator(batch_size, **kwargs)
        return (self.fn(*_as_tuple(b)) for b in inner)

    def samples_by_indices_nomapping(self, indices: Any) -> Any:
        _require_random_access(self, "samples_by_indices_nomapping")
        return self.fn(*_as_tuple(self.source.samples_by_indices_nomapping(indices)))  # type: ignore[attr-defined]

    def samples_by_indices(self, indices: Any) -> Any:
        _require_random_access(self, "samples_by_indices")
        return self.fn(*_as_tuple(self.source.samples_by_indices(indices)))  # type: ignore[attr-defined]

    def batch_indices_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Any]:
        _require_random_access(self, "batch_indices_iterator")
        return self.source.batch_indices_iterator(batch_size, **kwargs)  # type: ignore[attr-defined]


def _is_array_like(x: Any) -> bool:
    return hasattr(x, "__len__") and hasattr(x, "__getitem__")


def coerce_data_source(x: Any) -> AbstractDataSource:
    """Turns ``x`` into a data source: data sources pass through, a non-empty list or tuple of array-likes becomes
    an :class:`ArrayDataSource`, an iterator an :class:`IteratorDataSource` and a callable a
    :class:`CallableDataSource`. An empty sequence is a ValueError, anything else a TypeError.
    """
    if isinstance(x, AbstractDataSource):
        return x
    if isinstance(x, (list, tuple)):
        for i, item in enumerate(x):
            if not _is_array_like(item):
                raise TypeError(
                    f"cannot make a data source from a sequence whose item {i} is a "
                    f"{type(item).__name__}, not an array-like (with __len__ and __getitem__)"
                )
        if not x:
            raise ValueError("cannot make a data source from an empty sequence")
        return ArrayDataSource(list(x))
    if isinstance(x, collections.abc.Iterator):
        return IteratorDataSource(x)
    if callable(x):
        return CallableDataSource(x)
    raise TypeError(
        f"cannot make a data source from {type(x).__name__}; expected a data source, a list or tuple of arrays, "
        "an iterator or a callable"
    )
