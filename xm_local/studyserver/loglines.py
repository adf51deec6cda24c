"""Log lines on stderr in loguru's default format, as experiment-server's command line writes them.

``2026-01-02 03:04:05.678 | INFO     | module:function:line - message``, coloured as loguru colours them when
stderr is a terminal; a logged exception is followed by its traceback. :func:`to_stderr` sends the records of
the study loggers there while a command runs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import TextIO

__all__ = ["LoguruFormatter", "StderrHandler", "to_stderr"]

STUDY_LOGGERS = ("xmanager.xm.study", "xmanager.xm_local.studyserver", "xmanager.xm_local.study_cli")
_LEVEL_COLORS = {
    "DEBUG": "\x1b[34m\x1b[1m",
    "INFO": "\x1b[1m",
    "WARNING": "\x1b[33m\x1b[1m",
    "ERROR": "\x1b[31m\x1b[1m",
    "CRITICAL": "\x1b[41m\x1b[1m",
}
_RESET = "\x1b[0m"


class LoguruFormatter(logging.Formatter):
    """loguru's default line: time, level (padded to 8), ``name:function:line``, message."""

    def __init__(self, color: bool = False) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        level = record.levelname
        message = record.getMessage()
        if self.color:
            paint = _LEVEL_COLORS.get(level, "")
            line = (
                f"\x1b[32m{stamp}{_RESET} | {paint}{level:<8}{_RESET} | \x1b[36m{record.name}{_RESET}:"
                f"\x1b[36m{record.funcName}{_RESET}:\x1b[36m{record.lineno}{_RESET} - {paint}{message}{_RESET}"
            )
        else:
            line = f"{stamp} | {level:<8} | {record.name}:{record.funcName}:{record.lineno} - {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes (so captured stderr sees it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(LoguruFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        formatter = self.formatter
        if isinstance(formatter, LoguruFormatter):
            isatty = getattr(sys.stderr, "isatty", None)
            formatter.color = bool(isatty and isatty())
        super().emit(record)


@contextlib.contextmanager
def to_stderr(level: int = logging.DEBUG) -> Iterator[None]:
    """While inside, the study loggers write loguru-style lines to stderr (and not to their parents)."""
    handler = StderrHandler()
    saved = []
    for name in STUDY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, old_level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = propagate
