"""Database connections behind one small interface, for SQLite and any SQLAlchemy URL.

Every statement is portable SQL with ``:name`` parameters. ``sqlite:`` URLs use the
standard library's ``sqlite3`` directly: importing SQLAlchemy costs about 0.25 s, more
than a whole local launch should. Every other URL (``postgresql://...``, or
``sqlite+pysqlite://`` to force it) goes through a SQLAlchemy 2 engine.
"""

from __future__ import annotations

import abc
import atexit
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

Params = Mapping[str, Any]


class StoreError(RuntimeError):
    """The metadata store cannot be opened or used; the message says which URL and why."""


class Connection(abc.ABC):
    """A connection that runs portable SQL; writes happen inside :meth:`transaction`."""

    url: str

    @abc.abstractmethod
    def execute(self, sql: str, params: Params | None = None) -> None: ...

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...

    def update(self, sql: str, params: Params | None = None) -> int:
        """Runs one write and returns how many rows it changed (a conditional update's way to tell who won)."""
        raise NotImplementedError(f"{type(self).__name__} cannot count changed rows")

    @abc.abstractmethod
    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    def stream(self, sql: str, params: Params | None, size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of a query in lists of at most ``size``, so a large result is never held whole."""

    @abc.abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def has_table(self, name: str) -> bool: ...

    @abc.abstractmethod
    def columns(self, table: str) -> list[str]:
        """The column names of ``table`` (read from an empty ``SELECT *``, portable across databases)."""

    @property
    @abc.abstractmethod
    def is_integrity_error(self) -> type[BaseException] | tuple[type[BaseException], ...]: ...


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///path`` URL (None for other URLs); ``:memory:`` stays as is."""
    if not url.startswith("sqlite:"):
        return None
    rest = url[len("sqlite:") :]
    if not rest.startswith("//"):
        raise StoreError(f"database URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    path = rest[3:] if rest.startswith("///") else rest[2:]
    return path.split("?", 1)[0] or ":memory:"


#: SQLite files this process has open -> how many connections; the last one to close checkpoints.
_OPEN_FILES: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()
#: How long a closing checkpoint waits for another process's reader or writer (then it does what it can).
_CHECKPOINT_WAIT_MS = 100


def _checkpoint(db: sqlite3.Connection) -> None:
    """Moves the WAL's pages into the database file and empties the WAL, so the ``.sqlite3`` file alone holds
    every row (a copy of it is a complete store). Never blocks long, never raises: another process may be reading
    or writing (then the checkpoint does what it can), or the file may be read-only."""
    try:
        db.execute(f"PRAGMA busy_timeout={_CHECKPOINT_WAIT_MS}")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error:
        pass


@atexit.register
def _checkpoint_at_exit() -> None:
    """Connections still open when the process exits (stores are rarely closed) checkpoint through a fresh one."""
    with _OPEN_LOCK:
        paths = list(_OPEN_FILES)
    for path in paths:
        try:
            db = sqlite3.connect(path, timeout=_CHECKPOINT_WAIT_MS / 1000, isolation_level=None)
        except sqlite3.Error:
            continue
        try:
            _checkpoint(db)
        finally:
            db.close()


class SqliteConnection(Connection):
    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self._file: str | None = None
        if path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot open database {url!r}: cannot create {folder!r}: {error.strerror}") from None
        try:
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as error:
            raise StoreError(f"cannot open database {url!r}: {error}") from None
        if path != ":memory:":
            self._file = os.path.realpath(path)
            with _OPEN_LOCK:
                _OPEN_FILES[self._file] = _OPEN_FILES.get(self._file, 0) + 1

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._db.execute(sql, params or {})

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._db.executemany(sql, rows)

    def update(self, sql: str, params: Params | None = None) -> int:
        return int(self._db.execute(sql, params or {}).rowcount)

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params or {}).fetchall()

    def stream(self, sql: str, params: Params | None, size: int) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self._db.execute(sql, params or {})
        try:
            while rows := cursor.fetchmany(size):
                yield rows
        finally:
            cursor.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Closes the connection; the process's last one to the file checkpoints it first (see :func:`_checkpoint`)."""
        last = False
        if self._file is not None:
            with _OPEN_LOCK:
                left = _OPEN_FILES.get(self._file, 0) - 1
                if left > 0:
                    _OPEN_FILES[self._file] = left
                else:
                    _OPEN_FILES.pop(self._file, None)
                    last = True
            self._file = None
        if last:
            _checkpoint(self._db)
        self._db.close()

    def has_table(self, name: str) -> bool:
        rows = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchall()
        return bool(rows)

    def columns(self, table: str) -> list[str]:
        return [column[0] for column in self._db.execute(f"SELECT * FROM {table} WHERE 1 = 0").description]

    @property
    def is_integrity_error(self) -> type[BaseException]:
        return sqlite3.IntegrityError


class SqlAlchemyConnection(Connection):
    def __init__(self, url: str) -> None:
        self.url = url
        try:
            import sqlalchemy
        except ImportError:
            raise StoreError(f"database URL {url!r} needs SQLAlchemy: pip install 'xmanager-launcher[sql]'") from None
        self._sa = sqlalchemy
        try:
            self._engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
            self._conn = self._engine.connect()
        except Exception as error:  # Driver errors differ per database; all mean "cannot open".
            raise StoreError(f"cannot open database {_redact(url)!r}: {_first_line(error)}") from None
        self._statements: dict[str, Any] = {}

    def _text(self, sql: str) -> Any:
        statement = self._statements.get(sql)
        if statement is None:
            statement = self._statements[sql] = self._sa.text(sql)
        return statement

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._conn.execute(self._text(sql), dict(params or {}))

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self._conn.execute(self._text(sql), [dict(r) for r in rows])

    def update(self, sql: str, params: Params | None = None) -> int:
        return int(self._conn.execute(self._text(sql), dict(params or {})).rowcount)

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        rows = self._conn.execute(self._text(sql), dict(params or {})).fetchall()
        if self._conn.in_transaction() and not self._in_explicit:
            self._conn.commit()  # End the implicit read transaction so later reads see new data.
        return [tuple(row) for row in rows]

    def stream(self, sql: str, params: Params | None, size: int) -> Iterator[list[tuple[Any, ...]]]:
        result = self._conn.execute(self._text(sql), dict(params or {}))
        try:
            for rows in result.partitions(size):
                yield [tuple(row) for row in rows]
        finally:
            result.close()
            if self._conn.in_transaction() and not self._in_explicit:
                self._conn.commit()

    _in_explicit = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._conn.in_transaction():
            self._conn.commit()
        self._in_explicit = True
        try:
            with self._conn.begin():
                yield
        finally:
            self._in_explicit = False

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()

    def has_table(self, name: str) -> bool:
        found = bool(self._sa.inspect(self._conn).has_table(name))
        if self._conn.in_transaction() and not self._in_explicit:
            self._conn.commit()
        return found

    def columns(self, table: str) -> list[str]:
        names = list(self._conn.execute(self._text(f"SELECT * FROM {table} WHERE 1 = 0")).keys())
        if self._conn.in_transaction() and not self._in_explicit:
            self._conn.commit()
        return names

    @property
    def is_integrity_error(self) -> type[BaseException]:
        return self._sa.exc.IntegrityError


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def connect(url: str) -> Connection:
    """Opens ``url``; raises :class:`StoreError` with the reason when it cannot."""
    path = sqlite_path(url)
    if path is not None:
        return SqliteConnection(url, path)
    if "://" not in url:
        raise StoreError(f"database URL {url!r} is not a URL (expected e.g. sqlite:////path/to/db.sqlite3)")
    return SqlAlchemyConnection(_with_postgres_driver(url))


def _with_postgres_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 (what ``xmanager-launcher[postgres]`` installs) unless psycopg2 is present."""
    import importlib.util

    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and importlib.util.find_spec("psycopg2") is None:
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url
