"""A long-lived worker process that calls pickled Python functions, one task at a time.

Protocol over the worker's stdin/stdout (moved to private descriptors at start, so the
function's own prints go to its log files): each message is a 4-byte big-endian length
and a pickle. The first message is the parent's ``sys.path``. Each task is a dict;
each reply is ``("ok", results_json)`` or ``("error", message)``. Before replying, the worker
writes the outcome to the task's ``exit_path`` (atomically: a temporary file renamed), so a
task that ends after its launcher died still leaves its exit and results; with no one to
reply to, the worker then exits.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import traceback
from collections.abc import Mapping
from typing import IO, Any

from xmanager.executors.function_call import call as _call

_HEADER = struct.Struct(">I")


def send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("channel closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("channel closed mid-message")
    return pickle.loads(data)


def run_task(task: Mapping[str, Any]) -> tuple[str, str]:
    """Runs one task with fds 1/2 sent to its log files and its env applied, then restores."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = os.open(task["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(task["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    old_env = dict(os.environ)
    os.environ.update(task["env"])
    try:
        return _call(task)
    except BaseException as error:  # The job's failure, whatever it is, goes to its log.
        traceback.print_exc()
        if isinstance(error, KeyboardInterrupt):
            raise
        return "error", f"{type(error).__name__}: {error}"
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.environ.clear()
        os.environ.update(old_env)


def main() -> None:
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    sys.path[:] = receive(channel_in)
    while True:
        try:
            task = receive(channel_in)
        except EOFError:
            return
        outcome = run_task(task)
        _write_exit_record(task.get("exit_path"), outcome)
        try:
            send(channel_out, outcome)
        except OSError:  # The launcher is gone; its successor reads the exit record.
            return


def _write_exit_record(path: Any, outcome: tuple[str, str]) -> None:
    if not path:
        return
    kind, payload = outcome
    record = {"outcome": kind, "results": json.loads(payload)} if kind == "ok" else {"outcome": kind, "message": payload}
    try:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(tmp, path)
    except OSError:
        pass


if __name__ == "__main__":
    main()
