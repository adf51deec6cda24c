"""Where the store and job directories live, from the environment or the defaults.

``XM_DATABASE_URL`` picks the database (any SQLAlchemy URL, or ``sqlite:///path``);
``XM_DATA_DIR`` the folder for the default SQLite file and for job directories
(default ``$XDG_DATA_HOME/xmanager``, i.e. ``~/.local/share/xmanager``). An XManager
database YAML file (``--xm_db_yaml_config_path``) maps to such a URL.
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



#: XManager's database YAML (``--xm_db_yaml_config_path``) ``sql_connector`` values we can map.
SQL_CONNECTORS = ("sqlite", "generic", "cloudsql")


def database_url_from_yaml(path: str) -> str:
    """The store URL an XManager database YAML file describes.

    ``sql_connector: sqlite`` takes ``db_name`` as the file (default: XManager's
    ``~/.xmanager/experiments.sqlite3``); ``generic`` builds
    ``backend[+driver]://username:password@host:port/db_name``. ``cloudsql`` needs Google's
    Cloud SQL connector, which the store does not use: connect through the instance's
    address with ``generic`` instead. Errors are ``ValueError`` naming the file and the entry.
    """
    from urllib.parse import quote

    try:
        import yaml
    except ImportError:
        raise ValueError(f"{path}: reading an XManager database YAML file needs PyYAML (pip install pyyaml)") from None
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except OSError as error:
        raise ValueError(f"cannot read the database YAML file {path!r}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(config, dict) or "sql_connector" not in config:
        raise ValueError(f"{path}: needs a `sql_connector` entry (one of {', '.join(SQL_CONNECTORS)})")
    connector = config["sql_connector"]
    if connector not in SQL_CONNECTORS:
        raise ValueError(f"{path}: sql_connector is {connector!r}; it must be one of {', '.join(SQL_CONNECTORS)}")
    settings = config.get("sql_connection_settings")
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: needs a `sql_connection_settings` entry")
    backend = settings.get("backend") or ("sqlite" if connector == "sqlite" else "")
    db_name = settings.get("db_name") or ""
    if connector == "sqlite" or backend == "sqlite":
        if backend != "sqlite":
            raise ValueError(f"{path}: sql_connector sqlite needs backend sqlite, not {backend!r}")
        file = os.path.expanduser(db_name or "~/.xmanager/experiments.sqlite3")
        base = os.path.dirname(os.path.abspath(path))
        return f"sqlite:///{file if os.path.isabs(file) else os.path.normpath(os.path.join(base, file))}"
    if connector == "cloudsql":
        raise ValueError(f"{path}: sql_connector cloudsql (Google's Cloud SQL connector) is not supported; "
                         "use sql_connector generic with the instance's host and port")
    if not backend or not db_name:
        raise ValueError(f"{path}: sql_connection_settings needs `backend` and `db_name`")
    scheme = f"{backend}+{settings['driver']}" if settings.get("driver") else backend
    credentials = ""
    if settings.get("username"):
        credentials = quote(str(settings["username"]), safe="")
        if settings.get("password"):
            credentials += ":" + quote(str(settings["password"]), safe="")
        credentials += "@"
    host = str(settings.get("host") or "")
    port = f":{int(settings['port'])}" if settings.get("port") else ""
    return f"{scheme}://{credentials}{host}{port}/{quote(str(db_name), safe='')}"
