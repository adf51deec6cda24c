"""Writes to the store off the caller's thread, many rows per transaction.

``put()`` only appends to a queue. A writer thread takes everything queued, groups it
by statement (keeping order inside each group; groups run in dependency order: rows
are inserted before they are updated) and runs each group as one ``executemany`` in a
single transaction. Adding 10,000 units therefore costs a handful of commits.
``flush()`` returns once everything put before it is committed.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from xmanager.xm_local.store.driver import Connection, connect
from xmanager.xm_local.store.sql import WRITE_ORDER

_MAX_BATCH = 50_000
_RETRIES = 5
_GATHER_S = 0.002  # After a first row, the writer waits this long for more (a flush() waits at most this much more).

Call = Callable[[Connection], None]


class _Flush:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


class BatchWriter:
    """A background writer for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._error: Optional[BaseException] = None

    def put(self, sql: str, params: dict[str, Any]) -> None:
        """Queues one row for ``sql`` (one of :data:`~.sql.WRITE_ORDER`'s statements)."""
        self._queue.put((sql, params))
        if self._thread is None:
            self._start()

    def call(self, function: Call) -> None:
        """Queues a function run on the writer's connection, in order with the rows."""
        self._queue.put(function)
        if self._thread is None:
            self._start()

    def flush(self) -> None:
        """Waits until everything queued so far is committed; raises the writer's error, if any."""
        if self._thread is not None:
            marker = _Flush()
            self._queue.put(marker)
            marker.event.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="xm-store-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        conn: Optional[Connection] = None
        while True:
            batch = [self._queue.get()]
            if not isinstance(batch[0], _Flush):
                time.sleep(_GATHER_S)  # A burst of rows (a launch's status updates) then shares one commit.
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes = [item for item in batch if not isinstance(item, _Flush)]
            if writes:
                try:
                    if conn is None:
                        conn = connect(self.url)
                    self._apply(conn, writes)
                except Exception as error:  # Kept and raised at flush; the launch goes on.
                    self._error = error
                    print(
                        f"xmanager: could not write {len(writes)} updates to the metadata store "
                        f"{self.url}: {error}",
                        file=sys.stderr,
                    )
            for item in batch:
                if isinstance(item, _Flush):
                    item.event.set()

    def _apply(self, conn: Connection, writes: list[Any]) -> None:
        for attempt in range(_RETRIES):
            try:
                with conn.transaction():
                    segment: dict[str, list[dict[str, Any]]] = {}
                    for item in writes:
                        if callable(item):
                            _run_segment(conn, segment)
                            segment = {}
                            item(conn)
                        else:
                            segment.setdefault(item[0], []).append(item[1])
                    _run_segment(conn, segment)
                return
            except Exception:
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)


def _run_segment(conn: Connection, segment: dict[str, list[dict[str, Any]]]) -> None:
    for sql in WRITE_ORDER:
        rows = segment.get(sql)
        if rows:
            conn.executemany(sql, rows)
