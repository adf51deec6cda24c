"""The block-order table of ``verify-config-file``: tabulate's ``fancy_grid``, as experiment-server logs it.

:func:`fancy_grid` uses the ``tabulate`` package when it is installed (experiment-server does), else
:func:`_fancy_grid`, which draws the same table for single-line cells: text left-aligned, columns whose cells
all read as numbers right-aligned on their decimal point (floats written as ``format(x, "g")``), empty cells
for None.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["fancy_grid"]

_THOUSANDS = re.compile(r"^(([+-]?[0-9]{1,3})(?:,([0-9]{3}))*)?(?(1)\.[0-9]*|\.[0-9]+)?$")
_ORDER = (type(None), bool, int, float, str)


def fancy_grid(table: list[list[Any]]) -> str:
    """``tabulate(table, headers="firstrow", tablefmt="fancy_grid")``."""
    try:
        from tabulate import tabulate
    except ImportError:
        return _fancy_grid(table)
    return tabulate(table, headers="firstrow", tablefmt="fancy_grid")


def _converts(convert: Any, text: str) -> bool:
    try:
        convert(text)
    except (ValueError, TypeError):
        return False
    return True


def _kind(value: Any) -> type:
    if value is None or value == "":
        return type(None)
    if not isinstance(value, str):
        value = str(value)
    if value in ("True", "False"):
        return bool
    if _converts(int, value) or (_THOUSANDS.match(value) and "." not in value):
        return int
    if _converts(float, value):
        number = float(value)
        if not (math.isinf(number) or math.isnan(number)) or value.lower() in ("inf", "-inf", "nan"):
            return float
    if _THOUSANDS.match(value):
        return float
    return str


def _text(value: Any, kind: type) -> str:
    if value is None or value == "":
        return ""
    if kind is float:
        try:
            return format(float(str(value).replace(",", "")), "g")
        except ValueError:
            return str(value)
    return str(value)


def _after_point(text: str) -> int:
    if _kind(text) not in (int, float) or _converts(int, text):
        return -1
    position = text.rfind(".")
    position = text.lower().rfind("e") if position < 0 else position
    return len(text) - position - 1 if position >= 0 else -1


def _fancy_grid(table: list[list[Any]]) -> str:
    headers, rows = [str(h) for h in table[0]], table[1:]
    columns = []
    for index, header in enumerate(headers):
        cells = [row[index] if index < len(row) else None for row in rows]
        kind = max((_kind(cell) for cell in cells), key=_ORDER.index, default=bool)
        texts = [_text(cell, kind) for cell in cells]
        numeric = kind in (int, float)
        if numeric:
            points = [_after_point(text) for text in texts]
            texts = [text + " " * (max(points) - point) for text, point in zip(texts, points)]
        width = max([len(header) + 2, *map(len, texts)])
        pad = str.rjust if numeric else str.ljust
        columns.append(([pad(text, width) for text in texts], pad(header, width), width))

    def line(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (width + 2) for _, _, width in columns) + right

    def row_line(values: list[str]) -> str:
        return "│ " + " │ ".join(values) + " │"

    lines = [line("╒", "═", "╤", "╕"), row_line([header for _, header, _ in columns]), line("╞", "═", "╪", "╡")]
    for number in range(len(rows)):
        if number:
            lines.append(line("├", "─", "┼", "┤"))
        lines.append(row_line([texts[number] for texts, _, _ in columns]))
    lines.append(line("╘", "═", "╧", "╛"))
    return "\n".join(lines)
