"""Declaring your own dataset batchup's way: source files to acquire, and a conversion into one file that is kept.

A *source file* knows how to get one raw file and check its SHA-256: :class:`DownloadSourceFile` downloads it,
:class:`CopySourceFile` copies it from elsewhere on disk (a fixed path, or one passed when fetching), and
:class:`ExistingSourceFile` uses it where it is. :func:`fetch_and_convert_dataset` turns a conversion function
``convert(source_paths, target_path) -> target_path or None`` into a fetch function that returns the converted
file's path, acquiring and converting only when that file is not there yet::

    @fetch_and_convert_dataset([DownloadSourceFile("usps.h5", url=URL, sha256=SHA)], "usps.h5")
    def fetch_usps(source_paths, target_path):
        shutil.move(source_paths[0], target_path)
        return target_path

Downloaded and copied files are staged in ``config.get_data_path("temp")`` and deleted once the conversion
succeeded; converted files live in ``config.get_data_dir()``. Failures print a message and make the fetch function
return None, as in batchup. (The built-in datasets use :mod:`~xmanager.xm.data.datasets.base` instead, which raises.)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

from xmanager.xm.data import config

__all__ = [
    "AbstractSourceFile",
    "BatchUpSourceFile",
    "CopySourceFile",
    "DownloadSourceFile",
    "ExistingSourceFile",
    "classnames_from_h5",
    "delete_dataset_cache",
    "fetch_and_convert_dataset",
    "path_string",
]

PathSpec = str | os.PathLike[str] | Callable[[], str]
"""A path, or a function returning one (called each time the path is needed)."""

TEMP_SUBDIR = "temp"


def path_string(p: PathSpec) -> str:
    """``p`` as a ``str``: a path as is, a callable's result; anything else is a TypeError."""
    if isinstance(p, (str, os.PathLike)):
        return os.fspath(p)
    if callable(p):
        return p()
    raise TypeError(f"a path must be a string or a callable returning one, not a {type(p).__name__}")


def _check_path_spec(p: Any, name: str) -> None:
    if not isinstance(p, (str, os.PathLike)) and not callable(p):
        raise TypeError(f"{name} must be a string or a callable returning one, not a {type(p).__name__}")


def classnames_from_h5(class_names: Iterable[Any]) -> list[str]:
    """Class names read from an HDF5 file (bytes are decoded as latin-1) as a list of ``str``."""
    return [name.decode("latin1") if isinstance(name, bytes) else str(name) for name in class_names]


class AbstractSourceFile:
    """A raw file a dataset needs; :meth:`acquire` makes it available and returns its path (None on failure)."""

    def __init__(self, sha256: str | None = None) -> None:
        self.sha256 = sha256

    def acquire(self, **kwargs: Any) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} does not implement acquire")

    def clean_up(self) -> None:
        """Remove what :meth:`acquire` staged (called once the conversion succeeded)."""


class BatchUpSourceFile(AbstractSourceFile):
    """A source file staged in ``<data dir>/data/temp/<filename>`` (``path``) and deleted after conversion."""

    def __init__(self, filename: str, sha256: str | None = None) -> None:
        super().__init__(sha256=sha256)
        self.filename = filename
        self.temp_filename = os.path.join(TEMP_SUBDIR, filename)
        self.path = config.get_data_path(self.temp_filename)

    def clean_up(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)


class DownloadSourceFile(BatchUpSourceFile):
    """A file downloaded from ``url``, or from ``base_url`` + ``filename``; kept if already staged and verified."""

    def __init__(
        self, filename: str, url: str | None = None, base_url: str | None = None, sha256: str | None = None
    ) -> None:
        super().__init__(filename, sha256=sha256)
        if url is None:
            if base_url is None:
                raise TypeError("DownloadSourceFile needs url or base_url")
            url = base_url + filename if base_url.endswith("/") else f"{base_url}/{filename}"
        self.url = url

    def __str__(self) -> str:
        return f"downloadable file {self.filename} from {self.url}"

    def acquire(self, **kwargs: Any) -> str | None:
        return config.download_data(self.temp_filename, self.url, self.sha256)


