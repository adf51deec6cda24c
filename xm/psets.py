"""Parameter sets ("psets"): building grids of them and hashing them.

A pset is a plain dict of parameter values; a study is a list of psets. These helpers
build such lists (``plist``, ``pgrid``, ``stargrid``, ...) with psweep's names and
contracts, so they work in any launch script, and give every pset a content hash.

Invalid grids raise ``AssertionError`` (raised explicitly, so ``python -O`` keeps
the checks), as psweep does and its users' tests expect.

The pset hash (:func:`pset_hash`) is our own, canonical and documented in
``docs/sweeps.md``: the SHA-1 of a versioned canonical JSON text of the pset without
its book-keeping keys (names starting or ending with ``_``) and without keys whose
value is missing (``None``, ``pandas.NA`` or a float NaN): an absent parameter, a
missing cell and ``None`` are the same pset (psweep's DataFrame turns ``None`` and NaN
into NA too; nested values are kept as they are), so adding a parameter
column to a study never changes the hashes of its older rows.
numpy scalars hash like the Python values they equal; ``1`` and ``1.0`` are different
psets (as they are different cells of the database and may behave differently in the
function); lists and tuples are the same sequence; dict keys are compared as text, as
in JSON (``{1: x}`` and ``{"1": x}`` are one pset). Values JSON lacks (sets, arrays,
dates, ...) are written as one-key objects with a ``__tag__`` name; a plain dict
spelled exactly like such a tag would meet it. Any other picklable value (class
instances, ...) is written as its class's qualified name and the state pickling saves
(:func:`_object_form`), as psweep hashes any picklable value; only unpicklable values
raise :class:`PsetHashError`.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import hashlib
import itertools
import json
import pathlib
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Optional

Pset = dict[str, Any]

#: The version of the canonical form; part of every hashed text so a future change cannot collide.
HASH_VERSION = 1
_HASH_PREFIX = f"xm-pset-v{HASH_VERSION}\n".encode()
#: The pickle protocol of the object fallback (fixed, so a newer Python's default cannot change hashes).
_PICKLE_PROTOCOL = 4


class PsetHashError(TypeError):
    """A pset holds a value the canonical form does not cover (the message names the key)."""


def _grid_error(message: str) -> AssertionError:
    return AssertionError(message)


# ---- canonical form ----------------------------------------------------------------------------
def _is_na(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "NAType" and cls.__module__.startswith("pandas")


def _is_missing(value: Any) -> bool:
    return value is None or _is_na(value) or (isinstance(value, float) and value != value)


def _canonical_default(value: Any) -> Any:
    """JSON for the values ``json`` does not know, each as an object with a ``__tag__`` key."""
    module = type(value).__module__
    if module == "numpy":
        if hasattr(value, "tolist"):
            kind = getattr(getattr(value, "dtype", None), "kind", "")
            if kind in ("m", "M"):  # datetime64/timedelta64: .item() may give a bare int.
                return {"__datetime64__": str(value.astype("datetime64[ns]" if kind == "M" else "timedelta64[ns]"))}
            if getattr(value, "ndim", 0) == 0:
                item = value.item()
                if type(item) is type(value):  # longdouble and clongdouble have no Python type.
                    return complex(value) if kind == "c" else float(value)
                return item
            return {"__ndarray__": list(value.shape), "values": value.tolist()}
        return {"__callable__": f"numpy.{getattr(value, '__name__', repr(value))}"}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted(canonical_json(item) for item in value)}
    if isinstance(value, datetime.datetime):  # pandas.Timestamp too.
        return {"__datetime__": value.isoformat()}
    if isinstance(value, (datetime.date, datetime.time)):
        return {"__date__": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"__timedelta__": value.total_seconds()}
    if isinstance(value, decimal.Decimal):
        return {"__decimal__": str(value)}
    if isinstance(value, complex):
        return {"__complex__": [value.real, value.imag]}
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": bytes(value).hex()}
    if isinstance(value, pathlib.PurePath):
        return {"__path__": str(value)}
    if _is_na(value):
        return {"__na__": True}
    if callable(value) and hasattr(value, "__qualname__"):
        return {"__callable__": f"{getattr(value, '__module__', None) or module}.{value.__qualname__}"}
    if module.startswith("pandas") and hasattr(value, "tolist"):
        return {"__ndarray__": [len(value)], "values": value.tolist()}
    return _object_form(value)


class _CycleError(TypeError):
    """An object whose pickled state leads back to itself (pickle's memo handles that; JSON cannot)."""


_EXPANDING = threading.local()  # Per thread: ids of the objects whose state is being put in canonical form.


def _object_form(value: Any) -> dict[str, Any]:
    """The fallback for values with no canonical form: class name plus the digest of the state pickling saves.

    The state is what ``__reduce_ex__`` gives (reconstructor, arguments, ``__dict__`` or
    ``__getstate__``, items), itself in canonical form, so it does not depend on pickle's
    byte layout or on ``PYTHONHASHSEED``; it enters the text as its SHA-1 (so nesting
    stays linear). A state that refers back to the object is hashed as the SHA-1 of the
    object's pickle bytes instead. A value that cannot be pickled raises
    :class:`PsetHashError`, as psweep's hash fails on it.
    """
    cls = type(value)
    name = f"{cls.__module__}.{cls.__qualname__}"
    stack = _EXPANDING.__dict__.setdefault("ids", [])
    if id(value) in stack:
        raise _CycleError(f"{name} refers to itself")
    try:
        reduced = value.__reduce_ex__(_PICKLE_PROTOCOL)
    except Exception as error:
        raise _unpicklable(value, error) from None
    if isinstance(reduced, str):  # A module-level singleton, pickled by name.
        return {"__object__": name, "global": reduced}
    parts = list(reduced)
    for index in (3, 4):  # List and dict items come as iterators.
        if len(parts) > index and parts[index] is not None:
            parts[index] = [list(item) if index == 4 else item for item in parts[index]]
    stack.append(id(value))
    try:
        state = _encode(parts)
    except _CycleError:
        state = None
    finally:
        stack.pop()
    if state is not None:
        return {"__object__": name, "state_sha1": hashlib.sha1(state.encode()).hexdigest()}
    try:
        blob = pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
    except Exception as error:
        raise _unpicklable(value, error) from None
    return {"__object__": name, "pickle_sha1": hashlib.sha1(blob).hexdigest()}


def _unpicklable(value: Any, error: Exception) -> PsetHashError:
    return PsetHashError(
        f"value {value!r} of type {type(value).__qualname__} has no canonical form and cannot be pickled ({error})"
    )


def json_encoder(*, sort_keys: bool, default: Callable[[Any], Any], ascii_only: bool = False) -> Callable[[Any], str]:
    """A compact JSON encoder, ``json``'s C encoder built once (``JSONEncoder.encode`` builds it per call)."""
    try:
        # The ignore: typeshed leaves out json's private C encoder (None without the accelerator).
        from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - interpreters without the C accelerator.
        c_make_encoder = None
    if c_make_encoder is None:
        return json.JSONEncoder(
            sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=True, default=default
        ).encode
    strings = encode_basestring_ascii if ascii_only else encode_basestring
    # No circular-reference markers: a cycle ends in RecursionError instead.
    iterencode = c_make_encoder(None, default, strings, None, ":", ",", sort_keys, False, True)
    join = "".join

    def encode(value: Any) -> str:
        return join(iterencode(value, 0))

    return encode


_encode = json_encoder(sort_keys=True, default=_canonical_default)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, compact, tagged non-JSON values)."""
    try:
        return _encode(value)
    except PsetHashError:
        raise
    except (TypeError, ValueError, RecursionError) as error:  # e.g. dict keys of mixed types.
        raise PsetHashError(f"cannot put {value!r} in canonical form: {error}") from None


def is_bookkeeping_key(key: Any) -> bool:
    """psweep's naming convention: ``_prefix`` is book-keeping, ``postfix_`` a result; neither is a parameter."""
    return isinstance(key, str) and (key.startswith("_") or key.endswith("_"))


