"""Helpers of study designs, under the names experiment-server's ``utils`` module gives them.

* the errors (:class:`ExperimentServerException`, :class:`ExperimentServerConfigurationException`);
* :func:`balanced_latin_square` and :func:`merge_dicts` (how ``extends`` merges configs);
* :class:`FileModifiedWatcher`, which calls back when a file changes (a polling thread: no dependency);
* :func:`new_config_file`, which writes the sample study file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xmanager.xm.study.errors import ExperimentServerConfigurationException, ExperimentServerException
from xmanager.xm.study.ordering import balanced_latin_square

__all__ = [
    "ExperimentServerConfigurationException",
    "ExperimentServerException",
    "FileModifiedWatcher",
    "balanced_latin_square",
    "merge_dicts",
    "new_config_file",
]

log = logging.getLogger(__name__)
DEFAULT_FILE_NAME = "new_config.toml"


def merge_dicts(dict_a: Any, dict_b: Any) -> dict[str, Any]:
    """``dict_a`` over ``dict_b``, recursively: ``dict_a``'s values win unless they are None; keys of a first.

    Either argument may be a non-dict, which counts as empty. Nested dicts are merged the same way; a dict
    and a non-dict under the same key keep ``dict_a``'s value.
    """
    keys = list(dict_a) if isinstance(dict_a, dict) else []
    if isinstance(dict_b, dict):
        keys += [key for key in dict_b if key not in keys]
    merged: dict[str, Any] = {}
    for key in keys:
        a = dict_a.get(key) if isinstance(dict_a, dict) else None
        b = dict_b.get(key) if isinstance(dict_b, dict) else None
        if isinstance(a, dict) and isinstance(b, dict):
            merged[key] = merge_dicts(a, b)
        else:
            merged[key] = a if a is not None else b
    return merged


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileModifiedWatcher:
    """Calls ``callback()`` (no arguments) each time ``config_file`` changes, until :meth:`end_watch`.

    A daemon thread compares the file's modification time, size and inode every ``interval`` seconds, so
    a rewrite, an append or an editor's replace-by-rename are all seen. Each change is logged at INFO
    (``File modified: <path>``); a failing callback is logged (``Callback after file modified failed``) and the
    watch goes on.
    """

    def __init__(self, config_file: str | os.PathLike[str], callback: Callable[[], Any], interval: float = 0.1) -> None:
        self.path = os.fspath(config_file)
        self._callback = callback
        self._interval = interval
        self._stop = threading.Event()
        self._last = _signature(self.path)
        self._thread = threading.Thread(target=self._watch, name=f"watch {os.path.basename(self.path)}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            current = _signature(self.path)
            if current != self._last:
                self._last = current
                if current is not None:
                    self.on_modified(self.path)

    def on_modified(self, path: str) -> None:
        log.info("File modified: %s", path)
        try:
            self._callback()
        except Exception:
            log.error("Callback after file modified failed")

    def end_watch(self) -> None:
        """Stop watching (waits for the thread to end)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()


def new_config_file(new_file_location: str | os.PathLike[str]) -> None:
    """Write our commented sample study file (:mod:`xmanager.xm.study.sample`), as experiment-server writes its own.

    A location not ending in ``.toml`` is a folder: if it exists, that is an error; else it is created and
    gets ``new_config.toml``. An existing file is never overwritten. Errors are logged (ERROR) and the
    function returns; the file written is logged (INFO). Missing parent folders of a ``.toml`` location are
    created (0.3.9 fails there with a FileNotFoundError).
    """
    from xmanager.xm.study.sample import SAMPLE_CONFIG

    target = Path(new_file_location)
    if target.suffix != ".toml":
        if target.exists():
            log.error("%s exists and does not end with `.toml`", target)
            return
        target.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        target = target / DEFAULT_FILE_NAME
    if target.exists():
        log.error("%s already exists!", target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w") as out:
        out.write(SAMPLE_CONFIG)
    log.info("New config at: %s", target)
