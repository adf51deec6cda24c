"""Data sources: objects that produce mini-batches (tuples of arrays), with batchup-compatible names and semantics.

Typical use::

    ds = ArrayDataSource([train_X, train_y])
    for batch_X, batch_y in ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(0)):
        ...

In-order batches of an :class:`ArrayDataSource` without ``indices`` are taken with slices, so for numpy arrays they
are views of the data (do not modify them in place unless you mean to modify the data). Shuffled batches are gathered
with the permutation and are copies.
"""

from __future__ import annotations

import collections.abc
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from xmanager.xm.data import sampling
from xmanager.xm.data.sampling import check_batch_size, check_repeats, resolve_shuffle

__all__ = [
    "AbstractDataSource",
    "ArrayDataSource",
    "CallableDataSource",
    "ChoiceDataSource",
    "CompositeDataSource",
    "IteratorDataSource",
    "MapDataSource",
    "RandomAccessDataSource",
    "batch_map_concat",
    "batch_map_mean",
    "coerce_data_source",
]

Batch = tuple[Any, ...]


def _batch_length(batch: Any) -> int:
    if isinstance(batch, (tuple, list)):
        if not batch:
            return 0
        return _batch_length(batch[0])
    return len(batch)


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


def batch_map_concat(
    func: Callable[..., Any],
    batch_iter: Iterable[Any],
    progress_iter_func: Callable[..., Iterable[Any]] | None = None,
    n_batches: int | None = None,
    prepend_args: Sequence[Any] | None = None,
) -> tuple[Any, ...] | None:
    """Applies ``func(*prepend_args, *batch)`` to each batch and concatenates the results along axis 0.

    ``func`` returns an array, a tuple of arrays or None (nothing kept). Returns a tuple with one concatenated array
    per result position, or None when no results were produced. At most ``n_batches`` batches are processed.
    """
    n_batches = _check_n_batches(n_batches)
    pre = tuple(prepend_args) if prepend_args is not None else ()
    parts: list[list[Any]] | None = None
    for batch in _wrap_progress(batch_iter, progress_iter_func, n_batches):
        result = func(*pre, *_as_tuple(batch))
        if result is None:
            continue
        values = _as_tuple(result)
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
) -> Any:
    """The per-sample mean of ``func``'s results over the batches.

    Without ``sum_axis``, ``func`` returns the *sum* over the batch (a value or a tuple of values); with ``sum_axis``
    it returns per-sample values that are summed along ``sum_axis``. The sums are divided by the number of samples.
    Returns a tuple when ``func`` returns a tuple or list, a single value otherwise, and None when no samples were
    processed.
    """
    n_batches = _check_n_batches(n_batches)
    pre = tuple(prepend_args) if prepend_args is not None else ()
    sums: list[Any] | None = None
    as_tuple = False
    n_samples = 0
    for batch in _wrap_progress(batch_iter, progress_iter_func, n_batches):
        args = _as_tuple(batch)
        result = func(*pre, *args)
        n_samples += _batch_length(args)
        if result is None:
            continue
        as_tuple = isinstance(result, (tuple, list))
        values = [np.asarray(v) for v in _as_tuple(result)]
        if sum_axis is not None:
            values = [v.sum(axis=sum_axis) for v in values]
        if sums is None:
            sums = values
        else:
            if len(values) != len(sums):
                raise ValueError(f"func returned {len(values)} results for a batch, {len(sums)} before")
            sums = [s + v for s, v in zip(sums, values)]
    if sums is None or n_samples == 0:
        return None
    means = tuple(s / float(n_samples) for s in sums)
    return means if as_tuple else means[0]


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
    ) -> Any:
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
        """The samples at absolute ``indices`` (into the underlying data)."""
        raise NotImplementedError

    def samples_by_indices(self, indices: Any) -> Batch:
        """The samples at ``indices``, relative to ``self.indices`` when the source is a subset."""
        idx = np.asarray(indices)
        if self.indices is not None:
            idx = self.indices[idx]
        return self.samples_by_indices_nomapping(idx)

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


