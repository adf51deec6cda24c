"""Data sources in xmanager.xm.data.data_source (batchup-compatible names and semantics)."""

import subprocess
import sys

import numpy as np
import pytest
from xmanager.xm.data import data_source, sampling


@pytest.fixture
def xy():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10) * 10
    return x, y


def _rows(batches, pos=0):
    return np.concatenate([b[pos] for b in batches])


def test_package_import_is_lazy():
    code = (
        "import sys, xmanager.xm.data as d\n"
        "assert not [m for m in sys.modules if m.startswith('xmanager.xm.data.')], sorted(sys.modules)\n"
        "assert d.sampling.StandardSampler and 'xmanager.xm.data.sampling' in sys.modules\n"
        "assert 'xmanager.xm.data.work_pool' not in sys.modules\n"
        "from xmanager.xm.data import data_source, sampling\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_in_order_batches(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y])
    assert ds.is_random_access
    assert ds.num_samples() == 10
    batches = list(ds.batch_iterator(4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)
    np.testing.assert_array_equal(_rows(batches, 0), x)
    np.testing.assert_array_equal(_rows(batches, 1), y)
    assert list(ds.batch_iterator(4, shuffle=False))[2][1].tolist() == [80, 90]


def test_in_order_batches_are_slices():
    arr = np.random.RandomState(0).rand(1000, 8).astype(np.float32)
    ds = data_source.ArrayDataSource([arr])
    bs = 64
    for i, (b,) in zip(range(0, 1000, bs), ds.batch_iterator(bs)):
        np.testing.assert_array_equal(b, arr[i : i + bs])
        assert b.base is arr or np.shares_memory(b, arr)  # a slice (view), not a fancy-indexed copy
        assert b.flags.c_contiguous


def test_in_order_uses_slices_not_fancy_indexing():
    class Recorder:
        def __init__(self, n):
            self.n = n
            self.keys = []

        def __len__(self):
            return self.n

        def __getitem__(self, key):
            self.keys.append(key)
            return np.arange(self.n)[key]

    rec = Recorder(7)
    list(data_source.ArrayDataSource([rec]).batch_iterator(3))
    assert rec.keys == [slice(0, 3), slice(3, 6), slice(6, 7)]
    rec.keys.clear()
    out = list(data_source.ArrayDataSource([rec]).batch_iterator(3, shuffle=np.random.RandomState(0)))
    assert all(isinstance(k, np.ndarray) for k in rec.keys)
    assert sorted(np.concatenate([b[0] for b in out]).tolist()) == list(range(7))


def test_array_like_list_data():
    ds = data_source.ArrayDataSource([np.arange(5), np.array(list("abcde"))])
    assert [b[1].tolist() for b in ds.batch_iterator(2)] == [["a", "b"], ["c", "d"], ["e"]]


@pytest.mark.parametrize("make_rng", [lambda: np.random.RandomState(3), lambda: np.random.default_rng(3)])
def test_shuffled_reproducible(xy, make_rng):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y])
    a = list(ds.batch_iterator(4, shuffle=make_rng()))
    b = list(ds.batch_iterator(4, shuffle=make_rng()))
    assert [len(t[0]) for t in a] == [4, 4, 2]
    for (ax, ay), (bx, by) in zip(a, b):
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ay, by)
    ys = _rows(a, 1)
    assert sorted(ys.tolist()) == y.tolist() and ys.tolist() != y.tolist()
    # rows stay aligned across arrays
    np.testing.assert_array_equal(_rows(a, 0)[:, 0], ys * 3 / 10)


def test_shuffle_true_global_state(xy):
    ds = data_source.ArrayDataSource(list(xy))
    np.random.seed(11)
    a = _rows(ds.batch_iterator(3, shuffle=True), 1)
    np.random.seed(11)
    b = _rows(ds.batch_iterator(3, shuffle=True), 1)
    assert a.tolist() == b.tolist()


def test_bad_shuffle(xy):
    with pytest.raises(TypeError, match="shuffle"):
        data_source.ArrayDataSource(list(xy)).batch_iterator(3, shuffle="yes")


def test_repeats(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y], repeats=2)
    assert ds.num_samples() == 20
    batches = list(ds.batch_iterator(6))
    assert [len(b[1]) for b in batches] == [6, 6, 6, 2]
    assert batches[1][1].tolist() == [60, 70, 80, 90, 0, 10]  # wraps into the second pass
    np.testing.assert_array_equal(_rows(batches, 0), np.concatenate([x, x]))
    shuffled = _rows(ds.batch_iterator(6, shuffle=np.random.RandomState(0)), 1)
    assert sorted(shuffled[:10].tolist()) == y.tolist()
    assert sorted(shuffled[10:].tolist()) == y.tolist()


