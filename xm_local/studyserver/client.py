"""A Python client for the study server with experiment-server 0.3.9's method names (its ``Client``).

Every method returns ``(ok, data)``: on a 200 answer ``(True, parsed JSON)`` (``""`` for an empty
body); on any other status ``(False, {"message": "status <code> with text: <body>"})``. As in 0.3.9,
a server that cannot be reached raises ``requests.ConnectionError`` (``requests.Timeout`` after
``timeout`` seconds) when ``requests`` is installed, else the built-in ``ConnectionError``
(``TimeoutError``); all of them are ``OSError``. Ids that are not ints fail an assertion
(:class:`ArgumentError`, also a ``TypeError``). Unlike 0.3.9, all calls share one keep-alive
:class:`http.client.HTTPConnection` (re-opened when the server closed it), and a ``token`` is sent as
``Authorization: Bearer <token>`` on POST and PUT.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

from xmanager.xm.study.errors import ArgumentError

__all__ = ["Client"]

_RETRYABLE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError, ConnectionResetError)


class Client:
    """Talks to a study server (or experiment-server) at ``server_host:server_port``."""

    def __init__(
        self,
        server_host: str = "127.0.0.1",
        server_port: int | str = 5000,
        token: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.server_host = server_host
        self.server_port = int(server_port)
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._used = False
        self._lock = threading.Lock()

    # -- transport ---------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.server_host, self.server_port, timeout=self.timeout)
            self._used = False
        return self._conn

    def _exchange(self, method: str, path: str) -> tuple[int, str]:
        headers = {"Content-Length": "0"} if method != "GET" else {}
        if self.token is not None and method != "GET":
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        reused = self._used
        try:
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
        except _RETRYABLE:
            conn.close()
            self._conn = None
            if not reused:
                raise
            # The server closed an idle keep-alive connection before reading the request: send it again.
            conn = self._connection()
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
        try:
            body = response.read().decode("utf-8")
        except BaseException:
            conn.close()
            self._conn = None
            raise
        self._used = True
        if response.will_close:
            conn.close()
            self._conn = None
        return response.status, body

    def _call(self, method: str, path: str) -> tuple[bool, Any]:
        with self._lock:
            try:
                status, body = self._exchange(method, path)
            except (OSError, http.client.HTTPException) as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise _unreachable(exc, f"{method} http://{self.server_host}:{self.server_port}{path}") from exc
        if status != 200:
            return False, {"message": f"status {status} with text: {body}"}
        if not body:
            return True, ""
        try:
            return True, json.loads(body)
        except ValueError:
            return True, body

    @staticmethod
    def _path(action: str, *params: int | None) -> str:
        return "/api/" + "/".join([action, *(str(p) for p in params if p is not None)])

    @staticmethod
    def _index(participant_index: int | None) -> int | None:
        if participant_index is not None and not isinstance(participant_index, int):
            raise ArgumentError(f"`participant_index` should be an int, got {participant_index!r}")
        return participant_index

    # -- experiment-server's methods ---------------------------------------------------------------

    def move_to_next(self, participant_index: int | None = None) -> tuple[bool, Any]:
        return self._call("POST", self._path("move-to-next", self._index(participant_index)))

    def get_config(self, participant_index: int | None = None) -> tuple[bool, Any]:
        return self._call("GET", self._path("config", self._index(participant_index)))

    def server_is_active(self, participant_index: int | None = None) -> tuple[bool, Any]:
        """The participant's ``active`` flag (as in 0.3.9; not whether the server is up)."""
        return self._call("GET", self._path("active", self._index(participant_index)))

    def get_blocks_count(self, participant_index: int | None = None) -> tuple[bool, Any]:
        return self._call("GET", self._path("blocks-count", self._index(participant_index)))

    def get_all_configs(self, participant_index: int | None = None) -> tuple[bool, Any]:
        return self._call("GET", self._path("all-configs", self._index(participant_index)))

    def move_to_block(self, block_id: int, participant_index: int | None = None) -> tuple[bool, Any]:
        _block(block_id)
        return self._call("POST", self._path("move-to-block", self._index(participant_index), block_id))

    def new_participant(self) -> tuple[bool, Any]:
        return self._call("PUT", "/api/new-participant")

    def add_participant(self, participant_index: int) -> tuple[bool, Any]:
        if participant_index is None:
            raise ArgumentError("`participant_index` is needed")
        return self._call("PUT", self._path("add-participant", self._index(participant_index)))

    def shutdown(self) -> tuple[bool, Any]:
        result = self._call("POST", "/api/shutdown")
        self.close()
        return result

    # -- endpoints 0.3.9's client has no method for ------------------------------------------------

    def get_block_id(self, participant_index: int | None = None) -> tuple[bool, Any]:
        return self._call("GET", self._path("block-id", self._index(participant_index)))

    def get_summary_data(self, participant_index: int | None = None) -> tuple[bool, Any]:
        return self._call("GET", self._path("summary-data", self._index(participant_index)))

    def get_status_string(self, participant_index: int | None = None) -> tuple[bool, Any]:
        return self._call("GET", self._path("status-string", self._index(participant_index)))

    def move_all_to_block(self, block_id: int) -> tuple[bool, Any]:
        _block(block_id)
        return self._call("POST", self._path("move-all-to-block", block_id))

    def get_participants(self) -> tuple[bool, Any]:
        """Every participant: ``[{"participant_index", "block_id", "block_name", "active", "blocks_count"}, ...]``."""
        return self._call("GET", "/api/participants")

    def reset_participant(self, participant_index: int | None = None) -> tuple[bool, Any]:
        """Rebuild the participant's blocks from the current config and move it before the first block."""
        return self._call("POST", self._path("reset-participant", self._index(participant_index)))


def _block(block_id: Any) -> None:
    if not isinstance(block_id, int):
        raise ArgumentError(f"`block_id` should be an int, got {block_id!r}")


def _unreachable(exc: BaseException, request: str) -> OSError:
    """The error for a server that did not answer: requests' classes when it is installed, as in 0.3.9."""
    timed_out = isinstance(exc, TimeoutError)
    try:
        import requests.exceptions as requests_errors
    except ImportError:
        builtin = TimeoutError if timed_out else ConnectionError
        return builtin(f"{request}: {exc!r}")
    error_class = requests_errors.Timeout if timed_out else requests_errors.ConnectionError
    return error_class(f"{request}: {exc!r}")
