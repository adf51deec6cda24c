"""The values psweep's ``run`` gives ``func`` and the database: its DataFrame round trip, column by column.

psweep 0.16 puts the psets through an all-``object`` DataFrame before hashing them and
calling ``func``, and the database through the same treatment after every run. Within
each column (the whole column: for the database, old rows and new ones together):

1. A missing cell (a key the pset lacks) and every value ``pandas.isna`` calls missing
   (``None``, ``pd.NA``, float NaN, ``NaT``, ``Decimal("NaN")``, a 0-d array holding NaN,
   ...) becomes ``fill_value``. Lists, dicts, tuples, arrays are never "missing".
2. A 0-d numpy array becomes its ``.item()``.
3. pandas' value inference, then back to ``object``. In practice:

   * only ints (or only bools, floats, strings) and nothing missing: unchanged;
   * only numbers, nothing missing: one numeric type. Ints mixed with floats become
     floats (``1`` -> ``1.0``; ints beyond 64 bits stop that), numpy scalars become
     Python ones (``np.float32(1.1)`` -> ``1.100000023841858``); bools mixed with other
     numbers stay as they are;
   * numbers and a missing cell, with the default ``fill_value=pd.NA``: unchanged, the
     missing cells ``pd.NA`` (``pd.NA`` stops the inference). With ``fill_value`` ``None``
     or ``np.nan`` instead, ints and floats become floats and the missing cells NaN;
   * strings and a missing cell: the missing cells become float NaN (what pandas' string
     column holds), whatever ``fill_value`` is;
   * only datetimes (``datetime``, ``np.datetime64``, naive ``Timestamp``): ``Timestamp``s
     of one unit, missing cells ``NaT``; timedeltas likewise become ``Timedelta``s;
   * any list, dict, tuple, set or array in the column: every value stays as it is;
     so do most other mixtures (strings and ints, ``Decimal``, ``date``...).

:func:`wash_column` and :func:`wash_appended` give exactly what that round trip gives:
simple columns (the common cases above) are decided from the set of value types,
anything else goes through pandas' own inference on the whole column. Nothing here is
called per cell by pandas; a column's types are read with one C-level pass, and only
changed cells are written back. :class:`Kind` summarises a washed column so that
appending rows to a database need not rescan the old rows.
"""

from __future__ import annotations

import datetime
import operator
from collections.abc import Sequence
from typing import Any, Optional

import attrs
import numpy as np
import pandas as pd

NA = pd.NA
_NESTED = frozenset((list, dict, tuple, set, frozenset, np.ndarray))
_NUMBERS = frozenset((int, float, bool))
_INT = frozenset((int,))
_FLOAT = frozenset((float,))
_INT_FLOAT = frozenset((int, float))
_HOMOGENEOUS = frozenset((frozenset((int,)), frozenset((bool,)), frozenset((str,)), frozenset((float,))))
_STAMP = pd.Timestamp
_INT64_MIN, _INT64_END = -(2**63), 2**63
_UNCHANGED = frozenset((int, bool, str))  # A column of only one of these comes out as it went in.


class _ZeroDim:
    """Stands for 0-d arrays in a :class:`Kind` (they are unboxed, so only pandas' path handles them)."""


class _ArrayLike:
    """Stands for non-numpy objects with ``__array__`` (``pandas.isna`` looks inside them)."""


@attrs.frozen
class Kind:
    """What a column holds: the types of its present values and of its missing ones.

    ``stamps`` is the set of ``(unit, tz)`` of its ``Timestamp`` values when it holds
    only Timestamps (pandas' datetime inference depends on them).
    """

    present: frozenset[type] = frozenset()
    missing: frozenset[type] = frozenset()
    stamps: frozenset[tuple[Any, Any]] = frozenset()

    def __or__(self, other: Kind) -> Kind:
        return Kind(self.present | other.present, self.missing | other.missing, self.stamps | other.stamps)


def is_na_like(value: Any) -> bool:
    """``None``, ``pd.NA`` or a float NaN: the ``fill_value``s that count as missing."""
    return value is None or value is NA or (type(value) is float and value != value)


# The tzinfo slot every datetime has, read without Timestamp's (much slower) ``tzinfo`` property.
_TZINFO = datetime.datetime.tzinfo.__get__


def _stamps(values: Any) -> frozenset[tuple[Any, Any]]:
    """The ``(unit, tzinfo)`` pairs of ``values`` (all Timestamps)."""
    units = set(map(operator.attrgetter("unit"), values))
    zones = set(map(_TZINFO, values))
    if len(units) == 1 and len(zones) == 1:
        return frozenset({(units.pop(), zones.pop())})
    return frozenset((value.unit, _TZINFO(value)) for value in values)


def _special(kind: type) -> bool:
    """Types whose cells ``pandas.isna`` judges differently from a vectorised check."""
    return issubclass(kind, np.ndarray) or (not issubclass(kind, np.generic) and hasattr(kind, "__array__"))