def test_repeats_infinite(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y], repeats=-1)
    assert ds.num_samples() == np.inf
    it = ds.batch_iterator(4, shuffle=np.random.default_rng(0))
    ys = np.concatenate([next(it)[1] for _ in range(10)])  # 40 samples = 4 passes
    for p in range(4):
        assert sorted(ys[10 * p : 10 * p + 10].tolist()) == y.tolist()
    it2 = ds.batch_iterator(4)
    assert [next(it2)[1].tolist() for _ in range(3)] == [[0, 10, 20, 30], [40, 50, 60, 70], [80, 90, 0, 10]]


def test_include_indices(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y], include_indices=True)
    batches = list(ds.batch_iterator(4))
    assert len(batches[0]) == 3
    assert _rows(batches, 0).tolist() == list(range(10))
    for idx, bx, by in ds.batch_iterator(4, shuffle=np.random.RandomState(0)):
        np.testing.assert_array_equal(bx, x[idx])
        np.testing.assert_array_equal(by, y[idx])
    wrapped = data_source.ArrayDataSource([y], repeats=2, include_indices=True)
    for idx, by in wrapped.batch_iterator(3):
        np.testing.assert_array_equal(by, y[idx])


def test_indices_subset(xy):
    x, y = xy
    idx = np.array([8, 1, 5])
    ds = data_source.ArrayDataSource([x, y], indices=idx, include_indices=True)
    assert ds.num_samples() == 3
    batches = list(ds.batch_iterator(2))
    assert [b[0].tolist() for b in batches] == [[8, 1], [5]]
    assert [b[2].tolist() for b in batches] == [[80, 10], [50]]
    shuffled = _rows(ds.batch_iterator(2, shuffle=np.random.RandomState(0)), 2)
    assert sorted(shuffled.tolist()) == [10, 50, 80]
    # samples_by_indices is relative to the subset; the _nomapping variant is absolute
    assert ds.samples_by_indices([0, 2])[2].tolist() == [80, 50]
    assert ds.samples_by_indices_nomapping([0, 2])[2].tolist() == [0, 20]
    rep = data_source.ArrayDataSource([y], indices=idx, repeats=2)
    assert _rows(rep.batch_iterator(4), 0).tolist() == [80, 10, 50] * 2
    with pytest.raises(IndexError, match="indices"):
        data_source.ArrayDataSource([x], indices=[0, 10])


