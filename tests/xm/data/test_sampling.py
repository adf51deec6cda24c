"""Samplers in xmanager.xm.data.sampling (batchup-compatible names and semantics)."""

import numpy as np
import pytest
from xmanager.xm.data import sampling


def _cat(batches):
    return np.concatenate(list(batches))


def test_num_batches():
    assert sampling.num_batches(10, 4) == 3
    assert sampling.num_batches(12, 4) == 3
    assert sampling.num_batches(0, 4) == 0
    assert sampling.num_batches(np.inf, 4) == np.inf
    with pytest.raises(ValueError, match="batch_size"):
        sampling.num_batches(10, 0)


def test_standard_sampler_in_order_last_batch_short():
    s = sampling.StandardSampler(10)
    batches = list(s.in_order_indices_batch_iterator(4))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert s.num_indices_generated() == 10


def test_standard_sampler_repeats_wrap_across_passes():
    s = sampling.StandardSampler(5, repeats=2)
    assert s.num_indices_generated() == 10
    assert [b.tolist() for b in s.in_order_indices_batch_iterator(3)] == [[0, 1, 2], [3, 4, 0], [1, 2, 3], [4]]
    shuffled = list(s.shuffled_indices_batch_iterator(3, np.random.RandomState(1)))
    assert [len(b) for b in shuffled] == [3, 3, 3, 1]
    flat = _cat(shuffled)
    assert sorted(flat[:5].tolist()) == list(range(5))
    assert sorted(flat[5:].tolist()) == list(range(5))


def test_standard_sampler_infinite():
    s = sampling.StandardSampler(4, repeats=-1)
    assert s.num_indices_generated() == np.inf
    it = s.shuffled_indices_batch_iterator(3, np.random.default_rng(0))
    flat = _cat(next(it) for _ in range(8))  # 24 indices = 6 passes
    for p in range(6):
        assert sorted(flat[4 * p : 4 * p + 4].tolist()) == [0, 1, 2, 3]
    it2 = s.in_order_indices_batch_iterator(3)
    assert [next(it2).tolist() for _ in range(3)] == [[0, 1, 2], [3, 0, 1], [2, 3, 0]]


@pytest.mark.parametrize("make_rng", [lambda: np.random.RandomState(7), lambda: np.random.default_rng(7)])
def test_standard_sampler_shuffle_reproducible(make_rng):
    s = sampling.StandardSampler(20)
    a = [b.tolist() for b in s.shuffled_indices_batch_iterator(6, make_rng())]
    b = [b.tolist() for b in s.shuffled_indices_batch_iterator(6, make_rng())]
    assert a == b
    assert sorted(sum(a, [])) == list(range(20))
    assert sum(a, []) != list(range(20))


def test_shuffle_true_uses_global_state():
    s = sampling.StandardSampler(20)
    np.random.seed(3)
    a = _cat(s.shuffled_indices_batch_iterator(5, sampling.resolve_shuffle(True)))
    np.random.seed(3)
    b = _cat(s.shuffled_indices_batch_iterator(5, sampling.resolve_shuffle(True)))
    assert a.tolist() == b.tolist()


def test_resolve_shuffle():
    assert sampling.resolve_shuffle(None) is None
    assert sampling.resolve_shuffle(False) is None
    assert sampling.resolve_shuffle(True) is np.random
    rs = np.random.RandomState(0)
    assert sampling.resolve_shuffle(rs) is rs
    with pytest.raises(TypeError, match="shuffle"):
        sampling.resolve_shuffle(42)


def test_subset_sampler():
    idx = np.array([7, 3, 5, 1])
    s = sampling.SubsetSampler(idx)
    assert s.num_indices_generated() == 4
    assert [b.tolist() for b in s.in_order_indices_batch_iterator(3)] == [[7, 3, 5], [1]]
    shuffled = _cat(s.shuffled_indices_batch_iterator(3, np.random.RandomState(0)))
    assert sorted(shuffled.tolist()) == [1, 3, 5, 7]
    s2 = sampling.SubsetSampler(idx, repeats=2)
    assert s2.num_indices_generated() == 8
    assert _cat(s2.in_order_indices_batch_iterator(3)).tolist() == [7, 3, 5, 1] * 2


@pytest.mark.parametrize("repeats", [0, -2, -10])
def test_bad_repeats(repeats):
    with pytest.raises(ValueError, match="repeats"):
        sampling.StandardSampler(5, repeats=repeats)
    with pytest.raises(ValueError, match="repeats"):
        sampling.SubsetSampler([0, 1], repeats=repeats)


@pytest.mark.parametrize("bs", [0, -1])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size"):
        sampling.StandardSampler(5).in_order_indices_batch_iterator(bs)
    with pytest.raises(ValueError, match="batch_size"):
        sampling.StandardSampler(5).shuffled_indices_batch_iterator(bs, np.random.RandomState(0))
    with pytest.raises(TypeError, match="batch_size"):
        sampling.StandardSampler(5).in_order_indices_batch_iterator(2.5)


