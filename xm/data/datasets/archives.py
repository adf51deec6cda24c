"""Reading raw dataset archives: streaming tar.gz members and restricted unpickling (CIFAR's python batches)."""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from xmanager.xm.data.datasets import base

__all__ = ["load_pickle", "read_tar_members"]

# Only what a pickled numpy array (as found in CIFAR's batches) needs; anything else is refused.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def load_pickle(stream: IO[bytes]) -> Any:
    """Unpickle a dataset batch (Python 2 pickles decode as latin-1) allowing only plain data and numpy arrays."""
    return _RestrictedUnpickler(stream, encoding="latin1").load()


def read_tar_members(path: Path, handlers: dict[str, Callable[[IO[bytes], int], Any]]) -> dict[str, Any]:
    """Stream through the tar archive ``path`` once, calling ``handlers[basename](stream, size)`` for wanted members.

    Members are matched by their base name (archives put everything in one top folder). Returns each handler's
    result by base name; a wanted member missing from the archive is a :class:`base.DatasetFormatError`.
    """
    results: dict[str, Any] = {}
    with base.reading(path):
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                key = member.name.rsplit("/", 1)[-1]
                if not member.isfile() or key not in handlers or key in results:
                    continue
                stream = tar.extractfile(member)
                if stream is None:  # pragma: no cover - isfile() members always have data
                    continue
                try:
                    results[key] = handlers[key](stream, member.size)
                except base.DatasetFormatError:
                    raise
                except Exception as exc:
                    raise base.DatasetFormatError(
                        f"cannot read member {member.name} of {path}: {type(exc).__name__}: {exc}"
                    ) from exc
    missing = sorted(set(handlers) - set(results))
    if missing:
        raise base.DatasetFormatError(f"{path} lacks the member(s) {', '.join(missing)}")
    return results


def names_from(values: Iterable[Any]) -> list[str]:
    """Class names as str (CIFAR's pickles may hold bytes)."""
    return [v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values]
