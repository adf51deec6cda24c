"""Live feedback while units run: counts per status, elapsed time and an ETA, per experiment.

The control plane reports each unit's status changes to one small observer
(:class:`UnitObserver`, set on the experiment's :class:`~xmanager.xm_local.tracking.UnitTracker`);
:class:`ExperimentProgress` counts them (a few dict operations, under the tracker's lock, no I/O).
What is shown, and where:

* on a terminal (stdout is a TTY), one live line per experiment under way, redrawn four times a
  second with ``rich`` (imported only then), replaced by a summary line when the experiment ends;
  lines printed meanwhile (job output, log records) appear above it;
* otherwise (CI, pipes), a plain line per experiment at most every :data:`PLAIN_INTERVAL_S`
  seconds when its counts changed, and the summary line at the end.

Every line goes through :mod:`logging` (logger ``xmanager.xm_local.progress``), at INFO; the
handler of :func:`configure_logging` writes INFO and DEBUG records to stdout, with the job output
they describe, and warnings and errors to stderr (which keeps an error one line there).
``xmanager launch`` turns progress on (``-q`` off) and sets up the handler (:func:`configure_logging`).
A plain Python launch script shows nothing unless asked: ``XM_PROGRESS=1`` in the environment or
:func:`enable` (which also sets up the handler when the ``xmanager`` logger has none);
``XM_PROGRESS=0`` turns it off under ``xmanager launch`` too.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Optional, Protocol

from xmanager.xm.status import Status

_log = logging.getLogger(__name__)

#: ``1`` shows progress in plain Python launch scripts; ``0`` hides it everywhere.
ENV = "XM_PROGRESS"
#: Seconds between two plain progress lines of an experiment (no terminal).
PLAIN_INTERVAL_S = 5.0
_REFRESH_PER_S = 4
_LABELS = ((Status.PENDING, "queued"), (Status.RUNNING, "running"), (Status.COMPLETED, "completed"),
           (Status.FAILED, "failed"), (Status.CANCELLED, "cancelled"))
_LABELED = frozenset(status for status, _ in _LABELS)


class UnitObserver(Protocol):
    """Told each status a unit takes (its first one, pending, when it is created); called under the
    tracker's lock, so it must be quick and must not block."""

    def unit_status(self, work_unit_id: int, status: Status) -> None: ...


def duration(seconds: float) -> str:
    """``8s``, ``2m05s``, ``1h02m``."""
    seconds = max(0, int(seconds + 0.5))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ExperimentProgress:
    """One experiment's units counted per status, from the changes the tracker reports (a :class:`UnitObserver`)."""

    def __init__(self, experiment_id: int, title: str) -> None:
        self.experiment_id = experiment_id
        self.title = title
        self.started = time.monotonic()
        self.counts: dict[Status, int] = {status: 0 for status in Status}  # Fixed keys: safe to read from any thread.
        self._statuses: dict[int, Status] = {}
        #: Bumped on every change (the plain display prints a line only when it moved).
        self.version = 0
        self.shown_version = -1

    def unit_status(self, work_unit_id: int, status: Status) -> None:
        statuses = self._statuses
        old = statuses.get(work_unit_id)
        if old is status:
            return
        if not statuses:  # The first unit: from now on the experiment is worth following.
            _log.info("%s: follow it with `xmanager show %d`", self._name(), self.experiment_id)
        statuses[work_unit_id] = status
        counts = self.counts
        if old is not None:
            counts[old] -= 1
        counts[status] += 1
        self.version += 1

    def _name(self) -> str:
        return f"experiment {self.experiment_id}" + (f" {self.title!r}" if self.title else "")

    def line(self) -> str:
        """``experiment 12 'sweep': 2 queued, 1 running, 5 completed, 0 failed, 0 cancelled | 12s, ETA 20s``."""
        counts = dict(self.counts)
        elapsed = time.monotonic() - self.started
        ended = sum(count for status, count in counts.items() if status.is_terminal)
        remaining = sum(counts.values()) - ended
        when = duration(elapsed)
        if remaining and ended:
            when += f", ETA {duration(elapsed / ended * remaining)}"
        elif remaining:
            when += ", ETA ?"
        shown = ", ".join(f"{counts[status]} {label}" for status, label in _LABELS)
        shown += "".join(f", {count} {status.value}" for status, count in counts.items()
                         if count and status not in _LABELED)  # Statuses newer than this line's five.
        return f"{self._name()}: {shown} | {when}"

    def summary(self) -> str:
        """``experiment 12 'sweep' ended after 1m05s: 9 completed, 1 failed`` (units still under way said so)."""
        counts = dict(self.counts)
        labels = [*_LABELS, *((status, status.value) for status in counts if status not in _LABELED)]
        shown = ", ".join(f"{counts[status]} {label}" for status, label in labels if counts[status]) or "no units"
        under_way = sum(count for status, count in counts.items() if not status.is_terminal)
        verb = "left" if under_way else "ended"
        line = f"{self._name()} {verb} after {duration(time.monotonic() - self.started)}: {shown}"
        if under_way:
            line += f" (follow them with `xmanager show {self.experiment_id}`)"
        return line


