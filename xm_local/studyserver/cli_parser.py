"""Command-line parsing as click parses experiment-server's commands, without click.

:func:`parse` reads ``[--help] COMMAND [ARGS]...`` the way click 8 reads experiment-server's command group:
the same option syntax (``-i3``, ``--participant-index=3``, ``--``, options after arguments, the last of a
repeated option wins), the same checks in the same order (eager options first, then the options in the order
given, then the argument), help pages in click's layout (the descriptions on them are the caller's) and the
same error text (``Usage: ...``, ``Try '... --help' for help.``, ``Error: ...``), exit status 2.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Command", "Option", "ParseExit", "parse"]


@dataclass(frozen=True)
class Option:
    """An option: ``kind`` is ``int``, ``int>=1``, ``text``, ``dir`` (a folder, if it exists) or ``flag``."""

    names: tuple[str, ...]
    dest: str
    kind: str = "text"
    default: Any = None
    eager: bool = False
    callback: Callable[[dict[str, Any], set[str]], None] | None = None  # (values so far, options given)


@dataclass(frozen=True)
class Command:
    """A subcommand: one argument (``path``: checked if it exists, or ``text``), options, a help page."""

    name: str
    aliases: tuple[str, ...]
    argument: str
    argument_kind: str
    options: tuple[Option, ...]
    help: str  # The help page after its usage line.
    hidden: tuple[Option, ...] = field(default=())  # Accepted, not on the help page.

    @property
    def all_options(self) -> tuple[Option, ...]:
        return (*self.options, *self.hidden)


class ParseExit(Exception):  # noqa: N818 - not an error: the parse ends the command
    """The command line asked for help or was wrong: print ``text`` to ``stream`` and exit with ``code``."""

    def __init__(self, text: str, code: int, stream: str) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.stream = stream


class _UsageError(Exception):
    def __init__(self, message: str, usage: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


_HELP = Option(("--help",), "help", "flag", eager=True)


def _no_such_option(name: str, possibilities: Sequence[str] = ()) -> _UsageError:
    message = f"No such option {name!r}."
    close = sorted(difflib.get_close_matches(name, list(possibilities)))
    if len(close) == 1:
        message += f" Did you mean {close[0]!r}?"
    elif close:
        message += f" (Did you mean one of: {', '.join(map(repr, close))}?)"
    return _UsageError(message)


def _split(argv: list[str], options: Sequence[Option]) -> tuple[dict[str, Any], list[str], list[str]]:
    """click's option parser: values by dest (strings, or True for flags), the options given, the other args."""
    by_name = {name: option for option in options for name in option.names}
    long_names = [name for option in options for name in option.names if name.startswith("--")]
    values: dict[str, Any] = {}
    given: list[str] = []
    rest = list(argv)
    positional: list[str] = []

    def take(option: Option, name: str, explicit: str | None) -> None:
        if option.kind == "flag":
            if explicit is not None:
                raise _UsageError(f"Option {name!r} does not take a value.", usage=False)
            value: Any = True
        else:
            if explicit is not None:
                rest.insert(0, explicit)
            if not rest:
                raise _UsageError(f"Option {name!r} requires an argument.", usage=False)
            value = rest.pop(0)
        values[option.dest] = value
        given.append(option.dest)

    while rest:
        arg = rest.pop(0)
        if arg == "--":
            break
        if arg[:1] != "-" or len(arg) == 1:
            positional.append(arg)
            continue
        name, explicit = arg.split("=", 1) if "=" in arg else (arg, None)
        if name in long_names:
            take(by_name[name], name, explicit)
            continue
        if arg.startswith("--"):
            raise _no_such_option(name, long_names)
        for index, char in enumerate(arg[1:], start=2):
            option = by_name.get(f"-{char}")
            if option is None:
                raise _no_such_option(f"-{char}")
            if option.kind != "flag" and index < len(arg):
                rest.insert(0, arg[index:])
                take(option, f"-{char}", None)
                break
            take(option, f"-{char}", None)
    return values, given, positional + rest


def _invalid(option: Option, message: str) -> _UsageError:
    return _UsageError(f"Invalid value for {' / '.join(map(repr, option.names))}: {message}")