def test_batch_indices_iterator(xy):
    ds = data_source.ArrayDataSource(list(xy))
    assert [b.tolist() for b in ds.batch_indices_iterator(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    got = np.concatenate(list(ds.batch_indices_iterator(4, shuffle=np.random.RandomState(0))))
    assert sorted(got.tolist()) == list(range(10))


def test_sampler(xy):
    x, y = xy
    sampler = sampling.WeightedSampler.class_balancing_sampler(np.array([0] * 9 + [1]))
    ds = data_source.ArrayDataSource([x, y], sampler=sampler)
    assert ds.num_samples() == np.inf
    by = next(ds.batch_iterator(2000, shuffle=np.random.RandomState(0)))[1]
    assert 0.4 < np.mean(by == 90) < 0.6
    with pytest.raises(NotImplementedError, match="in-order"):
        ds.batch_iterator(10)
    sub = data_source.ArrayDataSource([y], sampler=sampling.SubsetSampler([3, 4]))
    assert [b[0].tolist() for b in sub.batch_iterator(5)] == [[30, 40]]


def test_bad_inputs(xy):
    x, y = xy
    with pytest.raises(ValueError, match="same length"):
        data_source.ArrayDataSource([x, y[:5]])
    with pytest.raises(TypeError, match="data must be a list"):
        data_source.ArrayDataSource((x, y))
    with pytest.raises(TypeError, match="data must be a list"):
        data_source.ArrayDataSource(x)
    with pytest.raises(ValueError, match="data"):
        data_source.ArrayDataSource([])
    with pytest.raises(TypeError, match=r"data\[1\]"):
        data_source.ArrayDataSource([x, 5])
    for repeats in (0, -2):
        with pytest.raises(ValueError, match="repeats"):
            data_source.ArrayDataSource([x], repeats=repeats)
    ds = data_source.ArrayDataSource([x])
    for bs in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            ds.batch_iterator(bs)
        with pytest.raises(ValueError, match="batch_size"):
            ds.batch_iterator(bs, shuffle=True)
        with pytest.raises(ValueError, match="batch_size"):
            ds.batch_indices_iterator(bs)
    with pytest.raises(ValueError, match="indices"):
        data_source.ArrayDataSource([x], indices=[0, 1], sampler=sampling.StandardSampler(10))
    with pytest.raises(ValueError, match="repeats"):
        data_source.ArrayDataSource([x], repeats=2, sampler=sampling.StandardSampler(10))
    with pytest.raises(ValueError, match="n_batches"):
        data_source.ArrayDataSource([x], repeats=-1).batch_map_concat(lambda a: a, 4)
    with pytest.raises(ValueError, match="n_batches"):
        data_source.ArrayDataSource([x], repeats=-1).batch_map_mean(lambda a: a.sum(), 4)
    with pytest.raises(ValueError, match="n_batches"):
        data_source.CallableDataSource(lambda bs: iter([]), np.inf).batch_map_mean(lambda a: a.sum(), 4)


def test_callable_source(xy):
    x, y = xy

    def batches(batch_size, shuffle=None):
        return data_source.ArrayDataSource([x, y]).batch_iterator(batch_size, shuffle=shuffle)

    ds = data_source.CallableDataSource(batches, 10)
    assert ds.num_samples() == 10
    assert not ds.is_random_access
    assert len(list(ds.batch_iterator(3))) == 4
    assert sorted(_rows(ds.batch_iterator(3, shuffle=np.random.RandomState(0)), 1).tolist()) == y.tolist()
    assert data_source.CallableDataSource(batches).num_samples() is None
    fn_ds = data_source.CallableDataSource(batches, lambda shuffle=None: 10 if shuffle is None else 5)
    assert fn_ds.num_samples() == 10 and fn_ds.num_samples(shuffle=True) == 5
    assert data_source.CallableDataSource(batches, np.inf).num_samples() == np.inf
    with pytest.raises(TypeError, match="batch_iterator_fn"):
        data_source.CallableDataSource(5)


def test_iterator_source(xy):
    x, y = xy
    it = data_source.ArrayDataSource([x, y]).batch_iterator(4)
    ds = data_source.IteratorDataSource(it, n_samples=10)
    assert ds.num_samples() == 10
    out = list(ds.batch_iterator(999))  # batch_size is ignored
    assert [len(b[0]) for b in out] == [4, 4, 2]
    assert data_source.IteratorDataSource(iter([])).num_samples() is None


def test_composite_flatten_and_nested(xy):
    x, y = xy
    a = data_source.ArrayDataSource([x, y])
    b = data_source.ArrayDataSource([y * 2])
    comp = data_source.CompositeDataSource([a, b])
    assert comp.is_random_access
    assert comp.num_samples() == 10
    out = list(comp.batch_iterator(4))
    assert all(len(t) == 3 for t in out)
    np.testing.assert_array_equal(_rows(out, 2), y * 2)
    nested = list(data_source.CompositeDataSource([a, b], flatten=False).batch_iterator(4))
    assert len(nested[0]) == 2 and len(nested[0][0]) == 2 and len(nested[0][1]) == 1
    # one index batch per member, as batchup; a bare index array is refused rather than read as one index per member
    assert comp.samples_by_indices_nomapping((np.array([1, 2]), np.array([3, 4])))[2].tolist() == [60, 80]
    with pytest.raises(ValueError, match="one index batch per member"):
        comp.samples_by_indices_nomapping(np.array([1, 2]))


def test_composite_independent_shuffles_and_trim(xy):
    x, y = xy
    a = data_source.ArrayDataSource([y])
    b = data_source.ArrayDataSource([np.arange(6)], repeats=-1)
    comp = data_source.CompositeDataSource([a, b])
    assert comp.num_samples() == 10
    out = list(comp.batch_iterator(4, shuffle=np.random.RandomState(0)))
    assert [(len(t[0]), len(t[1])) for t in out] == [(4, 4), (4, 4), (2, 2)]  # trimmed to the shortest member
    again = list(comp.batch_iterator(4, shuffle=np.random.RandomState(0)))
    assert [t[0].tolist() for t in out] == [t[0].tolist() for t in again]
    assert sorted(_rows(out, 0).tolist()) == y.tolist()
    # Same data shuffled independently gives different orders.
    same = data_source.CompositeDataSource([data_source.ArrayDataSource([y]), data_source.ArrayDataSource([y])])
    s = list(same.batch_iterator(10, shuffle=np.random.RandomState(1)))[0]
    assert s[0].tolist() != s[1].tolist()
    untrimmed = data_source.CompositeDataSource([a, b], trim=False)
    assert [(len(t[0]), len(t[1])) for t in untrimmed.batch_iterator(4)] == [(4, 4), (4, 4), (2, 4)]


def test_choice_source():
    a = data_source.ArrayDataSource([np.zeros(6)])
    b = data_source.ArrayDataSource([np.ones(3)])
    ch = data_source.ChoiceDataSource([a, b])
    assert ch.num_samples() == 9
    # members take turns until one is exhausted (b's third turn ends the pass)
    in_order = list(ch.batch_iterator(2))
    assert [b_[0].tolist() for b_ in in_order] == [[0, 0], [1, 1], [0, 0], [1], [0, 0]]
    for shuffle in (np.random.RandomState(0), np.random.default_rng(0)):
        out = list(ch.batch_iterator(2, shuffle=shuffle))
        members = [int(t[0][0]) for t in out]
        assert all(len(set(t[0].tolist())) == 1 for t in out)  # each batch from one member
        rounds = [members[i : i + 2] for i in range(0, len(members) - 1, 2)]
        assert all(sorted(r) == [0, 1] for r in rounds)  # every round visits each member once
        assert members.count(1) == 2 or members[-1] == 0  # the pass ends when b runs out
    strat = list(
        data_source.ChoiceDataSource([a, b], stratified=True).batch_iterator(2, shuffle=np.random.RandomState(0))
    )
    assert sorted(int(t[0][0]) for t in strat) == [0, 0, 0, 1, 1]  # stratified: all of every member
    assert sum(len(t[0]) for t in strat) == 9
    inf = data_source.ChoiceDataSource([data_source.ArrayDataSource([np.zeros(6)], repeats=-1), b])
    it = inf.batch_iterator(2, shuffle=np.random.RandomState(0))
    assert len([next(it) for _ in range(2)]) == 2


def test_map(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y]).map(lambda bx, by: (bx * 2, by + 1))
    assert isinstance(ds, data_source.MapDataSource)
    assert ds.num_samples() == 10
    out = list(ds.batch_iterator(4))
    np.testing.assert_array_equal(_rows(out, 0), x * 2)
    np.testing.assert_array_equal(_rows(out, 1), y + 1)
    shuffled = list(ds.batch_iterator(4, shuffle=np.random.RandomState(0)))
    assert sorted(_rows(shuffled, 1).tolist()) == (y + 1).tolist()


class _Progress:
    def __init__(self):
        self.calls = []

    def __call__(self, iterator, **kwargs):
        self.calls.append(kwargs)
        return iterator


def test_batch_map_concat(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y])
    prog = _Progress()
    out = ds.batch_map_concat(lambda bx, by: (bx.sum(axis=1), by * 2), 4, progress_iter_func=prog)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(out[0], x.sum(axis=1))
    np.testing.assert_array_equal(out[1], y * 2)
    assert prog.calls == [{"total": 3, "leave": False}]
    single = ds.batch_map_concat(lambda bx, by: by, 3)
    assert isinstance(single, tuple) and single[0].tolist() == y.tolist()
    pre = ds.batch_map_concat(lambda k, bx, by: by * k, 4, prepend_args=(3,))
    assert pre[0].tolist() == (y * 3).tolist()
    assert ds.batch_map_concat(lambda bx, by: None, 4) is None
    inf = data_source.ArrayDataSource([y], repeats=-1)
    prog2 = _Progress()
    got = inf.batch_map_concat(lambda by: by, 4, progress_iter_func=prog2, n_batches=5)
    assert got[0].tolist() == list(y) * 2
    assert prog2.calls == [{"total": 5, "leave": False}]
    assert data_source.batch_map_concat(lambda by: by, iter([])) is None
    # unknown-size source: n_batches stays None
    prog3 = _Progress()
    it_ds = data_source.IteratorDataSource(data_source.ArrayDataSource([y]).batch_iterator(4))
    assert it_ds.batch_map_concat(lambda by: by, 4, progress_iter_func=prog3)[0].tolist() == y.tolist()
    assert prog3.calls == [{"total": None, "leave": False}]


