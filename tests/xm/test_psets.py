"""psets: psweep-compatible param building (plist, pgrid, stargrid, ...) and the canonical pset hash.

The building helpers follow psweep 0.16's observable contracts; invalid grids raise
AssertionError. The hash is our own (module docstring of xm/psets.py):
SHA-1 of ``b"xm-pset-v1\\n"`` + the canonical JSON of the pset without book-keeping keys and
without top-level ``pandas.NA`` values.
"""

import argparse
import datetime
import decimal
import functools
import hashlib
import io
import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest
from xmanager.xm import psets
from xmanager.xm.psets import (
    PsetHashError,
    canonical_json,
    filter_params_dup_hash,
    filter_params_unique,
    flatten,
    flatten_dict,
    hashed_part,
    intspace,
    is_seq,
    itr,
    itr2params,
    logspace,
    merge_dicts,
    pgrid,
    plist,
    pset_hash,
    pset_hashes,
    stargrid,
)

A = [{"a": 1}, {"a": 2}]
B = [{"b": "x"}, {"b": "y"}]
C = [{"c": 5}, {"c": 6}]


def _a():
    return plist("a", [1, 2])


def _b():
    return plist("b", ["x", "y"])


def _c():
    return plist("c", [5, 6])


# ================================================================================================
# plist
# ================================================================================================
def test_plist_one_dict_per_value():
    assert plist("a", [1, 2, 3]) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_plist_accepts_any_iterable():
    assert plist("a", range(3)) == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert plist("a", (v * 2 for v in range(2))) == [{"a": 0}, {"a": 2}]
    assert plist("a", np.array([1.5, 2.5])) == [{"a": 1.5}, {"a": 2.5}]


def test_plist_values_are_kept_as_is():
    values = [None, "s", (1, 2), {"nested": 1}, [3]]
    assert [pset["v"] for pset in plist("v", values)] == values


def test_plist_empty():
    assert plist("a", []) == []


def test_plist_dicts_are_independent():
    out = plist("a", [1, 2])
    out[0]["a"] = 99
    assert out[1] == {"a": 2}


def test_plist_name_must_be_str():
    with pytest.raises(AssertionError, match="name"):
        plist(1, [1, 2])


@pytest.mark.parametrize("seq", ["xy", b"xy", {"k": 1}])
def test_plist_rejects_str_bytes_dict_as_values(seq):
    # Deliberately stricter than psweep (whose plist("a", "xy") gives one pset per character).
    with pytest.raises(AssertionError, match="sequence of values"):
        plist("a", seq)


