"""Package attributes imported on first use (PEP 562), so importing a package stays cheap.

For packages under ``xmanager.xm`` (which has loaded anyway). Executor packages keep their own few
lines: importing this module loads ``xmanager.xm``, which a Slurm task runner must not pay for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any, Optional


def exports(package: str, names: Mapping[str, Optional[str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    ``names`` maps each lazy attribute to the module that defines it, or to None for the submodule of
    ``package`` with that name. A loaded value is kept in the package, so each is imported once.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name.
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        source = names[name]
        if source is None:
            value: Any = importlib.import_module(f"{package}.{name}")
        else:
            value = getattr(importlib.import_module(source), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