def missing_mask(values: np.ndarray, types: Optional[set[type]] = None) -> np.ndarray:
    """Which cells psweep replaces by ``fill_value`` (``pandas.isna`` per cell, scalars only)."""
    mask = np.asarray(pd.isna(values), dtype=bool)
    if types is None:
        types = set(map(type, values))
    if any(_special(kind) for kind in types):
        for index, value in enumerate(values):
            if _special(type(value)):
                verdict = pd.isna(value)
                mask[index] = not hasattr(verdict, "__len__") and bool(verdict)
    return mask


def scan(values: np.ndarray) -> tuple[Optional[np.ndarray], Kind]:
    """The missing-cell mask of ``values`` (``None``: nothing missing) and its :class:`Kind`."""
    types = set(map(type, values))
    if len(types) == 1:
        only = next(iter(types))
        if only is int or only is bool or only is str:
            return None, Kind(frozenset(types))
        if only is float:
            nan = np.isnan(values.astype(float))
            if not nan.any():
                return None, Kind(frozenset(types))
            floats = _FLOAT if not nan.all() else frozenset()
            return nan, Kind(floats, _FLOAT)
        if only is _STAMP:  # NaT is not a Timestamp: nothing is missing.
            return None, Kind(frozenset(types), frozenset(), _stamps(values))
    gaps = missing_mask(values, types)
    mask = gaps if gaps.any() else None
    if mask is not None:
        missing = frozenset(map(type, values[mask]))
        kept = values[~mask]
        present = set(map(type, kept))
    else:
        missing, kept, present = frozenset(), values, types
    if np.ndarray in present and any(type(value) is np.ndarray and value.ndim == 0 for value in kept):
        present.add(_ZeroDim)
    if any(_special(kind) and not issubclass(kind, np.ndarray) for kind in present):
        present.add(_ArrayLike)
    stamps = _stamps(kept) if present == {_STAMP} else frozenset()
    return mask, Kind(frozenset(present), missing, stamps)


@attrs.frozen
class _Rule:
    """How a column is washed without pandas: missing cells become ``missing``; ``to_float``: ints become floats."""

    missing: Any
    to_float: bool = False


def _rule(kind: Kind, fill: Any) -> Optional[_Rule]:
    """The shortcut for a column of ``kind``, or ``None`` when only pandas' path is exact."""
    present, has_missing = kind.present, bool(kind.missing)
    if _ZeroDim in present or _ArrayLike in present:
        return None
    if present & _NESTED:
        return _Rule(fill)  # The inference gives up at the first list/dict/...: all stay objects.
    if not has_missing:
        if present in _HOMOGENEOUS or not present:
            return _Rule(fill)
        if present == _INT_FLOAT:
            return _Rule(fill, to_float=True)  # Only when every int fits int64 (checked by the caller).
        if present == {_STAMP} and len(kind.stamps) == 1 and next(iter(kind.stamps))[1] is None:
            return _Rule(fill)
        return None
    if not is_na_like(fill):
        return None
    if present == {str}:
        return _Rule(np.nan)
    if fill is NA and present <= _NUMBERS:
        return _Rule(NA)
    if present == {_STAMP} and len(kind.stamps) == 1 and next(iter(kind.stamps))[1] is None:
        return _Rule(pd.NaT)
    return None


def _ints_fit(values: np.ndarray) -> bool:
    ints = [value for value in values if type(value) is int]
    return not ints or (_INT64_MIN <= min(ints) and max(ints) < _INT64_END)


def _same_missing(kind: Kind, missing: Any) -> bool:
    """True when every missing cell of a column of ``kind`` already is (a copy of) ``missing``."""
    return not kind.missing or kind.missing == {type(missing)}


def _result_kind(kind: Kind, rule: _Rule) -> Kind:
    """The kind of a column of ``kind`` once ``rule`` washed it."""
    present = (kind.present - _INT) | _FLOAT if rule.to_float else kind.present
    if not kind.missing:
        return Kind(present, frozenset(), kind.stamps)
    if is_na_like(rule.missing) or rule.missing is pd.NaT:
        return Kind(present, frozenset({type(rule.missing)}), kind.stamps)
    # A fill_value that is not missing is a present value of the washed column.
    filled = scan(np.fromiter([rule.missing], dtype=object, count=1))[1]
    return Kind(present, frozenset(), kind.stamps) | filled


def _apply(values: np.ndarray, mask: Optional[np.ndarray], rule: _Rule) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``values`` washed by ``rule`` and the indices of the cells that changed (``None``: none)."""
    changed = []
    out = values
    if mask is not None:
        where = np.flatnonzero(mask)
        if len(where):
            out = values.copy()
            missing = rule.missing
            for index in where.tolist():
                out[index] = missing
            changed.append(where)
    if rule.to_float:
        where = np.array([index for index, value in enumerate(values) if type(value) is int], dtype=np.intp)
        if len(where):
            if out is values:
                out = values.copy()
            for index in where.tolist():
                out[index] = float(out[index])
            changed.append(where)
    if not changed:
        return out, None
    return out, (changed[0] if len(changed) == 1 else np.union1d(*changed))


def _infer(values: np.ndarray) -> Any:
    """pandas' inference of an object column, as ``Series.apply`` does it (one C pass, no per-cell call)."""
    try:
        # The ignore: pandas-stubs leaves out this private function.
        from pandas._libs.lib import maybe_convert_objects  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - a pandas without it: the same inference, one call per cell.
        return pd.Series(values, dtype=object, copy=True).map(_identity)
    return pd.Series(maybe_convert_objects(values))


