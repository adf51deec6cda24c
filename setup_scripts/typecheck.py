"""Type-checks the ``xmanager`` packages under their import names with mypy.

``python setup_scripts/typecheck.py`` checks every package; ``python setup_scripts/typecheck.py ARGS``
passes ARGS to mypy instead (e.g. a launch script, checked against the packages it imports).

The source folders do not sit at their import paths (``xm_local/`` is ``xmanager.xm_local``, see
``ROOTS`` in setup.py), and mypy cannot follow the editable install's import hook. So each folder is
linked under its import name in ``build/typecheck/xmanager/``, which is ``mypy_path`` in
pyproject.toml, and mypy is given the packages by name. Messages name the source folders, not the links.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parent.parent
#: pyproject.toml's mypy_path: a folder named ``xmanager`` in it holds one link per package.
LINKS = REPO / "build" / "typecheck"


def link_packages() -> dict[str, str]:
    """Links every source folder under its import name; returns import name -> source folder."""
    roots: dict[str, str] = runpy.run_path(str(REPO / "setup.py"))["ROOTS"]
    namespace = LINKS / "xmanager"
    namespace.mkdir(parents=True, exist_ok=True)
    wanted = {package.removeprefix("xmanager."): folder for package, folder in roots.items()}
    for stale in namespace.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name, folder in wanted.items():
        link = namespace / name
        target = os.path.relpath(REPO / folder, namespace)
        if not link.is_symlink() or os.readlink(link) != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target, target_is_directory=True)
    return roots


def main(args: list[str]) -> int:
    os.chdir(REPO)  # Messages then name paths relative to the repository, as the rewrite below expects.
    roots = link_packages()
    if not args:
        args = [flag for package in roots for flag in ("-p", package)]
    stdout, stderr, status = api.run(args)
    for package, folder in roots.items():  # build/typecheck/xmanager/xm_local/x.py -> xm_local/x.py
        linked = os.path.relpath(LINKS / package.replace(".", "/"), REPO)
        stdout = stdout.replace(linked + "/", folder + "/")
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
