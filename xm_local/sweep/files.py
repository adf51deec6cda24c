"""Small file, process and id helpers with psweep's names (``system``, ``file_write``, ``get_many_uuids``, ...).

They exist so that scripts written against psweep keep working; ``run`` and ``prep_batch``
use them too. Text files are UTF-8. ``get_many_uuids`` is what gives each pset its id, so it
builds all ids from one block of random bytes instead of one ``uuid.UUID`` object per pset.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from collections.abc import Collection, Iterable
from typing import Any

# Byte maps that set the version nibble to 4 (byte 6) and the variant bits to 10xx (byte 8, RFC 4122).
_VERSION_4 = bytes((value & 0x0F) | 0x40 for value in range(256))
_VARIANT_RFC_4122 = bytes((value & 0x3F) | 0x80 for value in range(256))
# Where hex digit j of a 32-digit id goes in the dashed 36-character text (8-4-4-4-12).
_DIGIT_POSITIONS = tuple(j + (j >= 8) + (j >= 12) + (j >= 16) + (j >= 20) for j in range(32))
_DASH_POSITIONS = (8, 13, 18, 23)
_RECORD = 37  # 36 characters and a separator


def system(cmd: str, **kwds: Any) -> subprocess.CompletedProcess[Any]:
    """Run a shell command with stdout and stderr merged; return its ``CompletedProcess`` (psweep's contract).

    ``.stdout`` holds the output as bytes (as with psweep: callers ``.decode()`` it), or
    text when ``kwds`` ask for it (``text=True``, ``encoding=...``). Nothing is printed on
    success; when the command fails its output is printed before ``CalledProcessError``
    is re-raised, so the reason is visible even if the caller does not print the exception.
    """
    try:
        return subprocess.run(cmd, shell=True, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwds)
    except subprocess.CalledProcessError as error:
        output = error.output
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        print(output or "")
        raise


def makedirs(path: str) -> None:
    """Create ``path`` and its parents; an existing directory is fine."""
    os.makedirs(path, exist_ok=True)


def fullpath(path: str) -> str:
    """Absolute path with ``~`` expanded."""
    return os.path.abspath(os.path.expanduser(path))


def _make_parent(fn: str) -> None:
    parent = os.path.dirname(fn)
    if parent:
        makedirs(parent)


def file_read(fn: str) -> str:
    """The text of a UTF-8 file."""
    with open(fn, encoding="utf-8") as fd:
        return fd.read()


def file_write(fn: str, txt: str, mode: str = "w") -> None:
    """Write (or with ``mode="a"`` append) text, creating parent directories.

    Characters UTF-8 cannot encode (lone surrogates from undecodable input) are written as
    XML character references (``&#56575;``) instead of failing the whole write; every
    other character is written unchanged.
    """
    _make_parent(fn)
    with open(fn, mode, encoding="utf-8", errors="xmlcharrefreplace") as fd:
        fd.write(txt)


def pickle_read(fn: str) -> Any:
    """Unpickle an object from a file."""
    with open(fn, "rb") as fd:
        return pickle.load(fd)


def pickle_write(fn: str, obj: Any) -> None:
    """Pickle an object to a file, creating parent directories."""
    _make_parent(fn)
    with open(fn, "wb") as fd:
        pickle.dump(obj, fd)


def json_read(fn: str) -> Any:
    """Load a JSON file."""
    with open(fn, encoding="utf-8") as fd:
        return json.load(fd)


def json_write(fn: str, obj: Any, **kwds: Any) -> None:
    """Write ``obj`` as JSON (``kwds`` go to ``json.dump``, e.g. ``indent``), creating parent directories."""
    _make_parent(fn)
    with open(fn, "w", encoding="utf-8") as fd:
        json.dump(obj, fd, **kwds)


def _random_uuids(num: int) -> list[str]:
    """``num`` random version-4 UUID strings, built from one ``os.urandom`` call in a few C-level passes."""
    if num <= 0:
        return []
    raw = bytearray(os.urandom(16 * num))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT_RFC_4122)
    digits = raw.hex().encode("ascii")
    text = bytearray(b" " * (_RECORD * num))  # the last byte of each record stays a space: the separator
    for j, position in enumerate(_DIGIT_POSITIONS):
        text[position::_RECORD] = digits[j::32]
    dashes = b"-" * num
    for position in _DASH_POSITIONS:
        text[position::_RECORD] = dashes
    return text.decode("ascii").split()


def _as_set(existing: Iterable[Any]) -> Collection[Any]:
    return existing if isinstance(existing, set | frozenset) else set(existing)


def get_many_uuids(num: int, retry: int = 10, existing: Iterable[Any] = ()) -> list[str]:
    """``num`` distinct UUID4 strings, none of them in ``existing``.

    Ids that collide (with ``existing`` or with each other) are drawn again, at most
    ``retry`` more times; then ``RuntimeError`` says how many could not be made unique.
    """
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    taken = _as_set(existing)
    result: list[str] = []
    seen: set[str] = set()
    missing = num
    for _attempt in range(retry + 1):
        for candidate in _random_uuids(missing):
            if candidate not in seen and candidate not in taken:
                seen.add(candidate)
                result.append(candidate)
        missing = num - len(result)
        if missing == 0:
            return result
    raise RuntimeError(f"could not draw {missing} of {num} unique UUIDs after {retry} retries")


def get_uuid(retry: int = 10, existing: Iterable[Any] = ()) -> str:
    """One UUID4 string that is not in ``existing``."""
    return get_many_uuids(1, retry=retry, existing=existing)[0]


__all__ = [
    "file_read",
    "file_write",
    "fullpath",
    "get_many_uuids",
    "get_uuid",
    "json_read",
    "json_write",
    "makedirs",
    "pickle_read",
    "pickle_write",
    "system",
]