def test_batch_map_mean(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x, y])
    prog = _Progress()
    mean = ds.batch_map_mean(lambda bx, by: (bx.sum(axis=0), by.sum()), 4, progress_iter_func=prog)
    assert isinstance(mean, tuple)
    np.testing.assert_allclose(mean[0], x.mean(axis=0))
    assert np.isclose(mean[1], y.mean())
    assert prog.calls == [{"total": 3, "leave": False}]
    # a single result is still a 1-tuple (as in batchup), of float64 means
    (per_sample,) = ds.batch_map_mean(lambda bx, by: by.astype(np.float32) ** 2, 3, sum_axis=0)
    assert per_sample.dtype == np.float64 and np.isclose(per_sample, np.mean(y.astype(float) ** 2))
    pre = ds.batch_map_mean(lambda k, bx, by: [by.sum() * k], 4, prepend_args=[2])
    assert isinstance(pre, tuple) and np.isclose(pre[0], 2 * y.mean())
    inf = data_source.ArrayDataSource([y], repeats=-1)
    (mean_inf,) = inf.batch_map_mean(lambda by: by.sum(), 5, n_batches=4)
    assert np.isclose(mean_inf, y.mean())
    assert data_source.batch_map_mean(lambda by: by.sum(), iter([])) is None
    # plain numbers are results too; samples of batches whose func returns None still count
    calls = iter([None, 3.0])
    assert data_source.batch_map_mean(lambda by: next(calls), iter([(y[:2],), (y[:2],)])) == (0.75,)
    with pytest.raises(TypeError, match="must return None"):
        ds.batch_map_mean(lambda bx, by: "loss", 4)
    with pytest.raises(TypeError, match="must return None"):
        ds.batch_map_concat(lambda bx, by: 1.5, 4)  # concatenation needs arrays


