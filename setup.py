"""Which folders are which ``xmanager.*`` packages; all other metadata is in pyproject.toml.

The source folders do not sit at their import paths (``xm_local/`` is ``xmanager.xm_local``),
which ``[tool.setuptools.packages.find]`` cannot express, so the packages are found here: every
folder with an ``__init__.py`` under a root below. A new executor is a folder under
``executors/``; nothing here changes for it.
"""

import os

#: Import path -> source folder.
ROOTS = {
    "xmanager.xm": "xm",
    "xmanager.xm_local": "xm_local",
    "xmanager.executors": "executors",
    "xmanager.testing": "testing",
    "xmanager.xm_flags": "compat/xm_flags",
    "xmanager.contrib": "compat/contrib",
    "xmanager.cloud": "compat/cloud",
    "xmanager.vizier": "compat/vizier",
    "xmanager.xm_mock": "compat/xm_mock",
}


def _packages() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    for package, root in ROOTS.items():
        for folder, children, files in os.walk(os.path.join(here, root)):
            if "__init__.py" not in files:  # Not a package, nor anything below it.
                children.clear()
                continue
            children.sort()
            relative = os.path.relpath(folder, os.path.join(here, root))
            found.append(package if relative == "." else f"{package}.{relative.replace(os.sep, '.')}")
    return found


if __name__ == "__main__":  # pip runs it as __main__; setup_scripts/typecheck.py and tests read ROOTS.
    from setuptools import setup  # Here, so reading ROOTS never imports setuptools (and its distutils shim).

    setup(packages=_packages(), package_dir=ROOTS, package_data={"": ["py.typed"]})
