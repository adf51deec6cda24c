"""Builds the documentation site (docs/ and the API reference) into build/site, warnings as errors.

``python setup_scripts/build_docs.py`` (setup_scripts/test.sh, so CI). mkdocstrings reads the packages
under their import names, which the source folders are not at; the same link tree as the type check
(``build/typecheck/xmanager/``) serves it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import typecheck  # noqa: E402 - setup_scripts/typecheck.py: the link tree.


def main() -> int:
    os.chdir(typecheck.REPO)
    typecheck.link_packages()
    mkdocs = Path(sys.executable).with_name("mkdocs")
    return subprocess.run([str(mkdocs), "build", "--strict"]).returncode


if __name__ == "__main__":
    sys.exit(main())