def test_coerce_data_source(xy):
    x, y = xy
    ds = data_source.ArrayDataSource([x])
    assert data_source.coerce_data_source(ds) is ds
    assert isinstance(data_source.coerce_data_source([x, y]), data_source.ArrayDataSource)
    it_ds = data_source.coerce_data_source(iter([(y,)]))
    assert isinstance(it_ds, data_source.IteratorDataSource)
    assert list(it_ds.batch_iterator(1))[0][0] is y
    fn_ds = data_source.coerce_data_source(lambda batch_size, **kw: iter([(y[:batch_size],)]))
    assert isinstance(fn_ds, data_source.CallableDataSource)
    assert list(fn_ds.batch_iterator(3))[0][0].tolist() == [0, 10, 20]
    with pytest.raises(TypeError, match="data source"):
        data_source.coerce_data_source(5)


# --------------------------------------------------------------------- batchup's random-access composition


def _members():
    return [
        data_source.ArrayDataSource([np.arange(12) + 100 * k, np.arange(12) * (k + 1)], repeats=r)
        for k, r in ((0, 1), (1, 1), (2, -1))
    ]


def test_length_and_trim_follow_tuple_structure():
    x = np.arange(6)
    assert data_source.length_of_batch([x, x[:2]]) == 2  # a list is one item, as in batchup
    assert data_source.length_of_batch(((x[:3], x), x)) == 3
    choice = data_source.ChoiceBatch(np.arange(5), 1)
    assert data_source.length_of_batch(choice) == 5
    trimmed = data_source.trim_batch((choice, x), 2)
    assert isinstance(trimmed[0], data_source.ChoiceBatch) and trimmed[0].ds_index == 1
    assert trimmed[0].sample_indices.tolist() == [0, 1] and trimmed[1].tolist() == [0, 1]
    assert data_source._length_of_batch is data_source.length_of_batch


def test_stratified_order_spreads_members_evenly():
    order = data_source.stratified_order([6, 3, 2]).tolist()
    assert order == [0, 1, 2, 0, 0, 1, 0, 2, 0, 1, 0]
    assert data_source.stratified_order([]).tolist() == []
    shuffled = data_source.stratified_shuffled_order([6, 3, 2], np.random.default_rng(0))
    assert np.bincount(shuffled).tolist() == [6, 3, 2]