# ---- displays ---------------------------------------------------------------------------------------
class _PlainDisplay:
    """No terminal: a thread logs a line per experiment whose counts changed, every few seconds."""

    def __init__(self) -> None:
        self.items: list[ExperimentProgress] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xm-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(PLAIN_INTERVAL_S):
            for item in list(self.items):
                if item.version and item.version != item.shown_version:
                    item.shown_version = item.version
                    _log.info(item.line())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)


class _LiveDisplay:
    """A terminal: one ``rich`` live line per experiment, redrawn in rich's own thread."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.items: list[ExperimentProgress] = []
        console = Console(file=sys.stdout, highlight=False)
        # What is printed meanwhile goes above the line (stderr too, when it is that terminal as well).
        self._live = Live(self, console=console, refresh_per_second=_REFRESH_PER_S, transient=True,
                          redirect_stdout=True, redirect_stderr=_is_tty(sys.stderr))
        self._live.start()

    def __rich__(self) -> Any:
        from rich.text import Text

        lines = [item.line() for item in list(self.items) if item.version]
        return Text("\n".join(lines), no_wrap=True, overflow="ellipsis")

    def close(self) -> None:
        self._live.stop()


_lock = threading.Lock()
_display: Optional[_PlainDisplay | _LiveDisplay] = None
_enabled: Optional[bool] = None
#: False (``xmanager -q launch``): jobs' output goes to their log files only, not to this process's stdout.
show_job_output = True


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _live_possible() -> bool:
    """stdout is a terminal that can redraw a line, and rich is installed (the cli extra)."""
    if not _is_tty(sys.stdout) or os.environ.get("TERM") == "dumb":
        return False
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def enable(on: bool = True) -> None:
    """Shows (or hides) the progress of the experiments this process launches from now on; overrides
    ``XM_PROGRESS``. Showing it also sets up :func:`configure_logging` if nothing handles ``xmanager``'s
    log records yet."""
    global _enabled
    _enabled = on
    logger = logging.getLogger("xmanager")
    if on and not logger.handlers:
        configure_logging(logging.INFO)


def enabled() -> bool:
    """Whether progress is shown: :func:`enable`'s choice, else ``XM_PROGRESS=1``."""
    setting = os.environ.get(ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if _enabled is not None:
        return _enabled
    return setting in ("1", "true", "yes", "on")


def start(experiment_id: int, title: str) -> Optional[ExperimentProgress]:
    """The observer of a launch's units, shown until :func:`finish`; None when progress is off."""
    global _display
    if not enabled():
        return None
    if _enabled is None and not logging.getLogger("xmanager").handlers:
        configure_logging(logging.INFO)  # XM_PROGRESS=1 in a plain launch script: its lines need a handler.
    progress = ExperimentProgress(experiment_id, title)
    with _lock:
        if _display is None:
            _display = _LiveDisplay() if _live_possible() else _PlainDisplay()
        _display.items.append(progress)
    return progress


def finish(progress: ExperimentProgress) -> None:
    """The experiment's launch is over: its line goes, its summary is logged."""
    global _display
    with _lock:
        display = _display
        if display is None or progress not in display.items:
            return
        display.items.remove(progress)
        if not display.items:
            _display = None
            display.close()
    if progress.version:  # It had units.
        _log.info(progress.summary())


# ---- logging ----------------------------------------------------------------------------------------
class _ConsoleHandler(logging.Handler):
    """Writes INFO and DEBUG records to the ``sys.stdout`` of the moment, warnings and errors to ``sys.stderr``
    (the live display swaps them to print above its line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must not raise into the launch
            self.handleError(record)


def configure_logging(level: int) -> None:
    """``xmanager: message`` lines for the ``xmanager`` loggers at ``level`` and above (what the CLI sets up:
    INFO, WARNING with ``-q``, DEBUG with ``-v``): information on stdout, warnings and errors on stderr.
    Their records do not reach the root logger's handlers too."""
    logger = logging.getLogger("xmanager")
    for old in [handler for handler in logger.handlers if isinstance(handler, _ConsoleHandler)]:
        logger.removeHandler(old)
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("xmanager: %(name)s: %(message)s" if level <= logging.DEBUG
                                           else "xmanager: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


__all__ = [
    "ENV", "PLAIN_INTERVAL_S", "ExperimentProgress", "UnitObserver", "configure_logging", "duration", "enable",
    "enabled", "finish", "start",
]