class CopySourceFile(BatchUpSourceFile):
    """A file copied from ``source_path``, or from the path passed to the fetch function as keyword ``arg_name``."""

    def __init__(
        self,
        filename: str,
        source_path: str | None = None,
        arg_name: str | None = None,
        sha256: str | None = None,
    ) -> None:
        super().__init__(filename, sha256=sha256)
        if source_path is None and arg_name is None:
            raise TypeError("CopySourceFile needs source_path or arg_name")
        self.source_path = source_path
        self.arg_name = arg_name

    def __str__(self) -> str:
        return f"file {self.filename} on filesystem at {self.source_path}"

    def acquire(self, **kwargs: Any) -> str | None:
        if self.source_path is not None:
            source = self.source_path
        elif self.arg_name in kwargs:
            source = kwargs[self.arg_name]
        else:
            raise TypeError(
                f"the fetch function needs the keyword argument {self.arg_name!r} (the path of {self.filename})"
            )
        return config.copy_data(self.temp_filename, os.fspath(source), self.sha256)


class ExistingSourceFile(AbstractSourceFile):
    """A file used where it is (``path``, or a callable returning it); never copied and never deleted."""

    def __init__(self, path: PathSpec, sha256: str | None = None) -> None:
        _check_path_spec(path, "path")
        super().__init__(sha256=sha256)
        self.path = path

    def __str__(self) -> str:
        return f"file at {path_string(self.path)}"

    def acquire(self, **kwargs: Any) -> str | None:
        path = path_string(self.path)
        if os.path.exists(path) and config.verify_file(path, self.sha256):
            return path
        return None


Converter = Callable[[list[str], str], Optional[str]]


def fetch_and_convert_dataset(
    source_files: Sequence[AbstractSourceFile], target_filename: PathSpec
) -> Callable[[Converter], Callable[..., Optional[str]]]:
    """Decorator: ``convert(source_paths, target_path)`` becomes ``fetch(**kwargs) -> converted path or None``.

    ``fetch`` returns ``config.get_data_path(target_filename)`` at once if that file exists. Otherwise it acquires
    every source (``kwargs`` go to each ``acquire``, e.g. a :class:`CopySourceFile`'s ``arg_name``), calls
    ``convert`` with their paths, and on success deletes the staged sources. A source that cannot be acquired is
    printed and ``fetch`` returns None (sources already staged are kept for the next attempt); two sources with the
    same path are a ValueError.
    """
    _check_path_spec(target_filename, "target_filename")
    for source in source_files:
        if not isinstance(source, AbstractSourceFile):
            raise TypeError(f"source_files must hold AbstractSourceFile instances, not {type(source).__name__}")
    sources = list(source_files)

    def decorate(convert: Converter) -> Callable[..., str | None]:
        @functools.wraps(convert)
        def fetch(**kwargs: Any) -> str | None:
            target_path = config.get_data_path(path_string(target_filename))
            if os.path.exists(target_path):
                return target_path
            source_paths: list[str] = []
            for source in sources:
                path = source.acquire(**kwargs)
                if path is None:
                    print(f"Failed to acquire {source}")
                    return None
                if path in source_paths:
                    raise ValueError(f"two source files of {path_string(target_filename)} have the path {path}")
                source_paths.append(path)
            folder = os.path.dirname(target_path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            converted = convert(source_paths, target_path)
            if converted is not None:
                for source in sources:
                    source.clean_up()
            return converted

        return fetch

    return decorate


def delete_dataset_cache(*filenames: PathSpec) -> None:
    """Delete converted files (names relative to ``config.get_data_dir()``, or absolute paths) that exist."""
    for filename in filenames:
        path = config.get_data_path(path_string(filename))
        if os.path.exists(path):
            os.remove(path)