def test_weighted_sampler():
    w = np.array([0.0, 1.0, 3.0])
    s = sampling.WeightedSampler(w)
    assert s.num_indices_generated() == np.inf
    it = s.shuffled_indices_batch_iterator(1000, np.random.RandomState(0))
    draws = _cat(next(it) for _ in range(4))
    assert 0 not in draws
    frac = np.mean(draws == 2)
    assert 0.7 < frac < 0.8
    a = next(s.shuffled_indices_batch_iterator(10, np.random.default_rng(5)))
    b = next(s.shuffled_indices_batch_iterator(10, np.random.default_rng(5)))
    assert a.tolist() == b.tolist()


def test_weighted_sampler_in_order_raises():
    s = sampling.WeightedSampler([1.0, 1.0])
    with pytest.raises(NotImplementedError, match="in-order"):
        s.in_order_indices_batch_iterator(4)


@pytest.mark.parametrize("w", [[], [-1.0, 2.0], [0.0, 0.0], [np.nan, 1.0], [[1.0]]])
def test_weighted_sampler_bad_weights(w):
    with pytest.raises(ValueError, match="weights"):
        sampling.WeightedSampler(w)


def test_class_balancing_weights():
    y = np.array([0, 0, 0, 1, 2, 2])
    w = sampling.WeightedSampler.class_balancing_sample_weights(y)
    np.testing.assert_allclose(w, [1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6])
    for c in range(3):
        assert np.isclose(w[y == c].sum(), 1 / 3)
    # Absent classes do not count.
    w2 = sampling.WeightedSampler.class_balancing_sample_weights(np.array([0, 0, 3]))
    np.testing.assert_allclose(w2, [1 / 4, 1 / 4, 1 / 2])


def test_class_balancing_sampler_balances():
    y = np.array([0] * 90 + [1] * 10)
    for s in (
        sampling.WeightedSampler.class_balancing_sampler(y),
        sampling.WeightedSampler.class_balancing_sampler(y=y, n_classes=2),
    ):
        assert isinstance(s, sampling.WeightedSampler)
        draws = next(s.shuffled_indices_batch_iterator(4000, np.random.RandomState(0)))
        assert 0.45 < np.mean(y[draws] == 1) < 0.55


def test_class_balancing_sampler_bad_n_classes():
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="n_classes"):
        sampling.WeightedSampler.class_balancing_sampler(y, n_classes=2)
    with pytest.raises(ValueError, match="n_classes"):
        sampling.WeightedSampler.class_balancing_sampler(y, n_classes=0)
    with pytest.raises(TypeError, match="n_classes"):
        sampling.WeightedSampler.class_balancing_sampler(y, n_classes=2.5)
    with pytest.raises(TypeError, match="y"):
        sampling.WeightedSampler.class_balancing_sampler(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="y"):
        sampling.WeightedSampler.class_balancing_sampler(np.array([-1, 1]))


def test_weighted_subset_sampler():
    idx = np.array([10, 20, 30])
    s = sampling.WeightedSubsetSampler([0.0, 1.0, 1.0], idx)
    draws = next(s.shuffled_indices_batch_iterator(200, np.random.RandomState(0)))
    assert set(draws.tolist()) == {20, 30}
    with pytest.raises(NotImplementedError):
        s.in_order_indices_batch_iterator(2)
    with pytest.raises(ValueError, match="same length"):
        sampling.WeightedSubsetSampler([1.0, 1.0], idx)


def test_weighted_subset_class_balancing():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    idx = np.array([0, 1, 2, 4])  # three of class 0, one of class 1
    s = sampling.WeightedSubsetSampler.class_balancing_sampler(y, idx)
    assert isinstance(s, sampling.WeightedSubsetSampler)
    draws = next(s.shuffled_indices_batch_iterator(4000, np.random.default_rng(0)))
    assert set(draws.tolist()) <= set(idx.tolist())
    assert 0.45 < np.mean(y[draws] == 1) < 0.55


def test_map_indices():
    idx = np.array([4, 3, 2, 1])
    assert sampling.StandardSampler(5).map_indices(np.array([1, 1])).tolist() == [1, 1]
    subset = sampling.SubsetSampler(idx)
    assert subset.map_indices(np.array([0, 3])).tolist() == [4, 1]
    assert subset.map_indices(slice(1, 3)).tolist() == [3, 2]
    assert subset.length == 4
    weighted = sampling.WeightedSubsetSampler(np.ones(4), idx)
    assert weighted.map_indices([2]).tolist() == [2]
    assert sampling.WeightedSampler(np.ones(3)).map_indices([2]) == [2]


def test_weights_are_normalised():
    w = sampling.WeightedSampler(np.array([1.0, 3.0]))
    assert w.weights.tolist() == [0.25, 0.75] and w.length == 2
    sub = sampling.WeightedSubsetSampler.class_balancing_sampler(np.array([0, 0, 1, 1, 1]), np.array([0, 2, 3]))
    assert np.allclose(sub.sub_weights, [0.5, 0.25, 0.25])


def test_shuffle_accepts_the_numpy_random_module():
    assert sampling.resolve_shuffle(np.random) is np.random