def _is_bookkeeping(key: Any, skip_prefix: bool, skip_postfix: bool) -> bool:
    return isinstance(key, str) and ((skip_prefix and key.startswith("_")) or (skip_postfix and key.endswith("_")))


def hashed_part(pset: Pset, *, skip_prefix_cols: bool = True, skip_postfix_cols: bool = True) -> Pset:
    """The part of ``pset`` its hash covers: no book-keeping keys, no missing (None or NA) values."""
    return {
        key: value
        for key, value in pset.items()
        if not _is_bookkeeping(key, skip_prefix_cols, skip_postfix_cols) and not _is_missing(value)
    }


def _needs_filter(pset: Pset) -> bool:
    for key, value in pset.items():
        if isinstance(key, str) and key and (key[0] == "_" or key[-1] == "_"):
            return True
        if value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and value != value):
            return True
    return False


def pset_canonical(pset: Pset) -> str:
    """The canonical JSON of the hashed part of ``pset`` (what :func:`pset_hash` digests)."""
    part = hashed_part(pset) if _needs_filter(pset) else pset
    try:
        return _encode(part)
    except PsetHashError as error:
        raise PsetHashError(f"pset {_short(pset)}: {error}") from None
    except (TypeError, ValueError, RecursionError) as error:
        raise PsetHashError(f"pset {_short(pset)} cannot be hashed: {error}") from None


