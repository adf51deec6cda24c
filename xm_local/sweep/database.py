"""The study database: a pandas DataFrame, one row per pset, pickled to ``<calc_dir>/database.pk``.

psweep's helpers for it, with its names and keywords. All columns have dtype
``object`` and the index is a RangeIndex equal to ``_pset_seq``. Writes are atomic
(a temporary file renamed over the old one), so a crash never leaves half a database.
A file that is not a pickled DataFrame gives :class:`DatabaseError` naming it.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from xmanager.xm import psets

#: ``df.attrs`` key saying which pset hash version the ``_pset_hash`` column holds.
HASH_ATTR = "xm_pset_hash"
_DEFAULT = object()


class DatabaseError(ValueError):
    """A database file that cannot be read as a study database."""


def fill_na() -> Any:
    import pandas as pd

    return pd.NA


def filter_cols(cols: Iterable[str], kind: str = "pset") -> list[str]:
    """Column names by psweep's convention: ``pset`` (params), ``pre``/``prefix`` (``_x``), ``post``/``postfix`` (``x_``)."""
    if kind == "pset":
        return [col for col in cols if not psets.is_bookkeeping_key(col)]
    if kind in ("pre", "prefix"):
        return [col for col in cols if col.startswith("_")]
    if kind in ("post", "postfix"):
        return [col for col in cols if col.endswith("_")]
    raise ValueError(f"filter_cols() kind must be 'pset', 'pre(fix)' or 'post(fix)', got {kind!r}")


# ---- reading and writing ------------------------------------------------------------------------
def df_to_json(df: Any, **kwds: Any) -> Optional[str]:
    """JSON records with ISO dates in seconds and 15 significant digits (psweep's defaults)."""
    options = {"orient": "records", "date_format": "iso", "date_unit": "s", "double_precision": 15, **kwds}
    return df.to_json(**options)


def df_write(fn: str, df: Any, fmt: str = "pickle", **kwds: Any) -> None:
    """Writes ``df`` to ``fn`` (``pickle`` or ``json``), creating the folder; atomic."""
    if not isinstance(fn, (str, os.PathLike)):
        raise TypeError(f"df_write(fn, df): fn must be a path, got {type(fn).__name__} (the order is fn, df)")
    folder = os.path.dirname(os.fspath(fn))
    if folder:
        os.makedirs(folder, exist_ok=True)
    temporary = f"{os.fspath(fn)}.tmp.{os.getpid()}"
    try:
        if fmt == "pickle":
            with open(temporary, "wb") as handle:
                pickle.dump(df, handle, protocol=kwds.pop("protocol", pickle.HIGHEST_PROTOCOL), **kwds)
        elif fmt == "json":
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(df_to_json(df, **kwds) or "")
        else:
            raise ValueError(f"df_write() fmt must be 'pickle' or 'json', got {fmt!r}")
        os.replace(temporary, fn)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def df_from_pickle(data: bytes, source: str) -> Any:
    """The DataFrame pickled in ``data`` (read from ``source``, named in errors)."""
    import pandas as pd

    try:
        df = pickle.loads(data)
    except Exception as error:
        raise DatabaseError(f"{source}: not a readable pickled DataFrame ({type(error).__name__}: {error})") from None
    if not isinstance(df, pd.DataFrame):
        raise DatabaseError(f"{source}: holds a {type(df).__name__}, not a pandas DataFrame")
    return df


def df_read(fn: str, fmt: str = "pickle", **kwds: Any) -> Any:
    """Reads a database written by :func:`df_write` (or by psweep)."""
    import pandas as pd

    if fmt == "pickle":
        with open(fn, "rb") as handle:
            data = handle.read()
        return df_from_pickle(data, fn)
    if fmt == "json":
        options = {"precise_float": True, "orient": "records", **kwds}
        try:
            return pd.read_json(fn, **options)
        except ValueError as error:
            raise DatabaseError(f"{fn}: not a JSON records database ({error})") from None
    raise ValueError(f"df_read() fmt must be 'pickle' or 'json', got {fmt!r}")


# ---- types --------------------------------------------------------------------------------------
def df_ensure_dtypes(df: Any, fill_value: Any = _DEFAULT) -> Any:
    """A copy of ``df`` with ``object`` columns, washed as psweep washes its database.

    Missing cells (``pandas.isna`` scalars) become ``fill_value``, then each column goes
    through pandas' value inference and back to ``object`` (a column of ints and floats
    holds floats, a string column's missing cells are NaN, ...): see
    :mod:`xmanager.xm_local.sweep.coerce`. ``df`` itself is not modified.
    """
    from xmanager.xm_local.sweep import coerce

    fill = fill_na() if fill_value is _DEFAULT else fill_value
    return coerce.wash_frame(df, fill)[0]


