"""``run(func, params)``: call ``func`` on every pset and keep a database of psets and results.

psweep 0.16's contract (keywords, reserved columns, ``<calc_dir>/database.pk``, backups,
simulate, tmpsave, capture_logs, git, skip_dups), with these differences:

* Completed psets are journalled as they finish (:mod:`.journal`): a killed run loses
  none, and the next run merges them in; a run whose ``func`` raises saves the psets
  that completed before re-raising. ``skip_dups=True`` then runs only what is missing.
* ``on_error="record"`` records a failing pset (columns ``_failed``, ``_exc_txt``, the
  names of psweep's documented ``safe_func`` recipe) instead of aborting the run;
  ``skip_dups`` re-runs failed psets.
* Existing rows are never re-hashed: the database remembers its hash version, so
  extending a study costs time in the new psets only (plus one write of the file).
* With ``save=True`` the run is also recorded in the metadata store: one experiment
  per calc dir, one work unit per pset (``xmanager list``, ``get_experiment``).
* Pset values reach ``func`` as psweep's DataFrame round trip leaves them (:mod:`.coerce`):
  every pset has every key (a key some psets lack is ``fill_value`` in the others),
  ``None``/NaN/NA become ``fill_value``, a column mixing ints and floats holds floats,
  numpy numbers become Python ones; the database's columns (old rows and new ones
  together) get the same treatment after every run.
* Inside ``func``, every book-keeping field has psweep's type (``_time_utc`` is the
  ``pandas.Timestamp`` the database then holds).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import copy
import gc
import io
import operator
import os
import pickle
import platform
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import attrs
from xmanager.xm import psets
from xmanager.xm_local.sweep import database as db
from xmanager.xm_local.sweep import dbfile, files, gitops
from xmanager.xm_local.sweep import journal as journal_mod

if TYPE_CHECKING:
    from xmanager.xm_local.sweep import coerce  # Imports pandas: loaded on first use, in the functions.

CALC_DIR = "calc"
DATABASE_BASENAME = "database.pk"
_DEFAULT = object()
_CAPTURE_MODES = (None, "db", "file", "db+file")
_ON_ERROR = ("raise", "record")
_SCALAR_TYPES = frozenset((int, float, str, bool, type(None), bytes, complex))
_HOST: Optional[str] = None
_YOUNG_GC_EVERY = 1023  # Mask: the young generations are collected every 1,024 psets while a run works.
#: When set (a list), run() adds the rows of the psets it ran: each the pset ``func`` got (or, when
#: simulating, would have got) plus what the call added. prep_batch renders a simulated run from them.
ROW_SINK: contextvars.ContextVar[Optional[list[dict[str, Any]]]] = contextvars.ContextVar(
    "xm_sweep_row_sink", default=None
)


def _host() -> str:
    global _HOST
    if _HOST is None:
        _HOST = platform.node()
    return _HOST


def _now() -> Any:
    """The current UTC time as the naive ``pandas.Timestamp`` psweep stores in ``_time_utc``."""
    import pandas as pd

    return pd.Timestamp(time.time_ns())


def _print_start(pset: dict[str, Any], verbose: Any) -> None:
    """psweep's ``verbose``: the pset about to run, as a one-row table indexed by its start time."""
    import pandas as pd

    row = pd.DataFrame([pset], index=[pset["_time_utc"]])
    db.df_print(row, index=True, cols=[] if verbose is True else list(verbose))