@pytest.mark.parametrize("stratified", [False, True])
@pytest.mark.parametrize("shuffle", [None, 7, True])
def test_choice_index_batches_give_the_same_batches(stratified, shuffle):
    a, b, _ = _members()
    ch = data_source.ChoiceDataSource([a, b.map(lambda u, v: (u * 2, v))], stratified=stratified)
    assert ch.is_random_access

    def rng():
        if shuffle is True:
            np.random.seed(3)
            return True
        return None if shuffle is None else np.random.RandomState(shuffle)

    served = list(ch.batch_iterator(5, shuffle=rng()))
    indices = list(ch.batch_indices_iterator(5, shuffle=rng()))
    assert all(isinstance(i, data_source.ChoiceBatch) for i in indices)
    rebuilt = [ch.samples_by_indices_nomapping(i) for i in indices]
    assert len(served) == len(rebuilt) > 0
    for s, r in zip(served, rebuilt):
        np.testing.assert_array_equal(s[0], r[0])
        np.testing.assert_array_equal(s[1], r[1])


def test_choice_stratified_with_an_infinite_member_takes_turns():
    a, _, inf = _members()
    ch = data_source.ChoiceDataSource([a, inf], stratified=True)
    assert ch.num_samples() == np.inf
    members = [int(b.ds_index) for b in ch.batch_indices_iterator(4)]
    assert members == [0, 1, 0, 1, 0, 1]  # turns until the finite member (3 batches) runs out


def test_choice_counts_unknown_sizes_as_zero():
    a, _, _ = _members()
    call = data_source.CallableDataSource(lambda batch_size, **kw: iter([]))
    ch = data_source.ChoiceDataSource([a, call])
    assert ch.num_samples() == 12
    assert not ch.is_random_access
    with pytest.raises(TypeError, match="random access"):
        ch.batch_indices_iterator(4)  # raised at the call, not at the first batch


def test_composite_index_batches_are_trimmed_and_mapped():
    a = data_source.ArrayDataSource([np.arange(10) * 10], indices=np.arange(10)[::-1])
    inf = data_source.ArrayDataSource([np.arange(3)], repeats=-1)
    comp = data_source.CompositeDataSource([a, inf], trim=False)
    steps = list(comp.batch_indices_iterator(4))
    assert [tuple(len(i) for i in step) for step in steps] == [(4, 4), (4, 4), (2, 2)]  # indices always trimmed
    assert steps[0][0].tolist() == [9, 8, 7, 6]  # absolute indices
    mapped = comp.samples_by_indices([np.array([0, 1]), np.array([2, 0])])
    assert mapped[0].tolist() == [90, 80] and mapped[1].tolist() == [2, 0]
    with pytest.raises(ValueError, match="one index batch per member"):
        comp.samples_by_indices([np.array([0])])


def test_map_source_random_access():
    base = data_source.ArrayDataSource([np.arange(8)], indices=np.array([7, 5, 3, 1]))
    mapped = base.map(lambda v: (v + 1000,))
    assert mapped.is_random_access
    assert mapped.samples_by_indices(np.array([0, 1]))[0].tolist() == [1007, 1005]
    assert mapped.samples_by_indices_nomapping(slice(0, 2))[0].tolist() == [1000, 1001]
    assert [i.tolist() for i in mapped.batch_indices_iterator(3)] == [[7, 5, 3], [1]]
    call = data_source.CallableDataSource(lambda batch_size, **kw: iter([])).map(lambda v: v)
    assert not call.is_random_access
    for method, arg in (
        ("batch_indices_iterator", 3),
        ("samples_by_indices", [0]),
        ("samples_by_indices_nomapping", [0]),
    ):
        with pytest.raises(TypeError, match="random access"):
            getattr(call, method)(arg)


def test_slices_as_indices():
    x = np.arange(20) * 3
    ds = data_source.ArrayDataSource([x], include_indices=True)
    idx, vals = ds.samples_by_indices_nomapping(slice(None, 10, 4))
    assert idx.tolist() == [0, 4, 8] and vals.tolist() == [0, 12, 24]
    sub = data_source.ArrayDataSource([x], indices=np.array([19, 18, 17, 16]))
    assert sub.samples_by_indices(slice(1, 3))[0].tolist() == [54, 51]


def test_coerce_sequences():
    x = np.arange(4)
    ds = data_source.coerce_data_source((x, x * 2))
    assert isinstance(ds, data_source.ArrayDataSource) and isinstance(ds.data, list)
    with pytest.raises(ValueError, match="empty"):
        data_source.coerce_data_source(())
    with pytest.raises(TypeError, match="item 1"):
        data_source.coerce_data_source([x, 3])