def _identity(value: Any) -> Any:
    return value


def _pandas_wash(values: np.ndarray, fill: Any) -> np.ndarray:
    """The round trip through pandas for one column, exactly; for the columns :func:`_rule` does not cover."""
    types = set(map(type, values))
    mask = missing_mask(values, types)
    out = values.copy()
    for index in np.flatnonzero(mask).tolist():
        out[index] = fill
    if any(issubclass(kind, np.ndarray) for kind in (*types, type(fill))):
        for index, value in enumerate(out):
            if isinstance(value, np.ndarray) and value.ndim == 0:
                out[index] = value.item()
    if not len(out):
        return out
    try:
        inferred = _infer(out)
    except Exception:  # noqa: BLE001 - values pandas cannot hold (psweep fails there): keep them as they are.
        return out
    return inferred.astype(object).to_numpy(dtype=object, copy=True)


def _same(old: np.ndarray, new: np.ndarray) -> bool:
    """True when the washed cells ``new`` are the cells ``old`` (same types, equal values, same Timestamp units)."""
    for a, b in zip(old.tolist(), new.tolist()):
        if a is b:
            continue
        kind = type(a)
        if kind is not type(b):
            return False
        if kind is float:
            if not (a == b or (a != a and b != b)):
                return False
        elif kind in (int, str, bool, complex, bytes):
            if a != b:
                return False
        elif kind is _STAMP:
            if a != b or a.unit != b.unit or a.tz != b.tz:
                return False
        else:
            return False
    return True


def wash_column(values: np.ndarray, fill: Any) -> tuple[np.ndarray, Optional[np.ndarray], Kind]:
    """psweep's round trip of one column (object array): the result, the changed cells (``None``: none), its kind."""
    mask, kind = scan(values)
    rule = _rule(kind, fill)
    if rule is not None and (not rule.to_float or _ints_fit(values)):
        out, changed = _apply(values, mask, rule)
        return out, changed, _result_kind(kind, rule)
    out = _pandas_wash(values, fill)
    return out, None if _same(values, out) else np.arange(len(values)), scan(out)[1]


def wash_appended(
    old: np.ndarray, old_kind: Optional[Kind], new: np.ndarray, fill: Any
) -> tuple[np.ndarray, bool, Kind]:
    """The column ``old + new`` washed as one, where ``old`` is already washed.

    Returns the whole washed column, whether its ``old`` part changed, and its kind.
    ``old_kind`` (``None``: scan ``old``) spares reading the old rows when the new ones
    leave them as they are, which is the usual case.
    """
    if not len(old):
        out, _, kind = wash_column(new, fill)
        return out, False, kind
    if old_kind is None:
        old_kind = scan(old)[1]
    new_mask, new_kind = scan(new)
    both = old_kind | new_kind
    rule = _rule(both, fill)
    if (
        rule is not None
        and _same_missing(old_kind, rule.missing)
        and not (rule.to_float and int in old_kind.present)
        and (not rule.to_float or _ints_fit(new))
    ):
        washed_new, _ = _apply(new, new_mask, rule)
        return np.concatenate([old, washed_new]), False, _result_kind(both, rule)
    whole = np.concatenate([old, new])
    out = _pandas_wash(whole, fill)
    return out, not _same(old, out[: len(old)]), scan(out)[1]


def wash_psets(psets: list[dict[Any, Any]], order: Sequence[Any], fill: Any) -> None:
    """Washes ``psets`` in place (they are the caller's copies), as psweep's ``run`` does before ``func``.

    Every pset must hold every key of ``order`` already. A column of only ints, bools or
    strings costs one pass over its types; others are washed and written back where
    they changed.
    """
    n = len(psets)
    if not n:
        return
    for key in order:
        pick = operator.itemgetter(key)
        types = set(map(type, map(pick, psets)))
        if len(types) == 1 and next(iter(types)) in _UNCHANGED:
            continue
        values = np.fromiter(map(pick, psets), dtype=object, count=n)
        out, changed, _ = wash_column(values, fill)
        if changed is None:
            continue
        for index in changed.tolist():
            psets[index][key] = out[index]


def wash_frame(df: Any, fill: Any) -> tuple[Any, dict[Any, Kind]]:
    """A copy of ``df`` with all-``object`` columns, washed; and each column's kind."""
    kinds: dict[Any, Kind] = {}
    data: dict[int, np.ndarray] = {}
    for position, name in enumerate(df.columns):
        data[position], _, kinds[name] = wash_column(df.iloc[:, position].to_numpy(dtype=object), fill)
    out = pd.DataFrame(data, index=df.index, dtype=object, copy=False)
    out.columns = df.columns
    out.attrs.update(df.attrs)
    return out, kinds