def _short(pset: Pset, width: int = 120) -> str:
    text = repr(pset)
    return text if len(text) <= width else text[: width - 3] + "..."


def hash_text(text: str) -> str:
    """The pset hash of an already canonical text."""
    return hashlib.sha1(_HASH_PREFIX + text.encode()).hexdigest()


def pset_hash(
    pset: Pset,
    method: str = "sha1",
    raise_error: bool = True,
    skip_prefix_cols: bool = True,
    skip_postfix_cols: bool = True,
) -> Any:
    """The 40-hex-digit content hash of ``pset`` (see the module docstring for what it covers).

    ``method`` is accepted for psweep compatibility; only ``"sha1"`` exists. With
    ``raise_error=False`` an unhashable pset gives ``nan`` instead of raising.
    """
    if method != "sha1":
        raise ValueError(f"pset hash method {method!r} is not supported; only 'sha1'")
    try:
        if skip_prefix_cols and skip_postfix_cols:
            return hashlib.sha1(_HASH_PREFIX + _hashed_text(pset).encode()).hexdigest()
        part = hashed_part(pset, skip_prefix_cols=skip_prefix_cols, skip_postfix_cols=skip_postfix_cols)
        return hash_text(canonical_json(part))
    except PsetHashError:
        if raise_error:
            raise
        return float("nan")


def _hashed_text(pset: Pset) -> str:
    """:func:`pset_canonical`, by the fast path when the pset has no book-keeping or missing values."""
    for key in pset:
        if key.__class__ is str and (key[:1] == "_" or key[-1:] == "_"):
            return pset_canonical(pset)
    try:
        text = _encode(pset)
    except (TypeError, ValueError, RecursionError):
        return pset_canonical(pset)  # Raises with the pset named.
    if '"__na__"' in text or "null" in text or "NaN" in text:  # Missing values are dropped.
        return pset_canonical(pset)
    return text