# ---- hashes -------------------------------------------------------------------------------------
def df_update_pset_hash(df: Any, copy: bool = False) -> Any:
    """Recomputes ``_pset_hash`` of every row from its parameter columns (NA cells are absent)."""
    import pandas as pd

    out = df.copy() if copy else df
    out["_pset_hash"] = pd.Series(psets.pset_hashes(df_extract_params(df)), index=out.index, dtype=object)
    out.attrs[HASH_ATTR] = psets.HASH_VERSION
    return out


def df_update_pset_cols(df: Any, pset_cols: Iterable[str], fill_value: Any = _DEFAULT, copy: bool = False) -> Any:
    """Adds missing parameter columns (filled with ``fill_value``) and refreshes ``_pset_hash``."""
    import pandas as pd

    fill = fill_na() if fill_value is _DEFAULT else fill_value
    out = df.copy() if copy else df
    for col in pset_cols:
        if col not in out.columns:
            out[col] = pd.Series([fill] * len(out), index=out.index, dtype=object)
    return df_update_pset_hash(out, copy=False)


def has_current_hashes(df: Any) -> bool:
    """True when ``_pset_hash`` was written by this hash version (no re-hash needed)."""
    return df.attrs.get(HASH_ATTR) == psets.HASH_VERSION and "_pset_hash" in df.columns


# ---- extracting rows ----------------------------------------------------------------------------
def df_extract_dicts(df: Any, py_types: bool = False) -> list[dict[str, Any]]:
    """Rows as dicts, values as stored (``py_types=True``: Python scalars via ``Series.to_dict``)."""
    if py_types:
        return [row.to_dict() for _, row in df.iterrows()]
    columns = list(df.columns)
    return [dict(zip(columns, row)) for row in df.itertuples(index=False, name=None)]


def df_extract_params(df: Any, py_types: bool = False) -> list[dict[str, Any]]:
    """The psets of ``df``: only parameter columns, so they reproduce the rows' hashes."""
    return df_extract_dicts(df[filter_cols(df.columns, kind="pset")], py_types=py_types)


def df_extract_row(df: Any, pset_id: str, kind: Optional[str] = None, py_types: bool = False) -> dict[str, Any]:
    """The row with ``_pset_id == pset_id`` as a dict (``kind`` as in :func:`filter_cols`)."""
    rows = df[df["_pset_id"] == pset_id]
    if len(rows) != 1:
        raise AssertionError(f"expected one row with _pset_id {pset_id!r}, found {len(rows)}")
    if kind is not None:
        rows = rows[filter_cols(rows.columns, kind=kind)]
    return df_extract_dicts(rows, py_types=py_types)[0]


def df_extract_pset(df: Any, pset_id: str, py_types: bool = False) -> dict[str, Any]:
    """The parameters of the row with ``_pset_id == pset_id``."""
    return df_extract_row(df, pset_id, kind="pset", py_types=py_types)


# ---- querying and printing ----------------------------------------------------------------------
def df_filter_conds(df: Any, conds: Iterable[Sequence[bool]], op: str = "and") -> Any:
    """Rows where all (``and``), any (``or``) or an odd number (``xor``) of ``conds`` hold."""
    import numpy as np

    reducers = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}
    if op not in reducers:
        raise ValueError(f"df_filter_conds() op must be 'and', 'or' or 'xor', got {op!r}")
    conditions = [np.asarray(cond, dtype=bool) for cond in conds]
    if not conditions:
        return df
    return df[reducers[op].reduce(conditions)]


def df_print(
    df: Any,
    index: bool = False,
    special_cols: Optional[bool] = None,
    prefix_cols: bool = False,
    cols: Sequence[str] = (),
    skip_cols: Sequence[str] = (),
) -> None:
    """Prints ``df`` with sorted column names, hiding ``_`` columns unless ``prefix_cols``."""
    if special_cols is not None:
        import warnings

        warnings.warn("special_cols is deprecated; use prefix_cols", DeprecationWarning, stacklevel=2)
        prefix_cols = special_cols
    prefixed = {col for col in df.columns if str(col).startswith("_")}
    if cols:
        if skip_cols:
            raise ValueError("df_print(): pass cols or skip_cols, not both")
        shown = set(cols) | (prefixed if prefix_cols else set())
    else:
        shown = set(df.columns) - (set() if prefix_cols else prefixed) - set(skip_cols)
    missing = sorted(set(cols) - set(df.columns))
    if missing:
        raise KeyError(f"df_print(): no column(s) {missing}; columns are {sorted(map(str, df.columns))}")
    print(df[sorted(shown)].to_string(index=index))


# ---- the calc dir on disk -----------------------------------------------------------------------
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_calc_dir(calc_dir: str, df: Any) -> dict[str, set[str]]:
    """Compares the ``_pset_id``s of ``df`` with the pset folders in ``calc_dir``."""
    on_disk = {name for name in os.listdir(calc_dir) if _UUID.match(name) and os.path.isdir(os.path.join(calc_dir, name))}
    in_db = set(df["_pset_id"]) if "_pset_id" in df.columns else set()
    return {"db_not_disk": in_db - on_disk, "disk_not_db": on_disk - in_db}
