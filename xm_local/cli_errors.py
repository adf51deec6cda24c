"""The command line's one error path: an exception becomes one line and an exit status.

Every ``xmanager`` subcommand (and the ``psweep-*`` scripts) runs through :func:`run`, and
:func:`describe` is the only place that maps exceptions to messages:

* an expected failure prints ``PROG: error: WHAT: WHY`` on one line; the exit status is
  :data:`EXIT_BAD_INPUT` (2) for usage and input errors (arguments, files, the store, a spec
  the launch script built) and :data:`EXIT_FAILED_UNITS` (1) when units failed or could not
  be launched;
* an error raised inside the user's launch script is reported at the script's last frame in
  the traceback (``launcher.py:12: ValueError: ...``), not at the library line that raised;
* anything else is a bug: its traceback is printed, exit status 1;
* ``xmanager -v ...`` prints the traceback of every error as well.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable, Collection
from typing import Optional

import attrs

EXIT_FAILED_UNITS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input found by the command itself: its message is the line printed, exit status 2."""


class FailedUnits(Exception):  # noqa: N818 - an outcome, not a fault
    """Units of a launch failed: the message (which may span lines, one per unit) is printed, exit status 1."""


class CommandFailed(Exception):  # noqa: N818 - an outcome, not a fault
    """A program the command ran failed (rsync, ssh): one line, with that program's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@attrs.define
class Context:
    """Who reports (``prog``), whether tracebacks are shown, and the launch script, filled in as the command learns them."""

    prog: str
    verbose: bool = False
    user_files: list[str] = attrs.field(factory=list)


@attrs.frozen
class Report:
    """What to print for an error (``PROG: error: message``, or ``PROG: message`` without ``label``) and the status."""

    code: int
    message: str
    label: Optional[str] = "error"


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def shown(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message, shortened when long (a 100,000-character argument stays one short line)."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 20]) + f"... ({len(text):,} characters)"


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and len(error.args) == 1:
        return one_line(error.args[0])  # str(KeyError) quotes its argument.
    return one_line(error) or type(error).__name__


#: What specs, args and packaging raise for bad input; anything else from a script may be a bug, worth a traceback.
_SPEC_ERRORS = (ValueError, TypeError, OSError, LookupError, ImportError, RuntimeError)


def _user_frame(error: BaseException, user_files: Collection[str]) -> Optional[traceback.FrameSummary]:
    """The last frame of ``error``'s traceback that is in one of ``user_files`` (the launch script)."""
    if not user_files:
        return None
    wanted = {os.path.realpath(path) for path in user_files}
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.realpath(frame.filename) in wanted:
            found = frame
    return found


def _store_url() -> str:
    from xmanager.xm_local import config
    from xmanager.xm_local.store.driver import _redact

    return _redact(config.database_url())


def _store_hint() -> str:
    """Why a SQLite store's folder cannot be written, if the file system says so (SQLite's own words do not)."""
    from xmanager.xm_local import config
    from xmanager.xm_local.store.driver import sqlite_path

    try:
        path = sqlite_path(config.database_url())
        if path is None or path == ":memory:":
            return ""
        folder = os.path.dirname(os.path.abspath(path))
        stat = os.statvfs(folder)
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    if stat.f_flag & os.ST_RDONLY:
        return f" ({folder} is on a read-only file system)"
    if stat.f_bavail == 0:
        return f" (no space left in {folder})"
    return ""