def pset_hashes(params: Iterable[Pset]) -> list[str]:
    """Hashes of many psets (the fast path run() and add_sweep() use).

    The key check runs once per distinct key set, and NA values are found from the
    encoded text (they encode as a tag), so a typical pset costs one C-level encode
    and one SHA-1 (missing values, which are dropped, show in the text).
    """
    sha1 = hashlib.sha1
    prefix = _HASH_PREFIX
    out: list[str] = []
    append = out.append
    encode = _encode
    last_keys: Any = None
    filter_keys = False
    for pset in params:
        keys = pset.keys()
        if keys != last_keys:
            last_keys = keys
            filter_keys = any(_is_bookkeeping(key, True, True) for key in keys)
        if filter_keys:
            text = pset_canonical(pset)
        else:
            try:
                text = encode(pset)
            except (TypeError, ValueError, RecursionError):
                text = pset_canonical(pset)  # Raises with the pset named.
            if '"__na__"' in text or "null" in text or "NaN" in text:
                text = pset_canonical(pset)
        append(sha1(prefix + text.encode()).hexdigest())
    return out


# ---- building params ----------------------------------------------------------------------------
def itr(func: Callable[..., Any]) -> Callable[..., Any]:
    """Lets ``f(a, b, c)`` also be called as ``f([a, b, c])``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and is_seq(args[0]):
            return func(args[0], **kwargs)
        return func(list(args), **kwargs)

    return wrapper


def is_seq(value: Any) -> bool:
    """True for lists, tuples, iterators and other sequences; False for str, dict and files."""
    import io

    if isinstance(value, (str, bytes, dict, io.IOBase)):
        return False
    return hasattr(value, "__iter__") or hasattr(value, "__getitem__")


def flatten(seq: Iterable[Any]) -> Iterator[Any]:
    """Yields the leaves of arbitrarily nested sequences (dicts and strings are leaves)."""
    for item in seq:
        if is_seq(item):
            yield from flatten(item)
        else:
            yield item


def flatten_dict(dct: dict[str, Any], join_str: str = "_") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a_b": 1}``."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{join_str}{key}" if prefix else str(key), item)
        else:
            out[prefix] = value

    walk("", dct)
    return out


@itr
def merge_dicts(args: Sequence[dict[str, Any]], *, allow_dup_keys: bool = True) -> dict[str, Any]:
    """Left-to-right ``dict.update``; with ``allow_dup_keys=False`` an overlap is an AssertionError."""
    merged: dict[str, Any] = {}
    for dct in args:
        if not isinstance(dct, dict):
            raise _grid_error(f"merge_dicts() takes dicts, got {type(dct).__name__}: {dct!r}")
        if not allow_dup_keys:
            duplicates = merged.keys() & dct.keys()
            if duplicates:
                raise _grid_error(f"duplicate parameter name(s) {sorted(map(str, duplicates))} in one pset")
        merged.update(dct)
    return merged


def plist(name: str, seq: Iterable[Any]) -> list[Pset]:
    """``[{name: v} for v in seq]``: the values one parameter takes."""
    if not isinstance(name, str):
        raise _grid_error(f"plist() name must be a str, got {name!r}")
    if isinstance(seq, (str, bytes, dict)):
        raise _grid_error(f"plist({name!r}, ...) needs a sequence of values, got {type(seq).__name__} {seq!r}")
    return [{name: value} for value in seq]


def itr2params(loops: Iterable[Any]) -> list[Pset]:
    """Turns nested tuples of dicts (from ``product``, ``zip``, ...) into merged psets."""
    params = [merge_dicts(list(flatten(item)) if is_seq(item) else [item], allow_dup_keys=False) for item in loops]
    if params:
        size = len(params[0])
        for index, pset in enumerate(params):
            if len(pset) != size:
                raise _grid_error(
                    f"psets differ in length: pset 0 has {size} parameters, pset {index} has {len(pset)} ({pset!r})"
                )
    return params


def _check_plist(position: int, value: Any) -> None:
    if isinstance(value, dict):
        raise _grid_error(
            "pgrid() got a single plist; pass a list of plists: pgrid([a]) or pgrid(a, b) "
            f"(item {position} is the dict {value!r})"
        )
    if isinstance(value, tuple) and value and all(isinstance(item, dict) for item in value):
        raise _grid_error(
            "pgrid() got a single zip(); pass it in a list: pgrid([zip(a, b)]) "
            f"(item {position} is the tuple {value!r})"
        )
    if not is_seq(value):
        raise _grid_error(f"pgrid() item {position} is not a plist: {value!r}")


@itr
def pgrid(plists: Sequence[Any]) -> list[Pset]:
    """The cartesian product of plists; ``zip(a, b)`` entries vary together (nesting flattened)."""
    plists = list(plists)
    for position, value in enumerate(plists):
        _check_plist(position, value)
    return itr2params(itertools.product(*plists))


def filter_params_unique(params: Sequence[Pset]) -> list[Pset]:
    """The first pset of each hash, in order (uses ``pset["_pset_hash"]`` when present)."""
    seen: set[str] = set()
    out: list[Pset] = []
    for pset, digest in zip(params, _hashes_of(params)):
        if digest not in seen:
            seen.add(digest)
            out.append(pset)
    return out


def filter_params_dup_hash(params: Sequence[Pset], hashes: Iterable[str]) -> list[Pset]:
    """The psets whose hash is not in ``hashes``."""
    known = set(hashes)
    return [pset for pset, digest in zip(params, _hashes_of(params)) if digest not in known]


def _hashes_of(params: Sequence[Pset]) -> list[str]:
    params = list(params)
    given = [pset.get("_pset_hash") for pset in params]
    if all(isinstance(digest, str) for digest in given):
        return given  # type: ignore[return-value]
    missing = [pset for pset, digest in zip(params, given) if not isinstance(digest, str)]
    computed = iter(pset_hashes(missing))
    return [digest if isinstance(digest, str) else next(computed) for digest in given]


def stargrid(
    const: Pset,
    vary: Sequence[Sequence[Pset]],
    vary_labels: Optional[Sequence[str]] = None,
    vary_label_col: str = "_vary",
    skip_dups: bool = True,
) -> list[Pset]:
    """Varies one plist at a time around the point ``const`` (a "star")."""
    if not isinstance(const, dict):
        raise _grid_error(f"stargrid() const must be a dict, got {const!r}")
    vary = list(vary)
    if vary_labels is not None and len(vary_labels) != len(vary):
        raise _grid_error(f"stargrid() got {len(vary)} plists in vary but {len(vary_labels)} vary_labels")
    params: list[Pset] = []
    for position, varied in enumerate(vary):
        _check_plist(position, varied)
        for entry in varied:
            pset = {**const, **merge_dicts(list(flatten([entry])), allow_dup_keys=False)}
            if vary_labels is not None:
                pset[vary_label_col] = vary_labels[position]
            params.append(pset)
    if skip_dups:
        try:
            return filter_params_unique(params)
        except PsetHashError:
            return params
    return params


def intspace(*linspace_args: Any, dtype: Any = None, **linspace_kwargs: Any) -> Any:
    """Unique integers nearest to ``numpy.linspace(...)`` (may be fewer than ``num``)."""
    import numpy as np

    values = np.round(np.linspace(*linspace_args, **linspace_kwargs))
    return np.unique(values.astype(np.int64 if dtype is None else dtype))


def logspace(
    start: float,
    stop: float,
    num: int = 50,
    offset: float = 0,
    log_func: Optional[Callable[[Any], Any]] = None,
    base: float = 10,
    **linspace_kwargs: Any,
) -> Any:
    """``num`` points between ``start`` and ``stop`` (the values, not exponents), log-spaced.

    ``offset`` shifts the points before taking logs and back after, which spreads them
    more evenly near a bound of 0. ``log_func`` must be the logarithm to ``base``.
    """
    import numpy as np

    log = np.log10 if log_func is None else log_func
    exponents = np.linspace(log(start + offset), log(stop + offset), num, **linspace_kwargs)
    return base**exponents - offset
