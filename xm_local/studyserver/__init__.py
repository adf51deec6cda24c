"""The study server: experiment-server's REST API over participant state (in memory, or kept on disk).

* :class:`StudyState`: participants, their blocks and block ids, in SQLite (a file with ``persist``).
* :func:`serve` / :func:`server_process`: run the HTTP server (in this process / a child process); they and
  ``_server`` load on first use (the server needs Starlette and uvicorn, the ``study`` extra), so the client,
  the state and the command line's other commands work without them.
* :class:`Client`: a Python client with experiment-server's method names.

This package also stands for ``experiment_server`` itself: ``Client``, ``server_process``, ``Experiment``
and ``__version__`` (the experiment-server release whose API it has), with experiment-server's modules as
attributes under its names (``_api``, ``_server``, ``_client``, ``_process_config``,
``_participant_ordering``, ``utils``, ``cli``). docs/studies.md has the mapping.
"""

from typing import TYPE_CHECKING, Any

# experiment-server's modules, as attributes under its names: `experiment_server._server._server` and so on.
from xmanager.xm.study import config as _process_config  # noqa: F401 - experiment-server's module name
from xmanager.xm.study import ordering as _participant_ordering  # noqa: F401 - experiment-server's module name
from xmanager.xm.study import utils  # noqa: F401 - experiment-server's module name
from xmanager.xm_local import study_cli as cli  # noqa: F401 - experiment-server's module name
from xmanager.xm_local.studyserver import client as _client  # noqa: F401 - experiment-server's module name
from xmanager.xm_local.studyserver import state as _api  # noqa: F401 - experiment-server's module name
from xmanager.xm_local.studyserver.client import Client
from xmanager.xm_local.studyserver.state import Experiment, StudyState, UnknownParticipantError

if TYPE_CHECKING:
    from xmanager.xm_local.studyserver import http as _server  # noqa: F401 - experiment-server's module name
    from xmanager.xm_local.studyserver.http import StudyServerError, serve, server_process

__version__ = "0.3.9"

__all__ = [
    "Client",
    "Experiment",
    "StudyServerError",
    "StudyState",
    "UnknownParticipantError",
    "serve",
    "server_process",
]

_FROM_HTTP = frozenset({"StudyServerError", "serve", "server_process"})


def __getattr__(name: str) -> Any:
    """The server's names (and experiment-server's ``_server`` module), imported when first asked for."""
    if name == "_server" or name in _FROM_HTTP:
        from xmanager.xm_local.studyserver import http

        globals()["_server"] = http
        for exported in _FROM_HTTP:
            globals()[exported] = getattr(http, exported)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
