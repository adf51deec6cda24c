"""Where the store and job directories live, from the environment or the defaults.

``XM_DATABASE_URL`` picks the database (any SQLAlchemy URL, or ``sqlite:///path``);
``XM_DATA_DIR`` the folder for the default SQLite file and for job directories
(default ``$XDG_DATA_HOME/xmanager``, i.e. ``~/.local/share/xmanager``).
"""

from __future__ import annotations

import os

DATABASE_ENV = "XM_DATABASE_URL"
DATA_DIR_ENV = "XM_DATA_DIR"


def data_dir() -> str:
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "xmanager")


def database_url() -> str:
    return os.environ.get(DATABASE_ENV) or f"sqlite:///{os.path.join(data_dir(), 'xmanager.sqlite3')}"