def _path_problem(value: str, kind: str) -> str | None:
    """click.Path's checks of an existing path (``kind``: ``dir`` for a folder-only path, else any path)."""
    if not os.path.exists(value):
        return None
    what = "Directory" if kind == "dir" else "Path"
    if kind == "dir" and not os.path.isdir(value):
        return f"{what} {value!r} is a file."
    if not os.access(value, os.R_OK):
        return f"{what} {value!r} is not readable."
    return None


def _convert(option: Option, value: Any) -> Any:
    if value is None or option.kind in ("text", "flag"):
        return value
    if option.kind == "dir":
        problem = _path_problem(value, "dir")
        if problem:
            raise _invalid(option, problem)
        return value
    number_type = "integer range" if option.kind == "int>=1" else "integer"
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(option, f"{value!r} is not a valid {number_type}.") from None
    if option.kind == "int>=1" and number < 1:
        raise _invalid(option, f"{number} is not in the range x>=1.")
    return number


def _parse_command(command: Command, argv: list[str], path: str) -> dict[str, Any]:
    options = (*command.all_options, _HELP)
    values, given, positional = _split(argv, options)
    # Eager options first, then the ones given (in order), then the argument, then the others.
    order = sorted(
        (*options, None),
        key=lambda o: (
            not (o is not None and o.eager),
            given.index(o.dest) if o is not None and o.dest in given else (len(given) if o is None else 10**6),
        ),
    )
    parsed: dict[str, Any] = {}
    for option in order:
        if option is None:
            if not positional:
                raise _UsageError(f"Missing argument {command.argument!r}.")
            argument = positional.pop(0)
            problem = _path_problem(argument, "path") if command.argument_kind == "path" else None
            if problem:
                raise _UsageError(f"Invalid value for {command.argument!r}: {problem}")
            parsed["argument"] = argument
            continue
        if option is _HELP:
            if values.get("help"):
                raise ParseExit(f"Usage: {path} [OPTIONS] {command.argument}\n{command.help}", 0, "stdout")
            continue
        value = values.get(option.dest)
        parsed[option.dest] = option.default if value is None else _convert(option, value)
        if option.kind == "flag":
            parsed[option.dest] = bool(value)
        if option.callback is not None:
            option.callback(parsed, set(given))
    if positional:
        plural = "s" if len(positional) > 1 else ""
        raise _UsageError(f"Got unexpected extra argument{plural} ({' '.join(positional)})")
    return parsed


def _failure(error: _UsageError, usage: str, prog: str) -> ParseExit:
    text = f"Error: {error.message}\n"
    if error.usage:
        text = f"{usage}\nTry '{prog} --help' for help.\n\n{text}"
    return ParseExit(text, 2, "stderr")


def parse(
    prog: str, commands: Sequence[Command], group_help: str, argv: Sequence[str]
) -> tuple[Command, dict[str, Any]]:
    """The command named first in ``argv`` (or by an alias) and its values (``argument`` and each option's dest).

    Raises:
      ParseExit: help was asked for (exit 0), or the command line is wrong (exit 2), as click would end.
    """
    group_usage = f"Usage: {prog} [OPTIONS] COMMAND [ARGS]..."
    if not argv:
        raise ParseExit(f"{group_usage}\n{group_help}", 2, "stderr")
    rest = list(argv)
    asked_help = False
    while rest and rest[0][:1] == "-" and len(rest[0]) > 1:
        arg = rest.pop(0)
        if arg == "--":
            break
        name, explicit = arg.split("=", 1) if "=" in arg else (arg, None)
        if name == "--help":
            if explicit is not None:
                raise _failure(_UsageError("Option '--help' does not take a value.", usage=False), group_usage, prog)
            asked_help = True
            continue
        error = _no_such_option(name, ["--help"]) if arg.startswith("--") else _no_such_option(arg[:2])
        raise _failure(error, group_usage, prog)
    if asked_help:
        raise ParseExit(f"{group_usage}\n{group_help}", 0, "stdout")
    if not rest:
        raise _failure(_UsageError("Missing command."), group_usage, prog)
    name = rest.pop(0)
    command = next((c for c in commands if name == c.name or name in c.aliases), None)
    if command is None:
        raise _failure(_UsageError(f"No such command {name!r}."), group_usage, prog)
    path = f"{prog} {name}"
    try:
        return command, _parse_command(command, rest, path)
    except _UsageError as error:
        raise _failure(error, f"Usage: {path} [OPTIONS] {command.argument}", path) from None
