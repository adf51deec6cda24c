"""The study server: experiment-server's REST API over persisted participant state.

* :class:`StudyState`: participants, their blocks and block ids, persisted in SQLite.
* :func:`serve` / :func:`server_process`: run the HTTP server (in this process / a child process).
* :class:`Client`: a Python client with experiment-server's method names.
"""

from xmanager.xm_local.studyserver.client import Client
from xmanager.xm_local.studyserver.http import StudyServerError, serve, server_process
from xmanager.xm_local.studyserver.state import StudyState, UnknownParticipantError

__all__ = ["Client", "StudyServerError", "StudyState", "UnknownParticipantError", "serve", "server_process"]
