"""The errors of study designs, under experiment-server's class names as well as ours.

Every problem with a study file is a :class:`StudyConfigError`, which is also experiment-server's
``ExperimentServerConfigurationException`` (so code catching that keeps working) and a ``ValueError``.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "ArgumentError",
    "ExperimentServerConfigurationException",
    "ExperimentServerException",
    "StudyConfigError",
]


class ExperimentServerException(Exception):  # noqa: N818 - experiment-server's name
    """Base of the study errors (experiment-server's name); ``message`` holds the text."""

    def __init__(self, message: str | None = None, *args: Any) -> None:
        self.message = message
        super().__init__(*((message,) if message is not None else ()), *args)

    def __str__(self) -> str:
        return self.message if self.message is not None else super().__str__()


class ExperimentServerConfigurationException(ExperimentServerException):
    """A study design is invalid (experiment-server's name)."""


class ArgumentError(TypeError, ValueError, AssertionError):
    """A bad argument to a study function. Also an AssertionError: experiment-server asserts its arguments."""


class StudyConfigError(ExperimentServerConfigurationException, ValueError):
    """A study file is invalid. The message names the file, the block and the key, and the line when known."""

    def __init__(
        self,
        detail: str,
        *,
        file: str | None = None,
        block: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.detail = detail
        self.file = file
        self.block = block
        self.key = key
        self.line = line
        super().__init__(self._format(file))

    def _format(self, file: str | None) -> str:
        parts = []
        if file is not None or self.line is not None:
            parts.append((file or "<study>") + (f":{self.line}" if self.line is not None else ""))
        if self.block is not None:
            parts.append(f"block {self.block!r}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        return f"{', '.join(parts)}: {self.detail}" if parts else self.detail

    def located(self, file: str | None = None, block: str | None = None, key: str | None = None) -> StudyConfigError:
        """This error with the file, block and key filled in where it had none."""
        return StudyConfigError(
            self.detail,
            file=self.file or file,
            block=self.block if self.block is not None else block,
            key=self.key if self.key is not None else key,
            line=self.line,
        )

    @property
    def public_message(self) -> str:
        """The message with the file's name only, never its folders (for answers sent over the network)."""
        return self._format(os.path.basename(self.file) if self.file else None)