class FuncCall:
    """``func(pset)`` with psweep's book-keeping; picklable, so it runs in worker processes too.

    Returns the row: the pset, ``_time_utc`` (a ``pandas.Timestamp``), ``_exec_host``,
    the results, ``_pset_runtime``, and ``_logs`` or ``_failed``/``_exc_txt`` when
    asked for. With ``verbose``, the pset is printed before ``func`` runs, as psweep does.
    """

    def __init__(
        self,
        func: Optional[Callable[[dict[str, Any]], Any]],
        capture_logs: Optional[str],
        on_error: str,
        verbose: Any = False,
    ):
        self.func = func
        self.capture_logs = capture_logs
        self.record_errors = on_error == "record"
        self.verbose = verbose

    def __call__(self, pset: dict[str, Any]) -> dict[str, Any]:
        row = pset
        row["_time_utc"] = _now()
        row["_exec_host"] = _host()
        if self.verbose:
            _print_start(row, self.verbose)
        start = time.perf_counter()
        error: Optional[str] = None
        logs: Optional[str] = None
        result: Any = {}
        if self.func is not None:
            try:
                if self.capture_logs:
                    buffer = io.StringIO()
                    try:
                        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                            result = self.func(pset)
                    finally:
                        logs = buffer.getvalue()
                else:
                    result = self.func(pset)
                if type(result) is not dict and not isinstance(result, Mapping):
                    raise TypeError(
                        f"func returned {type(result).__name__}, not a dict, for pset {_describe(pset)}"
                    )
            except Exception:
                if not self.record_errors:
                    if logs is not None and "file" in str(self.capture_logs):
                        self._keep_logs(row, logs, in_db=False)  # What it printed before it failed.
                    raise
                error = traceback.format_exc()
                result = {}
        runtime = time.perf_counter() - start
        if result:
            row.update(result)
        if logs is not None:
            self._keep_logs(row, logs)
        if self.record_errors:
            row["_failed"] = error is not None
            row["_exc_txt"] = error
        row["_pset_runtime"] = runtime
        return row

    def plain(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """This call without its options, as a closure (serial runs without capture or recording)."""
        if self.func is None or self.capture_logs or self.record_errors or self.verbose:
            return self
        import pandas as pd

        func, stamp, clock, timer, host = self.func, pd.Timestamp, time.time_ns, time.perf_counter, _host()

        def call(pset: dict[str, Any]) -> dict[str, Any]:
            pset["_time_utc"] = stamp(clock())
            pset["_exec_host"] = host
            start = timer()
            result = func(pset)
            runtime = timer() - start
            if type(result) is not dict and not isinstance(result, Mapping):
                raise TypeError(f"func returned {type(result).__name__}, not a dict, for pset {_describe(pset)}")
            if result:
                pset.update(result)
            pset["_pset_runtime"] = runtime
            return pset

        return call

    def _keep_logs(self, row: dict[str, Any], logs: str, in_db: bool = True) -> None:
        if in_db and "db" in str(self.capture_logs):
            row["_logs"] = logs
        if "file" in str(self.capture_logs):
            files.file_write(os.path.join(row["_calc_dir"], row["_pset_id"], "logs.txt"), logs)


def func_wrapper(func: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``func`` with the book-keeping ``run()`` adds around it (psweep's helper of that name)."""
    return FuncCall(func, None, "raise")


def capture_logs_wrapper(func: Callable[[dict[str, Any]], Any], capture_logs: str) -> Callable[..., Any]:
    """``func`` with stdout and stderr captured as ``run(capture_logs=...)`` does."""
    if capture_logs not in _CAPTURE_MODES[1:]:
        raise ValueError(f"capture_logs must be one of {_CAPTURE_MODES}, got {capture_logs!r}")
    return FuncCall(func, capture_logs, "raise")


def _describe(pset: Mapping[str, Any]) -> str:
    shown = {key: value for key, value in pset.items() if not psets.is_bookkeeping_key(key)}
    text = repr(shown)
    if len(text) > 200:
        text = text[:197] + "..."
    pset_id = pset.get("_pset_id")
    return f"{text} (_pset_id {pset_id})" if pset_id else text


# ---- preparing psets ----------------------------------------------------------------------------
def _key_order(
    dicts: Sequence[Mapping[Any, Any]], first: Sequence[Any] = (), ordered: bool = False
) -> tuple[list[Any], bool]:
    """Every key of ``dicts`` (after ``first``) in first-seen order, and whether all have the same keys.

    ``ordered``: the same keys in the same order.
    """
    keys: dict[Any, None] = dict.fromkeys(first)
    shape: Any = None
    uniform = True
    for item in dicts:
        current = tuple(item) if ordered else item.keys()
        if shape is None:
            shape = current
            keys.update(dict.fromkeys(current))
        elif current != shape:
            uniform = False
            keys.update(dict.fromkeys(current))
    return list(keys), uniform

def _prepare_params(params: Sequence[Any], fill_value: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Copies of the psets (never the caller's dicts) as psweep's ``run`` hands them to ``func``; and the key order.

    Every pset gets every key, in first-seen order, and the values of each key are
    washed as psweep's DataFrame round trip washes them (:func:`.coerce.wash_psets`).
    """
    if isinstance(params, Mapping) or not psets.is_seq(params):
        raise TypeError(f"params must be a list of dicts (psets), got {type(params).__name__}")
    prepared: list[dict[str, Any]] = []
    scalars = _SCALAR_TYPES.issuperset
    for index, pset in enumerate(params):
        if type(pset) is not dict and not isinstance(pset, Mapping):
            raise TypeError(f"params[{index}] is {type(pset).__name__}, not a dict (pset): {pset!r}")
        prepared.append(dict(pset) if scalars(map(type, pset.values())) else copy.deepcopy(dict(pset)))
    order, uniform = _key_order(prepared, ordered=True)
    if not uniform:
        prepared = [{key: pset.get(key, fill_value) for key in order} for pset in prepared]
    from xmanager.xm_local.sweep import coerce

    coerce.wash_psets(prepared, order, fill_value)
    return prepared, order


# ---- reading and writing the database ----------------------------------------------------------
@attrs.define
class _Snapshot:
    """What this process last wrote to a database file: its stat key, frame and layout."""

    key: tuple[int, int, int]
    df: Any
    layout: dbfile.Layout
    kinds: dict[Any, coerce.Kind]  # What each column holds (see coerce.Kind), so extending skips rescanning.


_CACHE: dict[str, _Snapshot] = {}


def _file_key(path: str) -> Optional[tuple[int, int, int]]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _read_database(path: str) -> tuple[Any, Optional[dbfile.Layout], Optional[dict[Any, coerce.Kind]]]:
    """The database at ``path``, its chunk layout (``None`` if another program wrote it) and column kinds.

    When this process wrote that very file (same inode, size and mtime), the frame in
    memory is used instead of unpickling it, and the column kinds known when writing it
    come along (else ``None``: the columns are scanned when needed).
    """
    cached = _CACHE.get(path)
    if cached is not None and cached.key == _file_key(path):
        return cached.df.copy(deep=False), cached.layout, dict(cached.kinds)
    with open(path, "rb") as handle:
        data = handle.read()
    df = db.df_from_pickle(data, path)
    _check_database(df, path)
    return df, dbfile.layout_of(data), None


def _check_database(df: Any, source: str) -> None:
    if len(df) and "_pset_id" not in df.columns:
        raise db.DatabaseError(f"{source}: a DataFrame without _pset_id; not a study database")


_COUNTERS = "xm_next_seqs"  # df.attrs: (rows, next _run_seq, next _pset_seq) as of the last run.


def _next_seqs(df: Any) -> tuple[int, int]:
    """The next ``_run_seq`` and ``_pset_seq`` (from ``df.attrs`` when they still describe ``df``)."""
    known = df.attrs.get(_COUNTERS)
    if isinstance(known, tuple) and len(known) == 3 and known[0] == len(df):
        return known[1], known[2]

    def top(column: str) -> int:
        if column not in df.columns or not len(df):
            return -1
        values = [value for value in df[column].tolist() if hasattr(value, "__index__")]
        return int(max(values)) if values else -1

    return top("_run_seq") + 1, top("_pset_seq") + 1


# ---- building the new rows ----------------------------------------------------------------------
def _extend(
    old: Any, rows: list[dict[str, Any]], fill_value: Any, kinds: Optional[dict[Any, coerce.Kind]] = None
) -> tuple[Any, bool, dict[Any, coerce.Kind]]:
    """``old`` followed by ``rows`` (dicts), all columns ``object``, washed as psweep washes its database.

    Built column by column with numpy: the old columns first, then keys only the new
    rows have; a cell either side lacks gets ``fill_value``. Each whole column then goes
    through psweep's round trip (:func:`.coerce.wash_appended`; ``kinds`` describes the
    old columns, else they are scanned). Notes the hash version and the next sequence
    numbers in ``attrs``. Returns the frame, whether any old cell changed, and the
    columns' kinds.
    """
    import numpy as np
    import pandas as pd
    from xmanager.xm_local.sweep import coerce

    names, uniform = _key_order(rows, first=old.columns)
    n_old, n_new = len(old), len(rows)
    if uniform and rows and len(rows[0]) == len(names):
        pick = operator.itemgetter(*names)
        records = [pick(row) for row in rows] if len(names) > 1 else [(pick(row),) for row in rows]
    else:
        records = [tuple(row.get(key, fill_value) for key in names) for row in rows]
    columns_new = list(zip(*records)) if records else [() for _ in names]
    data: dict[Any, Any] = {}
    kinds_out: dict[Any, coerce.Kind] = {}
    old_changed = False
    for name, values in zip(names, columns_new):
        fresh = np.fromiter(values, dtype=object, count=n_new)
        if name == "_time_utc":  # Journals of older versions hold epoch seconds.
            for index, value in enumerate(fresh):
                if isinstance(value, float):
                    fresh[index] = pd.Timestamp(value, unit="s")
        known = None
        if name in old.columns:
            before = old[name].to_numpy(dtype=object)
            known = kinds.get(name) if kinds is not None else None
        else:
            before = np.empty(n_old, dtype=object)
            before.fill(fill_value)
        data[name], changed, kinds_out[name] = coerce.wash_appended(before, known, fresh, fill_value)
        old_changed = old_changed or changed
    out = pd.DataFrame(data, index=pd.RangeIndex(n_old + n_new), dtype=object, copy=False)
    out.attrs.update(old.attrs)
    out.attrs[db.HASH_ATTR] = psets.HASH_VERSION
    if rows and "_run_seq" in rows[-1] and "_pset_seq" in rows[-1]:
        run_seq, _ = _next_seqs(old)
        last = rows[-1]
        out.attrs[_COUNTERS] = (len(out), max(run_seq, int(last["_run_seq"]) + 1), int(last["_pset_seq"]) + 1)
    return out, old_changed, kinds_out


# ---- the run ------------------------------------------------------------------------------------
def _validate(poolsize: Any, dask_client: Any, capture_logs: Any, on_error: Any, verbose: Any) -> None:
    if poolsize is not None and dask_client is not None:
        raise AssertionError("run(): pass poolsize or dask_client, not both")
    if poolsize is not None and (not isinstance(poolsize, int) or poolsize < 1):
        raise ValueError(f"run(): poolsize must be a positive int, got {poolsize!r}")
    if capture_logs not in _CAPTURE_MODES:
        raise ValueError(f"run(): capture_logs must be one of {_CAPTURE_MODES}, got {capture_logs!r}")
    if on_error not in _ON_ERROR:
        raise ValueError(f"run(): on_error must be 'raise' or 'record', got {on_error!r}")
    if not isinstance(verbose, bool) and not psets.is_seq(verbose):
        raise ValueError(f"run(): verbose must be a bool or a sequence of column names, got {verbose!r}")


def _check_picklable(call: FuncCall, poolsize: int) -> None:
    try:
        pickle.dumps(call)
    except Exception as error:
        name = getattr(call.func, "__qualname__", repr(call.func))
        raise TypeError(
            f"run(poolsize={poolsize}): func {name!r} cannot be sent to worker processes ({error}); "
            "define it at the top level of a module, or use poolsize=None"
        ) from None


def _simulate_dir(calc_dir: str, database_basename: str) -> str:
    target = f"{calc_dir}.simulate"
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(target)
    source = os.path.join(calc_dir, database_basename)
    if os.path.exists(source):
        shutil.copy2(source, os.path.join(target, database_basename))
    else:
        warnings.warn(f"simulate: no database {source} to copy; simulating a new study", stacklevel=3)
    return target


def _backup(calc_dir: str, df: Any) -> Optional[str]:
    if not len(df) or not os.path.exists(calc_dir):
        return None
    import pandas as pd

    stamp = pd.Timestamp(max(df["_time_utc"].tolist()))
    last_run = df["_run_id"].iloc[-1]
    target = f"{calc_dir}.bak_{stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z_run_id_{last_run}"
    if os.path.exists(target):
        raise AssertionError(f"backup target {target} exists already")
    shutil.copytree(calc_dir, target, symlinks=True)
    return target


def _execute(
    call: FuncCall,
    todo: list[dict[str, Any]],
    poolsize: Optional[int],
    dask_client: Any,
    on_row: Callable[[dict[str, Any]], None],
) -> None:
    if dask_client is not None:
        for row in dask_client.gather(dask_client.map(call, todo)):
            on_row(row)
        return
    if poolsize is None:
        serial = call.plain()
        for pset in todo:
            on_row(serial(pset))
        return
    import multiprocessing

    _check_picklable(call, poolsize)
    chunksize = max(1, min(256, len(todo) // (poolsize * 16) or 1))
    with multiprocessing.Pool(poolsize) as pool:
        for row in pool.imap(call, todo, chunksize=chunksize):
            on_row(row)


class _Study:
    """One ``run()`` call's state: the database, the journal, the store record."""

    def __init__(self, calc_dir: str, database_basename: str, save: bool, persist: bool, fill_value: Any) -> None:
        self.calc_dir = calc_dir
        self.path = os.path.join(calc_dir, database_basename)
        self.save = save
        self.persist = persist  # Journal and metadata store (not in simulate).
        self.fill_value = fill_value
        # The file's chunk layout, and the rows and columns it holds; None: write it whole.
        self.layout: Optional[dbfile.Layout] = None
        self.rows = 0
        self.columns: list[Any] = []
        self.kinds: Optional[dict[Any, coerce.Kind]] = None  # Of the frame being extended; None: unknown.
        self.old_changed = False  # The last extend() changed cells of existing rows.

    def read(self, df: Any) -> Any:
        """The database to extend: ``df`` if given, else the file's (or an empty one)."""
        import pandas as pd

        if df is not None:
            _check_database(df, "the df passed to run()")
            if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0:
                return df.reset_index(drop=True)  # E.g. a filtered database: rows are renumbered.
            return df.copy(deep=False)
        if not os.path.exists(self.path):
            return pd.DataFrame(dtype=object)
        df, self.layout, self.kinds = _read_database(self.path)
        self.rows, self.columns = len(df), list(df.columns)
        return df

    def extend(self, df: Any, rows: list[dict[str, Any]]) -> Any:
        """``df`` with ``rows`` appended, every column washed as psweep washes its database."""
        df, self.old_changed, self.kinds = _extend(df, rows, self.fill_value, self.kinds)
        if self.old_changed:
            self.forget_layout()  # Old rows changed (e.g. an int column became float): write it whole.
        return df

    def rehashed(self) -> None:
        """``_pset_hash`` was recomputed: its kind is no longer known, and the file must be written whole."""
        if self.kinds is not None:
            self.kinds.pop("_pset_hash", None)
        self.forget_layout()

    def write(self, df: Any) -> None:
        """Saves ``df``, appending one chunk when it only adds rows to what the file holds."""
        layout = self.layout
        if (
            layout is not None
            and 0 < self.rows <= len(df)
            and list(df.columns) == self.columns
            and layout.chunks < dbfile.MAX_CHUNKS
        ):
            if len(df) > self.rows:
                layout = dbfile.append(self.path, layout, dbfile.encode_chunk(df.iloc[self.rows :]))
        else:
            layout = dbfile.write(self.path, [dbfile.encode_chunk(df)])
        self.layout, self.rows, self.columns = layout, len(df), list(df.columns)
        key = _file_key(self.path)
        if key is not None:
            _CACHE[self.path] = _Snapshot(key, df.copy(deep=False), layout, dict(self.kinds or {}))

    def forget_layout(self) -> None:
        """The rows in memory no longer match the file (e.g. they were re-hashed): write it whole."""
        self.layout = None

    def recover(self, df: Any, pset_cols_hint: set[str]) -> Any:
        """Merges rows of earlier runs that were killed before saving; writes and records them."""
        for path in list(journal_mod.leftovers(self.calc_dir)):
            rows = journal_mod.read(path)
            run_ids = {row.get("_run_id") for row in rows}
            if len(df) and run_ids:
                stored = set(df.loc[df["_run_id"].isin(run_ids), "_pset_id"]) if "_run_id" in df.columns else set()
                rows = [row for row in rows if row.get("_pset_id") not in stored]
            if rows:
                next_seq = _next_seqs(df)[1]
                for offset, row in enumerate(rows):
                    row["_pset_seq"] = next_seq + offset
                before = len(df)
                df = self.extend(df, rows)
                self.write(df)
                cols = pset_cols_hint or {key for key in rows[0] if not psets.is_bookkeeping_key(key)}
                self.record(rows, cols, before, df)
                print(
                    f"xmanager sweep: recovered {len(rows)} completed pset(s) of interrupted run "
                    f"{rows[0].get('_run_id')} from {path}",
                    file=sys.stderr,
                )
            os.remove(path)
        return df

    def record(self, rows: list[dict[str, Any]], pset_cols: set[str], before: int, df: Any) -> None:
        from xmanager.xm_local.sweep.record import record

        try:
            record(self.calc_dir, rows, pset_cols, before, all_rows=lambda: db.df_extract_dicts(df))
        except Exception as error:  # The database has the rows; the next run records them.
            print(f"xmanager sweep: could not record the run in the metadata store: {error}", file=sys.stderr)

    def finish(self, df: Any, rows: list[dict[str, Any]], pset_cols: set[str], journal: Any) -> Any:
        """Appends ``rows`` to ``df``, saves, records, and drops the journal; returns the new database.

        A large run is recorded in the store by a forked child while this process builds
        and writes the database; the child drops the journal once both are done.
        """
        before = len(df)
        recorder = None
        if self.save and self.persist and rows:
            recorder = _Recorder.start(self, rows, pset_cols, before, journal)
        df = self.extend(df, rows)
        if self.save:
            self.write(df)
        if recorder is not None:
            recorder.database_written()
        else:
            if self.save and self.persist and rows:
                self.record(rows, pset_cols, before, df)
            if journal is not None:
                journal.remove()
        return df


class _Recorder:
    """A forked child recording a large run in the metadata store, in parallel with the database write.

    The child inherits the rows (nothing is pickled) and the journal's lock. It drops
    the journal only after the parent says the database is written; if the parent dies
    first, the journal stays and the next run recovers from it.
    """

    MIN_ROWS = 500  # Below this, recording inline costs less than a fork (about 4 ms here).
    _running: list[int] = []

    def __init__(self, pid: int, signal_fd: int) -> None:
        self.pid = pid
        self.signal_fd = signal_fd

    @classmethod
    def start(
        cls, study: _Study, rows: list[dict[str, Any]], pset_cols: set[str], before: int, journal: Any
    ) -> Optional[_Recorder]:
        import threading

        if len(rows) < cls.MIN_ROWS or not hasattr(os, "fork") or threading.active_count() > 1 or journal is None:
            return None  # Small runs are recorded inline; forking a threaded process is unsafe.
        from xmanager.xm_local.store import add_pending_write
        from xmanager.xm_local.sweep.record import record

        cls.wait_all()
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # The child: never returns into the caller's code.
            status = 1
            try:
                os.close(write_fd)
                os.setpgid(0, 0)  # Ctrl-C in the terminal stops the parent, not the recording.
                record(study.calc_dir, rows, pset_cols, before)
                if os.read(read_fd, 1) == b"1":
                    journal.remove()
                status = 0
            except BaseException as error:  # noqa: BLE001 - report and leave the journal for recovery.
                print(f"xmanager sweep: recording in the metadata store failed: {error}", file=sys.stderr)
            finally:
                os._exit(status)
        os.close(read_fd)
        journal.close()  # The child holds the lock now.
        cls._running.append(pid)
        add_pending_write(cls.wait_all)
        return cls(pid, write_fd)

    def database_written(self) -> None:
        os.write(self.signal_fd, b"1")
        os.close(self.signal_fd)

    @classmethod
    def wait_all(cls) -> None:
        """Waits for every recorder this process started (runs also at exit)."""
        while cls._running:
            pid = cls._running.pop(0)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def wait_recorded() -> None:
    """Returns once every run of this process is in the metadata store."""
    _Recorder.wait_all()


atexit.register(_Recorder.wait_all)


def run(
    func: Callable[[dict[str, Any]], Any],
    params: Sequence[Mapping[str, Any]],
    df: Any = None,
    poolsize: Optional[int] = None,
    dask_client: Any = None,
    save: bool = True,
    tmpsave: bool = False,
    verbose: Any = False,
    calc_dir: str = CALC_DIR,
    simulate: bool = False,
    database_basename: str = DATABASE_BASENAME,
    backup: bool = False,
    git: bool = False,
    skip_dups: bool = False,
    capture_logs: Optional[str] = None,
    fill_value: Any = _DEFAULT,
    on_error: str = "raise",
) -> Any:
    """Runs ``func`` on every pset of ``params`` and returns the database (a DataFrame).

    Keywords as psweep 0.16's ``run``; see the module docstring for what differs.
    """
    import pandas as pd

    _validate(poolsize, dask_client, capture_logs, on_error, verbose)
    _Recorder.wait_all()  # Units of the previous run get their ids first.
    fill = pd.NA if fill_value is _DEFAULT else fill_value
    todo, order = _prepare_params(params, fill)
    pset_cols = {key for key in order if not psets.is_bookkeeping_key(key)}
    gitops.git_enter(git)
    if simulate:
        calc_dir = _simulate_dir(calc_dir, database_basename)
    study = _Study(calc_dir, database_basename, save, persist=save and not simulate, fill_value=fill)
    from_file = df is None and os.path.exists(study.path)
    df = study.read(df)
    if study.persist:
        df = study.recover(df, pset_cols)
    if backup:
        _backup(calc_dir, df)
    rehashed = bool(len(df)) and not db.has_current_hashes(df)
    if rehashed:
        df = db.df_update_pset_hash(df.copy(deep=False))
        study.rehashed()
    hashes = psets.pset_hashes(todo)
    if skip_dups and len(df):
        done_rows = df
        if "_failed" in df.columns:
            done_rows = df[df["_failed"].map(lambda value: value is not True)]
        done = set(done_rows["_pset_hash"].tolist())
        pending = [index for index, digest in enumerate(hashes) if digest not in done]
        todo = [todo[index] for index in pending]
        hashes = [hashes[index] for index in pending]
    if not todo:
        df = study.extend(df, [])  # psweep washes (and saves) the database even when nothing runs.
        if save and (rehashed or study.old_changed or not from_file):  # Else the file holds it already.
            study.write(df)
        gitops.git_exit(git, df)
        return df

    run_id = files.get_uuid()
    # Random 122-bit ids: checked against each other, not against the whole database (that
    # check would make every extension cost time in the study's size, for a 2**-61 risk).
    pset_ids = files.get_many_uuids(len(todo))
    run_seq, pset_seq = _next_seqs(df)
    for offset, (pset, digest, pset_id) in enumerate(zip(todo, hashes, pset_ids)):
        pset["_pset_hash"] = digest
        pset["_pset_id"] = pset_id
        pset["_run_seq"] = run_seq
        pset["_pset_seq"] = pset_seq + offset
        pset["_run_id"] = run_id
        pset["_calc_dir"] = calc_dir

    call = FuncCall(None if simulate else func, capture_logs, on_error, verbose=verbose)
    journal = journal_mod.Journal(calc_dir, run_id) if study.persist else None
    rows: list[dict[str, Any]] = []
    tmp_dir = os.path.join(calc_dir, "tmpsave", run_id)

    collect = rows.append
    keep = journal.append if journal is not None else None

    def on_row(row: dict[str, Any]) -> None:
        collect(row)
        if keep is not None:
            keep(row)
        if not len(rows) & _YOUNG_GC_EVERY:
            gc.collect(1)
        if tmpsave:
            files.pickle_write(os.path.join(tmp_dir, f"{row['_pset_id']}.pk"), row)

    gc_enabled = gc.isenabled()
    gc.disable()  # Full collections would rescan every row so far; young ones run in on_row.
    try:
        try:
            _execute(call, todo, poolsize, dask_client, on_row)
        except BaseException as error:
            if rows and study.save:
                study.finish(df, rows, pset_cols, journal)
                _Recorder.wait_all()
                if hasattr(error, "add_note"):
                    error.add_note(
                        f"xmanager sweep: the {len(rows)} pset(s) completed before this error are saved in "
                        f"{study.path}; run again with skip_dups=True to run only the rest"
                    )
            elif journal is not None:
                journal.remove()
            raise
        df = study.finish(df, rows, pset_cols, journal)
        sink = ROW_SINK.get()
        if sink is not None:
            sink.extend(rows)
    finally:
        if gc_enabled:
            gc.enable()
    if git:
        _Recorder.wait_all()  # Its journal must be gone before the commit.
    gitops.git_exit(git, df)
    return df


def run_local(*args: Any, **kwargs: Any) -> Any:
    """``run`` under the name psweep's README uses."""
    return run(*args, **kwargs)