class CompositeDataSource(AbstractDataSource):
    """Zips several sources: each step takes one batch from every member (each shuffled independently).

    With ``flatten`` the batches are joined into one tuple, otherwise a tuple of per-member tuples. With ``trim`` the
    member batches of a step are cut to the shortest one. Iteration stops when any member is exhausted.
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
            n = min(_batch_length(p) for p in parts)
            parts = [tuple(x[:n] for x in p) if _batch_length(p) != n else p for p in parts]
        if self.flatten:
            return tuple(itertools.chain.from_iterable(parts))
        return tuple(parts)

    def samples_by_indices_nomapping(self, indices: Any) -> Any:
        if not self.is_random_access:
            raise TypeError("samples_by_indices_nomapping needs all member data sources to be random access")
        return self._combine([d.samples_by_indices_nomapping(indices) for d in self.datasets])  # type: ignore[attr-defined]

    def samples_by_indices(self, indices: Any) -> Any:
        if not self.is_random_access:
            raise TypeError("samples_by_indices needs all member data sources to be random access")
        return self._combine([d.samples_by_indices(indices) for d in self.datasets])  # type: ignore[attr-defined]

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Any]:
        batch_size = check_batch_size(batch_size)
        iterators = [d.batch_iterator(batch_size, **kwargs) for d in self.datasets]
        return (self._combine(step) for step in zip(*iterators))


class ChoiceDataSource(AbstractDataSource):
    """Each batch comes whole from one member source.

    In order, the members are visited one after the other. Shuffled, the members' batches are interleaved in random
    order (``stratified=False``) or spread evenly, in proportion to each member's number of batches
    (``stratified=True``); members are shuffled with the same random source. Members must have a known size, except
    that when shuffling, infinite members are picked uniformly at random for every batch.
    """

    def __init__(self, datasets: list[AbstractDataSource], stratified: bool = False) -> None:
        self.datasets = _check_sources(datasets, "ChoiceDataSource")
        self.stratified = bool(stratified)

    def num_samples(self, **kwargs: Any) -> int | float | None:
        counts = [d.num_samples(**kwargs) for d in self.datasets]
        if any(c is None for c in counts):
            return None
        return sum(counts)  # type: ignore[arg-type]

    def batch_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator[Any]:
        batch_size = check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        iterators = [d.batch_iterator(batch_size, shuffle=shuffle, **kwargs) for d in self.datasets]
        if rng is None:
            return itertools.chain.from_iterable(iterators)
        counts = [d.num_samples(shuffle=shuffle, **kwargs) for d in self.datasets]
        if any(c is None for c in counts):
            raise ValueError("ChoiceDataSource needs members with a known num_samples to shuffle")
        if any(np.isinf(c) for c in counts):  # type: ignore[arg-type]
            return self._random_choice(iterators, rng)
        per_member = [int(sampling.num_batches(int(c), batch_size)) for c in counts]  # type: ignore[arg-type]
        order = np.repeat(np.arange(len(iterators)), per_member)
        if self.stratified:
            # Position of each batch within its member, scaled to [0, 1): interleaves members evenly.
            keys = np.concatenate([(np.arange(n) + 0.5) / n for n in per_member if n > 0]) if order.size else order
            order = order[np.argsort(keys, kind="stable")]
        else:
            order = order[rng.permutation(order.size)]
        return self._in_order_of(iterators, order)

    @staticmethod
    def _in_order_of(iterators: list[Iterator[Any]], order: np.ndarray) -> Iterator[Any]:
        for i in order:
            try:
                yield next(iterators[i])
            except StopIteration:
                return

    @staticmethod
    def _random_choice(iterators: list[Iterator[Any]], rng: Any) -> Iterator[Any]:
        while True:
            i = (
                int(rng.integers(len(iterators)))
                if isinstance(rng, np.random.Generator)
                else rng.randint(len(iterators))
            )
            try:
                yield next(iterators[i])
            except StopIteration:
                return


class MapDataSource(AbstractDataSource):
    """Batches of ``source`` passed through ``fn(*batch)``; ``fn`` returns the new batch (usually a tuple)."""

    def __init__(self, source: AbstractDataSource, fn: Callable[..., Any]) -> None:
        if not isinstance(source, AbstractDataSource):
            raise TypeError(f"source must be a data source, got {type(source).__name__}")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.source = source
        self.fn = fn

    def num_samples(self, **kwargs: Any) -> int | float | None:
        return self.source.num_samples(**kwargs)

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator[Any]:
        inner = self.source.batch_iterator(batch_size, **kwargs)
        return (self.fn(*_as_tuple(b)) for b in inner)


def coerce_data_source(x: Any) -> AbstractDataSource:
    """Turns ``x`` into a data source: data sources pass through, a list of arrays becomes an
    :class:`ArrayDataSource`, an iterator an :class:`IteratorDataSource` and a callable a :class:`CallableDataSource`.
    """
    if isinstance(x, AbstractDataSource):
        return x
    if isinstance(x, list):
        return ArrayDataSource(x)
    if isinstance(x, collections.abc.Iterator):
        return IteratorDataSource(x)
    if callable(x):
        return CallableDataSource(x)
    raise TypeError(
        f"cannot make a data source from {type(x).__name__}; expected a data source, a list of arrays, an iterator "
        "or a callable"
    )
