"""``database.pk`` as a pickle of chunks, so that extending a study appends to the file.

The file is one valid pickle: ``pickle.load`` (psweep's ``df_read``, or plain pandas)
returns one DataFrame, needing nothing but pandas. Its program is

    operator.methodcaller("astype", object)(
        functools.partial(pandas.concat, ignore_index=True)([pickle.loads(chunk), ...]))

where each chunk is the pickled DataFrame of the rows one run added (with every column
the database had then). A chunk keeps ``_time_utc`` as ``datetime64`` (pickled as one
buffer, not one Timestamp object per row); the final ``astype(object)`` gives the
database's all-object columns. ``pandas.concat`` drops ``None`` entries, which the
append uses:

1. write ``[new chunk][suffix]`` after the current end (readers still stop at the old
   STOP, so they see the old database);
2. overwrite the old 6-byte suffix (``LIST TUPLE1 REDUCE TUPLE1 REDUCE STOP``) with six
   ``NONE`` opcodes in one write: from then on readers see the new database.

A process killed between the two leaves bytes after the STOP that nobody reads; the
next append cuts them off. Appending costs time in the new rows only. When a run adds a
column, or after :data:`MAX_CHUNKS` chunks, the database is written whole (to a
temporary file renamed over the old one) as one chunk, so loading stays fast.
Appends hold an exclusive ``flock`` on the file.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pickle
import struct
from typing import Any, Optional

import attrs

MAX_CHUNKS = 64
_LOADS = b"cpickle\nloads\n"
_BINBYTES8 = b"\x8e"
_CHUNK_HEAD = _LOADS + _BINBYTES8
_TUPLE1_REDUCE = b"\x85R"
_MARK = b"("
_SUFFIX = b"l\x85R\x85R."  # LIST (from MARK), call concat, call astype, STOP
_SPENT_SUFFIX = b"N" * len(_SUFFIX)  # Nones in the list, which pandas.concat drops.


def _program(value: Any) -> bytes:
    """``value``'s pickle without its STOP, to chain with others (protocol 2: no frames).

    Each chained program only reads memo entries it wrote itself, so they cannot clash.
    """
    text = pickle.dumps(value, protocol=2)
    assert text.endswith(b".")
    return text[:-1]


@functools.cache
def _prefix() -> bytes:
    import operator

    import pandas as pd

    return _program(operator.methodcaller("astype", object)) + _program(
        functools.partial(pd.concat, ignore_index=True)
    ) + _MARK


def encode_chunk(frame: Any) -> bytes:
    """The pickled rows of one chunk (``_time_utc`` as ``datetime64`` when it has no gaps)."""
    import pandas as pd

    if "_time_utc" in frame.columns and len(frame):
        times = frame["_time_utc"]
        if not times.isna().any():
            try:
                frame = frame.assign(_time_utc=pd.to_datetime(times.to_numpy()))
            except (TypeError, ValueError):
                pass  # Not all Timestamps: keep the objects.
    return pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)


def _chunk_ops(chunk: bytes) -> bytes:
    return b"".join((_CHUNK_HEAD, struct.pack("<Q", len(chunk)), chunk, _TUPLE1_REDUCE))


@attrs.frozen
class Layout:
    """The chunks of a file this module wrote, and where its committed program ends."""

    chunks: int  # How many chunks the committed program loads.
    end: int  # Offset just after the committed STOP.


def write(path: str, chunks: list[bytes]) -> Layout:
    """Writes the whole database file from its chunks (atomically)."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    data = b"".join([_prefix(), *map(_chunk_ops, chunks), _SUFFIX])
    temporary = f"{path}.tmp.{os.getpid()}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return Layout(len(chunks), len(data))


def append(path: str, layout: Layout, chunk: bytes) -> Layout:
    """Adds one chunk to a file whose committed program ends at ``layout.end``."""
    ops = _chunk_ops(chunk) + _SUFFIX
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size != layout.end:
            os.ftruncate(fd, layout.end)  # Bytes of an append that was killed before committing.
        _write_all(fd, ops, layout.end)
        _write_all(fd, _SPENT_SUFFIX, layout.end - len(_SUFFIX))  # The commit.
    finally:
        os.close(fd)
    return Layout(layout.chunks + 1, layout.end + len(ops))


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def layout_of(data: bytes) -> Optional[Layout]:
    """The layout of a file this module wrote, or ``None`` for any other pickle."""
    prefix = _prefix()
    if not data.startswith(prefix):
        return None
    chunks = 0
    position = len(prefix)
    while True:
        if data.startswith(_SUFFIX, position):
            return Layout(chunks, position + len(_SUFFIX))
        if data.startswith(_SPENT_SUFFIX, position):
            position += len(_SPENT_SUFFIX)
            continue
        if not data.startswith(_CHUNK_HEAD, position) or len(data) < position + len(_CHUNK_HEAD) + 8:
            return None
        position += len(_CHUNK_HEAD)
        (size,) = struct.unpack_from("<Q", data, position)
        position += 8
        chunks += 1
        position += size
        if not data.startswith(_TUPLE1_REDUCE, position):
            return None
        position += len(_TUPLE1_REDUCE)