def describe(error: BaseException, user_files: Collection[str] = ()) -> Optional[Report]:
    """The one line for an expected failure; None for an unexpected one (a bug: shown with its traceback)."""
    from xmanager.executors.api import LaunchError
    from xmanager.xm.core import ExperimentFailedError, NotFoundError
    from xmanager.xm_local.store.driver import StoreError

    if isinstance(error, UsageError):
        return Report(EXIT_BAD_INPUT, str(error))
    if isinstance(error, CommandFailed):
        return Report(error.code, str(error))
    if isinstance(error, FailedUnits | ExperimentFailedError):
        return Report(EXIT_FAILED_UNITS, str(error), label=None)
    if isinstance(error, LaunchError):  # Refused by an executor, or a service it needs is missing.
        return Report(EXIT_FAILED_UNITS, _message(error))
    if isinstance(error, NotFoundError):
        return Report(EXIT_BAD_INPUT, _message(error))
    if isinstance(error, StoreError):
        return Report(EXIT_BAD_INPUT, _message(error) + _store_hint())
    if isinstance(error, sqlite3.Error):  # The SQLite store: read-only, full disk, corrupt, locked.
        return Report(EXIT_BAD_INPUT, f"store {_store_url()}: {_message(error)}{_store_hint()}")
    if isinstance(error, SyntaxError) and error.filename:  # A launch script that is not Python.
        return Report(EXIT_BAD_INPUT, f"{error.filename}:{error.lineno}: {type(error).__name__}: {one_line(error.msg)}")
    frame = _user_frame(error, user_files)
    if frame is not None:  # A spec error (or the script's own bug), where the script made it.
        hint = "" if isinstance(error, _SPEC_ERRORS) else " (xmanager -v launch ... shows the traceback)"
        return Report(
            EXIT_BAD_INPUT, f"{frame.filename}:{frame.lineno}: {type(error).__name__}: {_message(error)}{hint}"
        )
    if _is_flag_error(error) or _is_sweep_database_error(error):
        return Report(EXIT_BAD_INPUT, _message(error))
    if isinstance(error, json.JSONDecodeError):  # Outside a launch script, JSON is read from the store only.
        return Report(EXIT_BAD_INPUT, f"store {_store_url()}: a stored value is not valid JSON ({_message(error)})")
    if isinstance(error, OSError):  # Files named on the command line, a full disk, a read-only folder.
        where = error.filename if error.filename is not None else None
        why = error.strerror or _message(error)
        return Report(EXIT_BAD_INPUT, f"{where}: {why}" if where is not None else why)
    if isinstance(error, UnicodeDecodeError):
        return Report(EXIT_BAD_INPUT, f"not UTF-8 text: {_message(error)}")
    return None


def _is_flag_error(error: BaseException) -> bool:
    flags = sys.modules.get("absl.flags")  # Only a launch parses absl flags; nothing to import otherwise.
    return flags is not None and isinstance(error, flags.Error)


def _is_sweep_database_error(error: BaseException) -> bool:
    database = sys.modules.get("xmanager.xm_local.sweep.database")  # Loaded only by the sweep commands.
    return database is not None and isinstance(error, database.DatabaseError)


def report(error: BaseException, prog: str, *, verbose: bool, user_files: Collection[str] = ()) -> int:
    """Prints ``error`` as :func:`describe` says (its traceback too when ``verbose`` or unexpected); the exit status."""
    found = describe(error, user_files)
    if verbose or found is None:
        traceback.print_exception(error, file=sys.stderr)
    if found is None:
        return EXIT_FAILED_UNITS
    prefix = f"{prog}: {found.label}: " if found.label else f"{prog}: "
    print(prefix + found.message, file=sys.stderr)
    return found.code


def run(action: Callable[[], int], context: Context) -> int:
    """Runs ``action`` (a command, which may fill in ``context``); its exit status, or the reported error's."""
    try:
        return action()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(f"{context.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `xmanager show ... | head`: stop quietly, and no second error at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except Exception as error:
        return report(error, context.prog, verbose=context.verbose, user_files=context.user_files)


__all__ = [
    "EXIT_BAD_INPUT", "EXIT_FAILED_UNITS", "EXIT_INTERRUPTED", "CommandFailed", "Context", "FailedUnits", "Report",
    "UsageError", "describe",
    "one_line", "report", "run", "shown",
]