# ================================================================================================
# pgrid
# ================================================================================================
def test_pgrid_star_args_equal_list_arg():
    expected = [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert pgrid(_a(), _b()) == expected
    assert pgrid([_a(), _b()]) == expected
    assert pgrid((_a(), _b())) == expected


def test_pgrid_product_order_first_plist_varies_slowest():
    grid = pgrid(plist("a", [1, 2]), plist("b", [3, 4]), plist("c", [5, 6]))
    assert [(p["a"], p["b"], p["c"]) for p in grid] == [
        (1, 3, 5),
        (1, 3, 6),
        (1, 4, 5),
        (1, 4, 6),
        (2, 3, 5),
        (2, 3, 6),
        (2, 4, 5),
        (2, 4, 6),
    ]
    # Keys appear in plist order inside each pset.
    assert all(list(p) == ["a", "b", "c"] for p in grid)


def test_pgrid_single_plist_in_list():
    assert pgrid([_a()]) == A


def test_pgrid_zip_varies_together():
    assert pgrid([zip(_a(), _b())]) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_pgrid_zip_with_plist_is_flattened():
    assert pgrid([zip(_a(), _b()), _c()]) == [
        {"a": 1, "b": "x", "c": 5},
        {"a": 1, "b": "x", "c": 6},
        {"a": 2, "b": "y", "c": 5},
        {"a": 2, "b": "y", "c": 6},
    ]


def test_pgrid_plist_before_zip_keeps_product_order():
    assert pgrid([_c(), zip(_a(), _b())]) == [
        {"c": 5, "a": 1, "b": "x"},
        {"c": 5, "a": 2, "b": "y"},
        {"c": 6, "a": 1, "b": "x"},
        {"c": 6, "a": 2, "b": "y"},
    ]


def test_pgrid_nested_zip_is_flattened():
    d = plist("d", [0])
    assert pgrid([zip(_a(), zip(_b(), _c())), d]) == [
        {"a": 1, "b": "x", "c": 5, "d": 0},
        {"a": 2, "b": "y", "c": 6, "d": 0},
    ]


def test_pgrid_of_pgrids():
    inner = pgrid(_a(), _b())
    assert pgrid([inner, _c()]) == [{**p, **c} for p in inner for c in C]


def test_pgrid_zip_truncates_to_shortest():
    assert pgrid([zip(_a(), plist("b", ["only"]))]) == [{"a": 1, "b": "only"}]


def test_pgrid_with_empty_plist_is_empty():
    assert pgrid([_a(), plist("b", [])]) == []


def test_pgrid_returns_fresh_dicts():
    a = _a()
    grid = pgrid([a])
    grid[0]["a"] = 99
    assert a == A


def test_pgrid_single_plist_argument_raises_helpful_assertion():
    with pytest.raises(AssertionError, match=r"single plist.*pgrid\(\[a\]\)"):
        pgrid(_a())


def test_pgrid_single_zip_argument_raises_helpful_assertion():
    with pytest.raises(AssertionError, match=r"single zip\(\).*pgrid\(\[zip\(a, b\)\]\)"):
        pgrid(zip(_a(), _b()))


def test_pgrid_duplicate_keys_raise():
    with pytest.raises(AssertionError, match="'a'"):
        pgrid([_a(), plist("a", [3, 4])])


def test_pgrid_duplicate_keys_inside_zip_raise():
    with pytest.raises(AssertionError, match="duplicate"):
        pgrid([zip(_a(), plist("a", [3, 4]))])


def test_pgrid_non_plist_item_raises():
    with pytest.raises(AssertionError, match="not a plist"):
        pgrid([_a(), 5])


def test_grid_checks_survive_python_dash_o():
    code = textwrap.dedent(
        """
        from xmanager.xm.psets import merge_dicts, pgrid, plist
        for call in (lambda: pgrid(plist("a", [1, 2])), lambda: merge_dicts({"a": 1}, {"a": 2}, allow_dup_keys=False)):
            try:
                call()
            except AssertionError:
                continue
            raise SystemExit("no AssertionError under -O")
        assert False, "asserts are on"
        """
    )
    proc = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ================================================================================================
# merge_dicts / itr
# ================================================================================================
def test_merge_dicts_both_call_styles_left_to_right():
    dicts = [{"a": 1, "b": 1}, {"b": 2, "c": 2}, {"c": 3}]
    expected = {"a": 1, "b": 2, "c": 3}
    assert merge_dicts(*dicts) == expected
    assert merge_dicts(dicts) == expected
    assert list(merge_dicts(dicts)) == ["a", "b", "c"]


def test_merge_dicts_does_not_mutate_inputs():
    first, second = {"a": 1}, {"a": 2, "b": 3}
    merged = merge_dicts(first, second)
    assert first == {"a": 1} and second == {"a": 2, "b": 3}
    assert merged is not first and merged is not second


def test_merge_dicts_disallowed_duplicates_raise_naming_key():
    with pytest.raises(AssertionError, match=r"\['a'\]"):
        merge_dicts({"a": 1, "b": 2}, {"a": 3}, allow_dup_keys=False)
    with pytest.raises(AssertionError):
        merge_dicts([{"a": 1}, {"a": 1}], allow_dup_keys=False)


def test_merge_dicts_disjoint_ok_without_dup_keys():
    assert merge_dicts({"a": 1}, {"b": 2}, allow_dup_keys=False) == {"a": 1, "b": 2}


def test_merge_dicts_empty():
    assert merge_dicts([]) == {}


def test_merge_dicts_non_dict_raises():
    with pytest.raises(AssertionError, match="takes dicts"):
        merge_dicts({"a": 1}, [("b", 2)])


def test_merge_dicts_single_dict_like_psweep():
    assert merge_dicts({"a": 1, "b": 2}) == {"a": 1, "b": 2}


def test_itr_single_scalar_is_wrapped_in_list_like_psweep():
    assert itr(lambda seq: seq)(1) == [1]


def test_itr_star_args_become_tuple_and_single_sequence_passes_through():
    @itr
    def ident(seq, **kwargs):
        return seq, kwargs

    assert ident(1, 2, 3) == ([1, 2, 3], {})
    assert ident([1, 2, 3]) == ([1, 2, 3], {})
    assert ident([1], [2], k=4) == ([[1], [2]], {"k": 4})


def test_itr_preserves_metadata():
    def summed(seq):
        """Doc."""
        return sum(seq)

    wrapped = itr(summed)
    assert wrapped.__name__ == "summed" and wrapped.__doc__ == "Doc."
    assert wrapped(1, 2, 3) == wrapped([1, 2, 3]) == 6


# ================================================================================================
# itr2params
# ================================================================================================
def test_itr2params_merges_product_tuples():
    import itertools

    assert itr2params(itertools.product(_a(), _b())) == pgrid(_a(), _b())


def test_itr2params_nested_tuples_and_bare_dicts():
    assert itr2params([(({"a": 1},), ({"b": 2}, ({"c": 3},)))]) == [{"a": 1, "b": 2, "c": 3}]
    assert itr2params([{"a": 1}, {"a": 2}]) == A
    assert itr2params(zip(_a(), _b())) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_itr2params_empty():
    assert itr2params([]) == []


def test_itr2params_psets_of_different_lengths_raise():
    with pytest.raises(AssertionError, match="differ in length"):
        itr2params([({"a": 1},), ({"a": 1}, {"b": 2})])


def test_itr2params_duplicate_keys_raise():
    with pytest.raises(AssertionError, match="duplicate"):
        itr2params([({"a": 1}, {"a": 2})])


# ================================================================================================
# stargrid
# ================================================================================================
CONST = {"a": 1, "b": 2}


def _vary():
    return [plist("a", [1, 3]), plist("b", [2, 4])]


def test_stargrid_with_labels_skips_repeated_base_point():
    assert stargrid(CONST, _vary(), vary_labels=["a", "b"]) == [
        {"a": 1, "b": 2, "_vary": "a"},
        {"a": 3, "b": 2, "_vary": "a"},
        {"a": 1, "b": 4, "_vary": "b"},
    ]


def test_stargrid_without_labels():
    assert stargrid(CONST, _vary()) == [{"a": 1, "b": 2}, {"a": 3, "b": 2}, {"a": 1, "b": 4}]


def test_stargrid_skip_dups_false_keeps_base_point_twice():
    assert stargrid(CONST, _vary(), skip_dups=False) == [
        {"a": 1, "b": 2},
        {"a": 3, "b": 2},
        {"a": 1, "b": 2},
        {"a": 1, "b": 4},
    ]
    labelled = stargrid(CONST, _vary(), vary_labels=["a", "b"], skip_dups=False)
    assert [p["_vary"] for p in labelled] == ["a", "a", "b", "b"]


def test_stargrid_custom_label_column():
    out = stargrid(CONST, [plist("a", [1, 3])], vary_labels=["a"], vary_label_col="which")
    assert out == [{"a": 1, "b": 2, "which": "a"}, {"a": 3, "b": 2, "which": "a"}]


def test_stargrid_vary_labels_length_mismatch_raises():
    with pytest.raises(AssertionError, match="vary_labels"):
        stargrid(CONST, _vary(), vary_labels=["a"])
    with pytest.raises(AssertionError, match="vary_labels"):
        stargrid(CONST, _vary(), vary_labels=["a", "b", "c"])


def test_stargrid_new_params_extend_const():
    assert stargrid({"a": 1}, [plist("c", [7, 8])]) == [{"a": 1, "c": 7}, {"a": 1, "c": 8}]


def test_stargrid_zip_entries_vary_together():
    out = stargrid(CONST, [zip(plist("a", [5, 6]), plist("b", [7, 8]))])
    assert out == [{"a": 5, "b": 7}, {"a": 6, "b": 8}]


def test_stargrid_does_not_mutate_const():
    const = dict(CONST)
    stargrid(const, _vary(), vary_labels=["a", "b"])
    assert const == CONST


def test_stargrid_const_must_be_dict():
    with pytest.raises(AssertionError, match="const"):
        stargrid([CONST], _vary())


def test_stargrid_unhashable_falls_back_to_unfiltered():
    marker = threading.Lock()
    out = stargrid({"a": 1, "obj": marker}, [plist("a", [1, 1])])
    assert out == [{"a": 1, "obj": marker}, {"a": 1, "obj": marker}]


# ================================================================================================
# filter_params_unique / filter_params_dup_hash
# ================================================================================================
def test_filter_params_unique_keeps_first_occurrence_in_order():
    params = [{"a": 3}, {"a": 1}, {"a": 3}, {"a": 2}, {"a": 1}]
    out = filter_params_unique(params)
    assert out == [{"a": 3}, {"a": 1}, {"a": 2}]
    assert out[0] is params[0] and out[1] is params[1] and out[2] is params[3]


def test_filter_params_unique_ignores_bookkeeping_keys():
    params = [{"a": 1, "_id": "x", "res_": 1}, {"a": 1, "_id": "y", "res_": 2}, {"a": 2}]
    assert filter_params_unique(params) == [params[0], params[2]]


def test_filter_params_unique_uses_given_pset_hash():
    same_content = [{"a": 1, "_pset_hash": "h1"}, {"a": 1, "_pset_hash": "h2"}]
    assert filter_params_unique(same_content) == same_content
    same_hash = [{"a": 1, "_pset_hash": "h"}, {"a": 2, "_pset_hash": "h"}]
    assert filter_params_unique(same_hash) == same_hash[:1]


def test_filter_params_unique_mixes_given_and_computed_hashes():
    params = [{"a": 1, "_pset_hash": pset_hash({"a": 1})}, {"a": 1}, {"a": 2}, {"a": 2, "_pset_hash": float("nan")}]
    assert filter_params_unique(params) == [params[0], params[2]]


def test_filter_params_unique_empty():
    assert filter_params_unique([]) == []


def test_filter_params_dup_hash_drops_known():
    params = [{"a": 1}, {"a": 2}, {"a": 3}]
    known = [pset_hash({"a": 1}), pset_hash({"a": 3})]
    assert filter_params_dup_hash(params, known) == [{"a": 2}]
    assert filter_params_dup_hash(params, iter(known)) == [{"a": 2}]
    assert filter_params_dup_hash(params, []) == params


def test_filter_params_dup_hash_keeps_duplicates_among_new():
    params = [{"a": 1}, {"a": 1}, {"a": 2}]
    assert filter_params_dup_hash(params, [pset_hash({"a": 2})]) == [{"a": 1}, {"a": 1}]


def test_filter_params_dup_hash_uses_given_pset_hash():
    params = [{"a": 1, "_pset_hash": "known"}, {"a": 1, "_pset_hash": "new"}]
    assert filter_params_dup_hash(params, {"known"}) == [params[1]]


# ================================================================================================
# intspace / logspace
# ================================================================================================
def test_intspace_may_return_fewer_values():
    out = intspace(0, 4, 20)
    assert out.tolist() == [0, 1, 2, 3, 4]
    assert np.issubdtype(out.dtype, np.integer)


def test_intspace_rounds_linspace():
    assert intspace(0, 10, 3).tolist() == [0, 5, 10]
    assert intspace(0, 10, 4).tolist() == [0, 3, 7, 10]
    assert intspace(0, 10, num=4).tolist() == [0, 3, 7, 10]


def test_intspace_default_dtype_and_override():
    assert intspace(0, 10, 4).dtype == np.int64
    assert intspace(0, 10, 4, dtype=np.int32).dtype == np.int32


def test_intspace_values_unique_and_sorted():
    out = intspace(1, 1000, 200)
    assert len(out) <= 200
    assert out.tolist() == sorted(set(out.tolist()))
    assert out[0] == 1 and out[-1] == 1000


def test_logspace_end_points_are_start_and_stop():
    for start, stop, offset in [(1e-3, 10, 0), (2, 300, 0), (0, 1, 1), (0, 5, 0.1)]:
        out = logspace(start, stop, 7, offset=offset)
        assert len(out) == 7
        assert out[0] == pytest.approx(start, rel=1e-12, abs=1e-12)
        assert out[-1] == pytest.approx(stop, rel=1e-12)


def test_logspace_is_log_spaced_without_offset():
    out = logspace(1e-3, 10, 5)
    np.testing.assert_allclose(out, [1e-3, 1e-2, 1e-1, 1, 10], rtol=1e-12)


def test_logspace_offset():
    out = logspace(0, 1, 4, offset=1)
    np.testing.assert_allclose(out, [0, 2 ** (1 / 3) - 1, 2 ** (2 / 3) - 1, 1], rtol=1e-12, atol=1e-12)


def test_logspace_points_do_not_depend_on_base():
    default = logspace(1, 16, 5)
    base2 = logspace(1, 16, 5, log_func=np.log2, base=2)
    np.testing.assert_allclose(base2, [1, 2, 4, 8, 16], rtol=1e-12)
    np.testing.assert_allclose(default, base2, rtol=1e-12)


def test_logspace_forwards_linspace_kwargs():
    out = logspace(1, 1000, 3, endpoint=False)
    np.testing.assert_allclose(out, [1, 10, 100], rtol=1e-12)


def test_logspace_default_num():
    assert len(logspace(1, 10)) == 50


# ================================================================================================
# flatten / flatten_dict / is_seq
# ================================================================================================
def test_flatten_nested_sequences():
    assert list(flatten([1, [2, (3, [4])], "ab", {"k": 1}])) == [1, 2, 3, 4, "ab", {"k": 1}]


def test_flatten_iterators_and_empty():
    assert list(flatten(iter([iter([1, 2]), (x for x in [3])]))) == [1, 2, 3]
    assert list(flatten([])) == []
    assert list(flatten([[], [[]]])) == []


def test_flatten_is_lazy():
    assert not isinstance(flatten([1]), list)
    assert next(flatten([[1], [2]])) == 1


def test_flatten_dict_nested():
    assert flatten_dict({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a_b": 1, "a_c_d": 2, "e": 3}


def test_flatten_dict_join_str_and_non_str_keys():
    assert flatten_dict({"a": {"b": 1}}, join_str=".") == {"a.b": 1}
    assert flatten_dict({"a": {1: "x"}, 2: "y"}) == {"a_1": "x", "2": "y"}


def test_flatten_dict_empty_nested_dict_disappears_and_lists_are_leaves():
    assert flatten_dict({"a": {}, "b": 1}) == {"b": 1}
    assert flatten_dict({"a": [{"b": 1}]}) == {"a": [{"b": 1}]}
    assert flatten_dict({}) == {}


def test_flatten_dict_does_not_mutate():
    dct = {"a": {"b": 1}}
    flatten_dict(dct)
    assert dct == {"a": {"b": 1}}


@pytest.mark.parametrize(
    "value",
    [[], (), [1], iter([]), (x for x in []), range(3), {1, 2}, frozenset(), np.array([1, 2]), zip([], [])],
)
def test_is_seq_true(value):
    assert is_seq(value)


@pytest.mark.parametrize("value", ["", "abc", b"abc", {}, {"a": 1}, 1, 1.5, None, io.StringIO("x"), io.BytesIO()])
def test_is_seq_false(value):
    assert not is_seq(value)


def test_is_seq_false_for_open_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("x\n")
    with open(path) as handle:
        assert not is_seq(handle)


# ================================================================================================
# hash: format and canonical text
# ================================================================================================
def _is_hex40(value):
    return isinstance(value, str) and len(value) == 40 and all(ch in "0123456789abcdef" for ch in value)


@pytest.mark.parametrize("pset", [{}, {"a": 1}, {"a": [1, {"b": None}], "s": "é"}, {"f": np.sin}])
def test_pset_hash_is_40_lowercase_hex(pset):
    assert _is_hex40(pset_hash(pset))


def test_pset_hash_is_sha1_of_versioned_canonical_json():
    pset = {"b": [1, 2.5, "x"], "a": {"y": True, "x": None}, "_skip": 1}
    canonical = '{"a":{"x":null,"y":true},"b":[1,2.5,"x"]}'
    assert psets.pset_canonical(pset) == canonical
    expected = hashlib.sha1(f"xm-pset-v{psets.HASH_VERSION}\n".encode() + canonical.encode()).hexdigest()
    assert pset_hash(pset) == expected
    assert psets.hash_text(canonical) == expected


def test_hash_version_is_one():
    # Bumping it changes every hash (the golden values below must then be recomputed).
    assert psets.HASH_VERSION == 1


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": [1, 2], "c": {"z": 1, "y": 2}}) == '{"a":[1,2],"b":1,"c":{"y":2,"z":1}}'
    assert canonical_json({"s": "résumé ✓"}) == '{"s":"résumé ✓"}'
    assert canonical_json((1, 2)) == canonical_json([1, 2]) == "[1,2]"


def test_pset_hash_only_sha1_method():
    assert pset_hash({"a": 1}, method="sha1") == pset_hash({"a": 1})
    with pytest.raises(ValueError, match="md5"):
        pset_hash({"a": 1}, method="md5")


# Golden values. These are the hashes stored in every existing study database (``_pset_hash``)
# and used by skip_dups to recognise psets already run. Changing any of them silently breaks
# every stored study, so a change to the canonical form MUST bump HASH_VERSION (and then these
# values are recomputed deliberately, never just edited to make the test pass).
GOLDEN = [
    ({}, "64d76da8b833b350f173fece5c3b14f0688180fa"),
    # psweep's reference pset (its joblib hash is c41c6692..., ours is deliberately different).
    ({"a": 1, "b": {"c": 2, "d": [1, 2, "a"]}}, "50977c9dd419d234a71a47f27611cdaab48d9a70"),
    ({"a": 1}, "2c606c36a9fba73a26447ec4e345853641d4761b"),
    ({"a": 1.0}, "f0d6478eb11be5a1de93b17b0c775ade89d01bd3"),
    (
        {"lr": 0.001, "name": "résumé", "flag": True, "none": None, "seq": (1, 2.5, "x")},
        "910da2a0cc358d9873c91ebb2de2d8d632cf89bb",  # "none": None is absent (version 1 as released).
    ),
]


@pytest.mark.parametrize(("pset", "expected"), GOLDEN, ids=[str(i) for i in range(len(GOLDEN))])
def test_pset_hash_golden(pset, expected):
    assert pset_hash(pset) == expected
    assert pset_hashes([pset]) == [expected]


def test_pset_hash_golden_tagged_values():
    pset = {"f": np.sin, "arr": np.arange(4).reshape(2, 2), "s": {"b", "a"}}
    assert pset_hash(pset) == "a2d13137490da419c274e9a7e98ec370c82978f4"


GOLDEN_NAMESPACE = "031a3471bdb714ad46cd83479d3cfec85f0cbade"


def test_pset_hash_golden_object_fallback():
    # A value with no canonical form of its own: its class name and its pickled state, canonical.
    assert pset_hash({"obj": argparse.Namespace(n=1)}) == GOLDEN_NAMESPACE


def test_pset_hash_golden_with_bookkeeping_and_na():
    # Book-keeping keys and top-level NA do not change the golden hash of {"a": 1}.
    pset = {"a": 1, "_pset_id": "x", "_pset_hash": "y", "result_": 3.0, "b": pd.NA}
    assert pset_hash(pset) == "2c606c36a9fba73a26447ec4e345853641d4761b"


# ================================================================================================
# hash: determinism across processes
# ================================================================================================
# Evaluated here and in subprocesses; string sets and frozensets iterate in PYTHONHASHSEED order.
_CROSS_PROCESS_PSETS = """[
    {"a": 1, "b": 2.5, "c": "x"},
    {"s": {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}},
    {"fs": frozenset({"k1", "k2", "k3", "k4"}), "nested": {"z": {"q", "r", "s"}, "y": [1, (2, 3)]}},
    {"n": np.int64(7), "f": np.float32(0.25), "arr": np.arange(6).reshape(2, 3), "fn": np.sin},
    {"when": datetime.datetime(2020, 1, 2, 3, 4, 5), "p": pathlib.PurePosixPath("a/b"), "raw": b"\\x00\\xff"},
    {"a": 1, "_id": "ignored", "res_": 3, "missing": pd.NA},
    {"obj": argparse.Namespace(tags={"x", "y", "z", "w"}, n=3), "part": functools.partial(max, 1)},
]"""


def _eval_cross_process_psets():
    return eval(
        _CROSS_PROCESS_PSETS,
        {"np": np, "pd": pd, "datetime": datetime, "pathlib": pathlib, "argparse": argparse, "functools": functools},
    )


def _hashes_in_subprocess(seed):
    code = textwrap.dedent(
        """
        import argparse, datetime, functools, json, pathlib, sys
        import numpy as np
        import pandas as pd
        from xmanager.xm.psets import pset_hash, pset_hashes
        params = eval(sys.stdin.read())
        print(json.dumps({"single": [pset_hash(p) for p in params], "many": pset_hashes(params)}))
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    proc = subprocess.run(
        [sys.executable, "-c", code], input=_CROSS_PROCESS_PSETS, capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_pset_hash_deterministic_across_processes_and_hash_seeds():
    local = [pset_hash(p) for p in _eval_cross_process_psets()]
    for seed in (0, 4242):
        remote = _hashes_in_subprocess(seed)
        assert remote["single"] == local, f"PYTHONHASHSEED={seed}"
        assert remote["many"] == local, f"PYTHONHASHSEED={seed}"


def test_pset_hash_deterministic_within_process():
    params = _eval_cross_process_psets()
    assert [pset_hash(p) for p in params] == [pset_hash(p) for p in _eval_cross_process_psets()]
    assert len(set(pset_hashes(params))) == len(params)


# ================================================================================================
# hash: the fallback for values with no canonical form (picklable objects, as psweep hashes them)
# ================================================================================================
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


class SelfReferencing:
    def __init__(self, tag):
        self.tag = tag
        self.me = self


def test_objects_hash_by_class_and_state():
    assert _same({"p": Point(1, 2)}, {"p": Point(1, 2)})
    assert not _same({"p": Point(1, 2)}, {"p": Point(1, 3)})
    assert not _same({"p": Point(1, 2)}, {"p": argparse.Namespace(x=1, y=2)})
    assert not _same({"p": Point(1, 2)}, {"p": Point})  # the class is named, the instance is state


def test_object_state_is_canonical_not_pickle_bytes():
    # Attribute order and an attribute's set order do not matter; pickle bytes would differ.
    first, second = Point(1, 2), Point(0, 0)
    second.__dict__ = {"y": 2, "x": 1}
    assert _same({"p": first}, {"p": second})
    assert _same({"p": Point({"b", "a", "c"}, 0)}, {"p": Point({"c", "a", "b"}, 0)})


def test_object_state_nested_values_use_the_canonical_form():
    assert _same({"p": Point(np.int64(1), (2, 3))}, {"p": Point(1, [2, 3])})
    assert not _same({"p": Point(1, 2)}, {"p": Point(1.0, 2)})


def test_partial_functions_hash_by_function_and_arguments():
    assert _same({"f": functools.partial(max, 1)}, {"f": functools.partial(max, 1)})
    assert not _same({"f": functools.partial(max, 1)}, {"f": functools.partial(max, 2)})
    assert not _same({"f": functools.partial(max, 1)}, {"f": functools.partial(min, 1)})


def test_self_referencing_object_hashes_by_its_pickle():
    assert _same({"o": SelfReferencing("a")}, {"o": SelfReferencing("a")})
    assert not _same({"o": SelfReferencing("a")}, {"o": SelfReferencing("b")})
    assert "pickle_sha1" in canonical_json(SelfReferencing("a"))


def test_deeply_nested_objects_hash_in_linear_size():
    value = 0
    for _ in range(100):
        value = Point(value, 1)
    assert len(canonical_json(value)) < 200  # the state enters as a digest, not escaped text
    assert pset_hash({"v": value}) == pset_hash({"v": value})


def test_psweep_pset_hash_contracts_without_its_golden_values():
    # psweep's test_pset_hash and test_pset_hash_skip_cols (excluded from its suite for their joblib
    # hash strings): the same contracts, with "hash of the filtered dict" spelled in our hash.
    ref = {"a": 1, "b": {"c": 2, "d": [1, 2, "a"]}}
    assert _same({"b": {"c": 2, "d": [1, 2, "a"]}, "a": 1}, ref)
    assert _same({"a": 1, "b": {"d": [1, 2, "a"], "c": 2}}, ref)
    assert isinstance(pset_hash({"a": Point}), str) and isinstance(pset_hash({"a": Point(1, 2)}), str)

    def unfiltered(pset):
        return pset_hash(pset, skip_prefix_cols=False, skip_postfix_cols=False)

    plain, pre, post = {"a": 1, "b": 2}, {"a": 1, "b": 2, "_c": 3}, {"a": 1, "b": 2, "d_": 4}
    both = {"a": 1, "b": 2, "_c": 3, "d_": 4}
    assert pset_hash(both) == unfiltered(plain) == pset_hash(plain) == pset_hash(pre) == pset_hash(post)
    assert pset_hash(both, skip_prefix_cols=False) == unfiltered(pre)
    assert pset_hash(both, skip_postfix_cols=False) == unfiltered(post)
    assert unfiltered(both) not in {unfiltered(plain), unfiltered(pre), unfiltered(post)}


def test_object_fallback_in_run_path_and_filtering():
    params = [{"p": Point(1, 2)}, {"p": Point(1, 2)}, {"p": Point(3, 4)}]
    assert pset_hashes(params) == [pset_hash(pset) for pset in params]
    assert filter_params_unique(params) == [params[0], params[2]]


# ================================================================================================
# hash: what is the same pset
# ================================================================================================
def _same(left, right):
    return pset_hash(left) == pset_hash(right)


def test_key_order_irrelevant():
    assert _same({"a": 1, "b": 2, "c": 3}, {"c": 3, "a": 1, "b": 2})


def test_nested_dict_key_order_irrelevant():
    assert _same({"a": {"x": 1, "y": {"p": 1, "q": 2}}}, {"a": {"y": {"q": 2, "p": 1}, "x": 1}})


def test_list_and_tuple_are_the_same():
    assert _same({"a": [1, 2]}, {"a": (1, 2)})
    assert _same({"a": [(1, 2), [3]]}, {"a": ([1, 2], (3,))})


@pytest.mark.parametrize(
    ("numpy_value", "python_value"),
    [
        (np.int64(1), 1),
        (np.int32(-3), -3),
        (np.uint8(200), 200),
        (np.float64(0.5), 0.5),
        (np.float64(1.0), 1.0),
        (np.float16(0.5), 0.5),
        (np.float32(0.1), float(np.float32(0.1))),
        (np.bool_(True), True),
        (np.bool_(False), False),
        (np.str_("x"), "x"),
        (np.complex128(1 + 2j), 1 + 2j),
        (np.array(5), 5),
    ],
    ids=lambda value: f"{type(value).__name__}:{value!r}",
)
def test_numpy_scalars_hash_like_python_values(numpy_value, python_value):
    assert _same({"a": numpy_value}, {"a": python_value})
    assert _same({"a": [numpy_value]}, {"a": [python_value]})
    assert pset_hashes([{"a": numpy_value}]) == [pset_hash({"a": python_value})]


def test_float32_is_not_the_decimal_literal():
    # np.float32(0.1) is 0.10000000149011612, a different value from 0.1.
    assert not _same({"a": np.float32(0.1)}, {"a": 0.1})


def test_int_and_float_differ():
    assert not _same({"a": 1}, {"a": 1.0})
    assert not _same({"a": np.int64(1)}, {"a": np.float64(1.0)})
    assert not _same({"a": [1]}, {"a": [1.0]})


def test_bool_and_int_differ():
    assert not _same({"a": True}, {"a": 1})
    assert not _same({"a": False}, {"a": 0})
    assert not _same({"a": np.bool_(True)}, {"a": np.int64(1)})


def test_none_str_and_number_differ():
    hashes = {pset_hash({"a": v}) for v in [None, "None", "null", 0, "0", "1", 1, "", [], {}]}
    assert len(hashes) == 10


def test_different_values_and_keys_differ():
    assert not _same({"a": 1}, {"a": 2})
    assert not _same({"a": 1}, {"b": 1})
    assert not _same({"a": 1}, {"a": 1, "b": 2})
    assert not _same({"a": [1, 2]}, {"a": [2, 1]})


# ---- book-keeping keys and NA -------------------------------------------------------------------
def test_prefix_and_postfix_keys_excluded():
    assert _same({"_a": 1, "b_": 2}, {})
    assert _same({"a": 1, "_pset_id": "x", "result_": [1, 2]}, {"a": 1})
    assert _same({"a": 1, "_": 5}, {"a": 1})


def test_underscore_inside_key_is_a_parameter():
    assert not _same({"a_b": 1}, {})
    assert not _same({"a": 1, "a_b": 2}, {"a": 1})


def test_bookkeeping_exclusion_is_top_level_only():
    assert not _same({"a": {"_x": 1}}, {"a": {}})


def test_skip_cols_flags():
    assert pset_hash({"_a": 1}, skip_prefix_cols=False) != pset_hash({})
    assert pset_hash({"b_": 1}, skip_postfix_cols=False) != pset_hash({})
    assert pset_hash({"_a": 1, "b_": 2}, skip_prefix_cols=False) == pset_hash({"_a": 1}, skip_prefix_cols=False)
    assert pset_hash({"_a": 1, "b_": 2}, skip_postfix_cols=False) == pset_hash({"b_": 2}, skip_postfix_cols=False)
    both_off = pset_hash({"_a": 1, "b_": 2}, skip_prefix_cols=False, skip_postfix_cols=False)
    assert both_off == psets.hash_text('{"_a":1,"b_":2}')


def test_skip_cols_flags_still_drop_top_level_na():
    assert pset_hash({"_a": 1, "x": pd.NA}, skip_prefix_cols=False) == pset_hash({"_a": 1}, skip_prefix_cols=False)


def test_pandas_na_at_top_level_is_absent():
    assert _same({"a": 1, "b": pd.NA}, {"a": 1})
    assert _same({"b": pd.NA}, {})
    assert pset_hashes([{"a": 1, "b": pd.NA}]) == [pset_hash({"a": 1})]


def test_adding_a_column_keeps_old_rows_hashes():
    # What run() relies on: when a study gains a parameter column, older rows get NA in it and
    # keep their hashes, so skip_dups still recognises them.
    old_rows = [{"a": 1}, {"a": 2}]
    before = pset_hashes(old_rows)
    widened = [{**row, "b": pd.NA} for row in old_rows]
    assert pset_hashes(widened) == before
    assert [pset_hash(row) for row in widened] == before
    assert pset_hash({"a": 1, "b": 9}) not in before


def test_nested_na_is_a_value():
    assert not _same({"a": [pd.NA]}, {"a": []})
    assert not _same({"a": [pd.NA]}, {"a": [None]})
    assert _is_hex40(pset_hash({"a": {"b": pd.NA}}))


def test_none_nan_and_na_at_top_level_are_absent():
    assert _same({"a": 1, "b": float("nan")}, {"a": 1})
    assert _same({"a": 1, "b": None}, {"a": 1})
    assert _same({"a": 1, "b": np.float64("nan")}, {"a": 1, "b": pd.NA})
    assert not _same({"a": [None]}, {"a": []})  # Nested values are kept.
    assert not _same({"a": {"b": None}}, {"a": {}})


def test_hashed_part():
    pset = {"a": 1, "_id": 2, "r_": 3, "n": pd.NA, "a_b": 4}
    assert hashed_part(pset) == {"a": 1, "a_b": 4}
    assert hashed_part(pset, skip_prefix_cols=False) == {"a": 1, "_id": 2, "a_b": 4}
    assert hashed_part(pset, skip_postfix_cols=False) == {"a": 1, "r_": 3, "a_b": 4}
    assert pset == {"a": 1, "_id": 2, "r_": 3, "n": pd.NA, "a_b": 4}


def test_pset_hash_does_not_mutate():
    pset = {"b": 1, "_x": 2, "a": pd.NA}
    pset_hash(pset)
    pset_hashes([pset])
    assert list(pset) == ["b", "_x", "a"]


# ---- sets, arrays, callables, other tagged types ------------------------------------------------
def test_sets_are_order_independent():
    forward = set()
    backward = set()
    items = [f"item{i}" for i in range(50)]
    for item in items:
        forward.add(item)
    for item in reversed(items):
        backward.add(item)
    assert _same({"s": forward}, {"s": backward})
    assert _same({"s": {3, 1, 2}}, {"s": frozenset([2, 3, 1])})


def test_sets_differ_from_lists_and_by_content():
    assert not _same({"s": {1, 2}}, {"s": [1, 2]})
    assert not _same({"s": {1, 2}}, {"s": {1, 3}})
    assert not _same({"s": {1}}, {"s": {1.0}})


def test_numpy_arrays_by_shape_and_values():
    assert _same({"x": np.array([[1, 2], [3, 4]])}, {"x": np.array([[1, 2], [3, 4]])})
    assert _same({"x": np.array([1, 2], dtype=np.int32)}, {"x": np.array([1, 2], dtype=np.int64)})
    assert not _same({"x": np.arange(4)}, {"x": np.arange(4).reshape(2, 2)})
    assert not _same({"x": np.array([1, 2])}, {"x": np.array([1, 3])})
    assert not _same({"x": np.array([1, 2])}, {"x": np.array([1.0, 2.0])})
    assert _is_hex40(pset_hash({"x": np.zeros((0, 3))}))


def test_callables_hashed_by_name():
    assert psets.pset_canonical({"f": np.sin}) == '{"f":{"__callable__":"numpy.sin"}}'
    assert _same({"f": np.sin}, {"f": np.sin})
    assert not _same({"f": np.sin}, {"f": np.cos})
    assert not _same({"f": np.sin}, {"f": math.sin})
    assert not _same({"f": np.sin}, {"f": "numpy.sin"})
    assert _is_hex40(pset_hash({"f": np.mean}))


def test_python_functions_hashed_by_qualified_name():
    def local():
        pass

    assert _same({"f": local}, {"f": local})
    assert not _same({"f": local}, {"f": _a})
    assert _same({"f": functools.reduce}, {"f": functools.reduce})
    assert not _same({"f": int}, {"f": float})


@pytest.mark.parametrize(
    ("value", "lookalike"),
    [
        (datetime.datetime(2020, 1, 2, 3, 4, 5), "2020-01-02T03:04:05"),
        (datetime.date(2020, 1, 2), "2020-01-02"),
        (datetime.time(12, 30), "12:30:00"),
        (datetime.timedelta(seconds=90), 90.0),
        (decimal.Decimal("1.10"), "1.10"),
        (1 + 2j, [1.0, 2.0]),
        (b"ab", "ab"),
        (bytearray(b"ab"), "6162"),
        (pathlib.PurePosixPath("a/b"), "a/b"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_other_supported_types_are_tagged(value, lookalike):
    assert _is_hex40(pset_hash({"v": value}))
    assert not _same({"v": value}, {"v": lookalike})


def test_equal_values_of_tagged_types_hash_alike():
    assert _same({"t": pd.Timestamp("2020-01-02 03:04:05")}, {"t": datetime.datetime(2020, 1, 2, 3, 4, 5)})
    assert _same({"b": b"ab"}, {"b": bytearray(b"ab")})
    assert _same({"p": pathlib.PurePosixPath("a/b")}, {"p": pathlib.PurePosixPath("a") / "b"})


# ---- errors -------------------------------------------------------------------------------------
def test_unhashable_value_raises_pset_hash_error_naming_the_pset():
    pset = {"name": "unique-marker", "obj": threading.Lock()}
    with pytest.raises(PsetHashError, match="unique-marker") as info:
        pset_hash(pset)
    assert isinstance(info.value, TypeError)
    assert "lock" in str(info.value) and "cannot be pickled" in str(info.value)
    assert str(info.value).startswith("pset ")


def test_pset_hashes_error_names_the_offending_pset():
    with pytest.raises(PsetHashError, match="bad-one"):
        pset_hashes([{"a": 1}, {"name": "bad-one", "obj": threading.Lock()}])


def test_unhashable_nested_and_bookkeeping():
    with pytest.raises(PsetHashError):
        pset_hash({"a": [1, {"b": threading.Lock()}]})
    # An unhashable value under a book-keeping key is not hashed at all.
    assert _same({"a": 1, "_obj": threading.Lock()}, {"a": 1})


def test_mixed_type_dict_keys_raise_pset_hash_error():
    with pytest.raises(PsetHashError):
        pset_hash({"a": {1: "x", "b": "y"}})


def test_pset_hash_error_is_type_error_subclass():
    assert issubclass(PsetHashError, TypeError)


def test_raise_error_false_gives_nan():
    out = pset_hash({"obj": threading.Lock()}, raise_error=False)
    assert isinstance(out, float) and math.isnan(out)
    out = pset_hash({"_a": 1, "obj": threading.Lock()}, raise_error=False, skip_prefix_cols=False)
    assert isinstance(out, float) and math.isnan(out)
    assert pset_hash({"a": 1}, raise_error=False) == pset_hash({"a": 1})


def test_canonical_json_raises_pset_hash_error():
    with pytest.raises(PsetHashError, match="canonical form"):
        canonical_json({"x": threading.Lock()})
    with pytest.raises(PsetHashError):
        canonical_json({1: "a", "b": 2})


# ---- pset_hashes --------------------------------------------------------------------------------
def test_pset_hashes_equals_pset_hash_per_pset():
    params = [
        {},
        {"a": 1},
        {"a": 1.0, "b": "x"},
        {"a": 1, "_id": "x", "r_": 2},
        {"a": 1, "b": pd.NA},
        {"n": np.int64(3), "f": np.float32(0.5), "t": np.bool_(True)},
        {"s": {"x", "y"}, "arr": np.arange(3), "fn": np.sin},
        {"nested": {"b": [1, (2, 3)], "a": None}},
        {"when": datetime.date(2021, 5, 6)},
    ]
    assert pset_hashes(params) == [pset_hash(p) for p in params]


def test_pset_hashes_accepts_iterables_and_empty():
    assert pset_hashes([]) == []
    assert pset_hashes(p for p in [A[0], A[1]]) == [pset_hash(A[0]), pset_hash(A[1])]


def test_grid_hashes_are_unique():
    grid = pgrid(plist("a", range(10)), plist("b", [0.1, 0.2, 0.3]), plist("c", ["x", "y"]))
    assert len(set(pset_hashes(grid))) == len(grid) == 60


# ================================================================================================
# Edge cases: extended numpy types, dict keys, tags
# ================================================================================================
def test_longdouble_hashes_like_its_float_value():
    assert _same({"a": np.longdouble(1.5)}, {"a": 1.5})


def test_longdouble_raise_error_false_does_not_escape():
    out = pset_hash({"a": np.clongdouble(1 + 2j)}, raise_error=False)
    assert isinstance(out, (str, float))


def test_nested_dict_keys_compare_as_text_as_documented():
    assert _same({"layers": {1: 64}}, {"layers": {"1": 64}})


def test_a_plain_dict_spelled_like_a_tag_meets_it_as_documented():
    assert _same({"a": {1, 2}}, {"a": {"__set__": ["1", "2"]}})


def test_numpy_datetimes_are_not_bare_integers():
    assert not _same({"a": np.timedelta64(5, "ns")}, {"a": 5})
    assert _same({"a": np.timedelta64(1, "s")}, {"a": np.timedelta64(1000, "ms")})
