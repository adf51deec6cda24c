"""The errors of study designs, under experiment-server's class names as well as ours.

A problem with a study file raises what experiment-server 0.3.9 raises for it, with the same message:
mostly its ``ExperimentServerConfigurationException``, and for some problems a ``KeyError``, ``TypeError``,
``AssertionError``, ``IndexError`` or ``ValueError``. Each of these is also a :class:`StudyConfigError`
(``StudyConfigError.of(KeyError)`` is the ``KeyError`` kind), so ``except StudyConfigError`` catches every
problem with a file and ``except KeyError`` catches what it catches with experiment-server. The error also
knows the file, and where it can the block, the key and the line (:attr:`StudyConfigError.location`).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

__all__ = [
    "ArgumentError",
    "ExperimentServerConfigurationException",
    "ExperimentServerException",
    "InvalidStudyError",
    "StudyConfigError",
]


class ExperimentServerException(Exception):  # noqa: N818 - experiment-server's name
    """Base of the study errors (experiment-server's name); ``message`` holds the text."""

    def __init__(self, message: str | None = None, *args: Any) -> None:
        self.message = message
        super().__init__(*((message,) if message is not None else ()), *args)

    def __str__(self) -> str:
        return self.message if self.message is not None else super().__str__()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(message={self.message!r})"


class ExperimentServerConfigurationException(ExperimentServerException):
    """A study design is invalid (experiment-server's name)."""


class ArgumentError(TypeError, ValueError, AssertionError):
    """A bad argument to a study function. Also an AssertionError: experiment-server asserts its arguments."""


class StudyConfigError(Exception):
    """A problem with a study file. ``str()`` is experiment-server's message; :attr:`location` says where.

    Raise a concrete kind: :class:`InvalidStudyError` (experiment-server's configuration exception) or
    ``StudyConfigError.of(KeyError)`` and the like, for the problems experiment-server reports with a built-in
    exception.
    """

    _kinds: ClassVar[dict[type[BaseException], type[StudyConfigError]]] = {}

    def __init__(
        self,
        detail: str,
        *,
        file: str | None = None,
        block: str | None = None,
        key: str | None = None,
        line: int | None = None,
        args: tuple[Any, ...] | None = None,
    ) -> None:
        super().__init__(*((detail,) if args is None else args))
        self.detail = detail
        self.file = file
        self.block = block
        self.key = key
        self.line = line

    def __str__(self) -> str:
        return self.detail

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.detail, self.args), self.__dict__)

    @classmethod
    def of(cls, builtin: type[BaseException]) -> type[StudyConfigError]:
        """The kind of StudyConfigError that is also a ``builtin`` exception (``KeyError``, ``TypeError``, ...)."""
        kind = cls._kinds.get(builtin)
        if kind is None:
            name = f"Study{builtin.__name__}"
            kind = type(name, (StudyConfigError, builtin), {"__module__": __name__, "__qualname__": name})
            if builtin is KeyError:  # KeyError's text is the repr of the missing key: keep experiment-server's.
                kind.__str__ = StudyConfigError.__str__  # type: ignore[method-assign]
            globals()[name] = cls._kinds[builtin] = kind
        return kind

    @classmethod
    def like(cls, error: BaseException, **where: Any) -> StudyConfigError:
        """``error`` (a built-in exception raised while expanding a study) as the StudyConfigError of its kind."""
        if isinstance(error, StudyConfigError):
            return error.located(**where)
        return cls.of(type(error))(str(error), args=error.args, **where)

    def _format(self, file: str | None) -> str:
        parts = []
        if file is not None or self.line is not None:
            parts.append((file or "<study>") + (f":{self.line}" if self.line is not None else ""))
        if self.block is not None:
            parts.append(f"block {self.block!r}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        return ", ".join(parts)

    @property
    def location(self) -> str:
        """``file[:line], block '...', key '...'`` as far as known ('' if nothing is)."""
        return self._format(self.file)

    @property
    def located_message(self) -> str:
        """The message after its location: ``study.toml, block 'b', key 'extends': ...``."""
        return f"{self.location}: {self.detail}" if self.location else self.detail

    @property
    def public_message(self) -> str:
        """:attr:`located_message` with the file's name only, never its folders."""
        where = self._format(os.path.basename(self.file) if self.file else None)
        return f"{where}: {self.detail}" if where else self.detail

    def located(
        self, file: str | None = None, block: str | None = None, key: str | None = None
    ) -> StudyConfigError:
        """This error, with the file, block and key filled in where it had none."""
        self.file = self.file or file
        self.block = self.block if self.block is not None else block
        self.key = self.key if self.key is not None else key
        return self


def _rebuild(kind: type[StudyConfigError], detail: str, args: tuple[Any, ...]) -> StudyConfigError:
    return kind(detail, args=args)


class InvalidStudyError(StudyConfigError, ExperimentServerConfigurationException):
    """A study file experiment-server rejects with its ``ExperimentServerConfigurationException``."""

    def __init__(self, detail: str, **where: Any) -> None:
        StudyConfigError.__init__(self, detail, **where)
        self.message = detail

    def __str__(self) -> str:
        return self.detail


for _builtin in (KeyError, TypeError, AssertionError, IndexError, ValueError):
    StudyConfigError.of(_builtin)
