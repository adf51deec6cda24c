"""The study server: REST API parity with experiment-server 0.3.9, client, persistence, reload, access token."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time

import pytest
import requests
from xmanager.testing.loopback import free_port, wait_listening
from xmanager.xm_local.studyserver import Client, StudyServerError, StudyState, serve, server_process
from xmanager.xm_local.studyserver.state import participants_db_path

pytestmark = pytest.mark.integration

STUDY = """\
[configuration]
order = [["a", "b"]]
init_blocks = ["intro"]
final_blocks = ["outro"]
random_seed = 3

[configuration.variables]
SPEED = 2.5

[[blocks]]
name = "intro"
config = { text = "welcome" }

[[blocks]]
name = "base"
config = { speed = "$SPEED", targets = [1, 2] }

[[blocks]]
name = "a"
extends = "base"
config = { hand = "left" }

[[blocks]]
name = "b"
extends = "base"
config = { hand = "right" }

[[blocks]]
name = "outro"
config = { text = "bye" }
"""

NAMES = ["intro", "a", "b", "outro"]
HTML = "text/html; charset=UTF-8"
JSON = "application/json; charset=UTF-8"
NOT_ACTIVE = "participant {} not active. A call to `/move-to-next` must be made before calling `/config`"


class Server:
    def __init__(self, config, **kwargs) -> None:
        self.config = config
        self.kwargs = kwargs
        self.port = free_port()
        self.proc = None

    def start(self) -> Server:
        self.proc = server_process(self.config, port=self.port, **self.kwargs)
        self.proc.start()
        assert wait_listening(self.port, 10, alive=self.proc.is_alive), f"server exited with {self.proc.exitcode}"
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.join(5)

    def client(self, **kwargs) -> Client:
        return Client("127.0.0.1", self.port, **kwargs)

    def raw(self, method: str, path: str, headers=None) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type"), resp.read().decode()
        finally:
            conn.close()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture
def server(config):
    srv = Server(config).start()
    yield srv
    srv.kill()


def test_client_methods(server):
    c = server.client()
    assert c.server_is_active() == (True, False)
    assert c.get_config() == (False, {"message": "status 406 with text: " + NOT_ACTIVE.format(None)})
    assert c.get_blocks_count() == (True, 4)
    assert c.get_block_id() == (True, -1)
    ok, configs = c.get_all_configs()
    assert ok and [cfg["name"] for cfg in configs] == NAMES
    assert configs[1] == {
        "speed": 2.5,
        "targets": [1, 2],
        "hand": "left",
        "participant_index": 1,
        "name": "a",
        "block_id": 1,
    }
    assert c.move_to_next() == (True, {"name": "intro"})
    assert c.server_is_active() == (True, True)
    ok, cfg = c.get_config()
    assert ok and cfg == {"text": "welcome", "participant_index": 1, "name": "intro", "block_id": 0}
    assert c.move_to_block(2) == (True, 2)
    assert c.get_config(1)[1]["name"] == "b"
    assert c.move_to_block(4) == (False, {"message": "status 404 with text: param should be >= 0 and < 4"})
    assert c.move_to_next() == (True, {"name": "outro"})
    assert c.move_to_next() == (True, {"name": "END"})
    assert c.move_to_next() == (True, {"name": "END"})
    assert c.get_block_id() == (True, 4)
    assert c.server_is_active() == (True, False)
    assert c.new_participant() == (True, 2)
    assert c.add_participant(5) == (True, True)
    assert c.add_participant(5) == (False, {"message": "status 406 with text: false"})
    assert c.new_participant() == (True, 6)
    unknown = "Participant with ID 7 not known. Consider initializing new participant."
    assert c.get_config(7) == (False, {"message": f"status 406 with text: {unknown}"})
    assert c.move_to_next(7) == (False, {"message": f"status 406 with text: {unknown}"})
    assert c.move_to_block(1, 5) == (True, 1)
    assert c.get_config(5)[1]["hand"] == "left"
    assert c.get_summary_data(5) == (True, {"participant_index": 5, "configs_length": 4})
    ok, status = c.get_status_string(5)
    assert ok and status == "Participant index: 5    &nbsp;&nbsp;&nbsp;Block: 1 / 4    &nbsp;&nbsp;&nbsp; Name: a"
    assert c.move_all_to_block(3) == (True, 3)
    assert all(c.get_block_id(p) == (True, 3) for p in (1, 2, 5, 6))
    assert c.shutdown() == (True, {"message": "shutting down"})
    with pytest.raises(ConnectionRefusedError):  # The port closed before the answer was sent.
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    server.proc.join(5)
    assert server.proc.exitcode == 0
    with pytest.raises(requests.ConnectionError, match="Connection refused"):  # As experiment-server's client.
        c.get_blocks_count()
    with pytest.raises(AssertionError):  # experiment-server's client asserts its arguments.
        c.move_to_block("1")
    with pytest.raises(TypeError):
        c.get_config("1")
    with pytest.raises(AssertionError):
        c.add_participant(None)


def test_raw_http_codes_bodies_and_types(server):
    raw = server.raw
    assert raw("GET", "/api/config") == (406, HTML, NOT_ACTIVE.format(None))
    assert raw("GET", "/api/config/1") == (406, HTML, NOT_ACTIVE.format(1))
    assert raw("GET", "/api/blocks-count") == (200, HTML, "4")
    assert raw("GET", "/api/block-id/1") == (200, HTML, "-1")
    assert raw("GET", "/api/active") == (200, HTML, "false")
    assert raw("GET", "/api/summary-data") == (200, JSON, '{"participant_index": 1, "configs_length": 4}')
    status, ctype, body = raw("GET", "/api/all-configs")
    assert (status, ctype) == (200, HTML) and json.loads(body)[3]["name"] == "outro" and body.startswith("[\n    {")
    assert raw("GET", "/api/status-string")[2].endswith("Block: -1 / 4    &nbsp;&nbsp;&nbsp; Name: N/A")
    assert raw("POST", "/api/move-to-next") == (200, JSON, '{"name": "intro"}')
    status, ctype, body = raw("GET", "/api/config")
    expected = {"text": "welcome", "participant_index": 1, "name": "intro", "block_id": 0}
    assert (status, ctype, body) == (200, HTML, json.dumps(expected, indent=4))
    assert raw("GET", "/api/active/1") == (200, HTML, "true")
    # Errors.
    unknown = "Participant with ID 9 not known. Consider initializing new participant."
    for path in ("config", "blocks-count", "block-id", "active", "summary-data", "all-configs", "status-string"):
        assert raw("GET", f"/api/{path}/9") == (406, HTML, unknown)
    assert raw("POST", "/api/move-to-next/9") == (406, HTML, unknown)
    assert raw("GET", "/api/nothing") == (404, HTML, "N/A")
    assert raw("GET", "/api/nothing/1/2") == (404, HTML, "N/A")
    assert raw("POST", "/api/nothing") == (404, HTML, "n/a")
    assert raw("PUT", "/api/nothing") == (200, HTML, "")  # 0.3.9 ignores a PUT to any other action.
    status, ctype, body = raw("GET", "/api/config/abc")
    assert (status, ctype) == (404, HTML) and "404: Not Found" in body
    assert raw("GET", "/api/config/1/2/3")[0] == 404
    for path in ("/", "/index", "/index.html"):
        status, ctype, body = raw("GET", path)
        assert (
            (status, ctype) == (200, HTML)
            and body.startswith("<!DOCTYPE html>")
            and "<title>Study server</title>" in body
        )
    assert raw("POST", "/")[0] == 405
    assert raw("GET", "/static/app.js")[0] == 404
    assert raw("DELETE", "/api/config")[0] == 405
    assert raw("POST", "/api/move-to-block") == (404, HTML, "Need atleast one paramter.")
    assert raw("POST", "/api/move-to-block/7") == (404, HTML, "param should be >= 0 and < 4")
    assert raw("POST", "/api/move-to-block/1/2") == (200, HTML, "2")
    assert raw("POST", "/api/move-to-block/9/2") == (406, HTML, unknown)
    assert raw("POST", "/api/move-to-block/99999999999999999999") == (404, HTML, "param should be >= 0 and < 4")
    assert raw("GET", "/api/config/99999999999999999999")[0] == 406
    assert raw("POST", "/api/move-all-to-block") == (404, HTML, "Need atleast one paramter.")
    assert raw("POST", "/api/move-all-to-block/4") == (404, HTML, "param should be >= 0 and < 4")
    assert raw("POST", "/api/move-all-to-block/3") == (200, HTML, "3")
    assert raw("PUT", "/api/new-participant") == (200, HTML, "2")
    assert raw("PUT", "/api/new-participant/4") == (406, HTML, "`new-participant` doesn't take params")
    assert raw("PUT", "/api/add-participant/4") == (200, HTML, "true")
    assert raw("PUT", "/api/add-participant/4") == (406, HTML, "false")
    status, _, body = raw("PUT", "/api/add-participant/0")
    assert (status, body) == (406, "Participant index needs to be greater than 0, got 0")
    assert raw("PUT", "/api/new-participant") == (200, HTML, "5")
    assert raw("POST", "/api/shutdown") == (200, JSON, '{"message": "shutting down"}')
    server.proc.join(5)
    assert server.proc.exitcode == 0


def test_participants_list_and_reset(server):
    """The two endpoints the web UI adds: GET /api/participants and POST /api/reset-participant[/<pid>]."""
    raw = server.raw

    def rows():
        status, ctype, body = raw("GET", "/api/participants")
        assert (status, ctype) == (200, JSON)
        return json.loads(body)

    row1 = {"participant_index": 1, "block_id": -1, "block_name": "START", "active": False, "blocks_count": 4}
    assert rows() == [row1]
    assert raw("PUT", "/api/add-participant/7")[0] == 200
    assert raw("PUT", "/api/add-participant/3")[0] == 200
    assert raw("POST", "/api/move-to-block/3/1")[0] == 200
    assert raw("POST", "/api/move-to-next")[0] == 200
    listed = rows()
    assert [(r["participant_index"], r["block_id"], r["active"]) for r in listed] == [
        (1, 0, True),
        (3, 1, True),
        (7, -1, False),
    ]
    assert [r["block_name"] for r in listed[::2]] == ["intro", "START"] and listed[1]["block_name"] in ("a", "b")
    assert raw("GET", "/api/participants/1") == (404, HTML, "N/A")
    assert raw("PUT", "/api/participants") == (200, HTML, "")
    status, ctype, body = raw("POST", "/api/reset-participant/3")
    assert (status, ctype) == (200, JSON) and json.loads(body) == dict(row1, participant_index=3)
    status, _, body = raw("POST", "/api/reset-participant")
    assert status == 200 and json.loads(body) == row1
    assert raw("GET", "/api/reset-participant/3") == (404, HTML, "N/A")  # Never a GET.
    unknown = "Participant with ID 9 not known. Consider initializing new participant."
    assert raw("POST", "/api/reset-participant/9") == (406, HTML, unknown)
    assert [r["block_id"] for r in rows()] == [-1, -1, -1]
    client = server.client()
    assert client.move_to_next(7) == (True, {"name": "intro"})
    assert client.reset_participant(7) == (True, dict(row1, participant_index=7))
    assert client.reset_participant(9)[0] is False
    ok, listed = client.get_participants()
    assert ok and [r["participant_index"] for r in listed] == [1, 3, 7]


def _recv_until(sock: socket.socket, end: bytes) -> bytes:
    """What the server sends until it ends with ``end`` (or closes): an answer may come in several segments."""
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_keep_alive_and_pipelining(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/api/move-to-next", headers={"Content-Length": "0"})
    assert conn.getresponse().read() == b'{"name": "intro"}'
    sock = conn.sock
    for i in range(300):
        conn.request("GET", "/api/config" if i % 2 else "/api/block-id")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and (json.loads(body)["name"] == "intro" if i % 2 else body == b"0")
    assert conn.sock is sock  # Never reconnected.
    conn.close()
    # The client reuses one connection too.
    c = server.client()
    c.get_blocks_count()
    first = c._conn.sock
    for _ in range(100):
        assert c.get_blocks_count() == (True, 4)
    assert c._conn.sock is first
    c.close()
    # Pipelined requests, one with a body, answered in order; `Connection: close` ends the connection.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /api/block-id HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PUT /api/new-participant HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /api/blocks-count/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    responses = data.split(b"HTTP/1.1 ")[1:]
    assert [r.split(b"\r\n\r\n", 1)[1] for r in responses] == [b"0", b"2", b"4"]
    # HEAD is not allowed (as in Tornado) and its answer has no body: the connection stays usable.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("HEAD", "/api/config")
    resp = conn.getresponse()
    assert resp.status == 405 and resp.read() == b""
    conn.request("GET", "/api/block-id")
    assert conn.getresponse().read() == b"0"
    # `Expect: 100-continue` is answered before the body is read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"PUT /api/new-participant HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        assert _recv_until(sock, b"\r\n\r\n3").startswith(b"HTTP/1.1 200 ")
    # Garbage gets a 400 and the server keeps serving.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    assert server.raw("GET", "/api/block-id")[2] == "0"


def test_chunked_bodies_are_read_and_big_ones_refused(server):
    """A chunked POST or PUT is answered (the hand-written server answered 411); more than 1 MiB is a 413."""

    def exchange(head: bytes, body: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + b"\r\nHost: x\r\nConnection: close\r\n\r\n" + body)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data

    chunked = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    answer = exchange(b"POST /api/move-to-next HTTP/1.1\r\nTransfer-Encoding: chunked", chunked)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'\r\n\r\n{"name": "intro"}')
    answer = exchange(b"PUT /api/new-participant HTTP/1.1\r\nTransfer-Encoding: chunked", chunked)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n2")
    big = b"%x\r\n%s\r\n0\r\n\r\n" % (1024 * 1024 + 1, b"x" * (1024 * 1024 + 1))
    answer = exchange(b"PUT /api/new-participant HTTP/1.1\r\nTransfer-Encoding: chunked", big)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"413: Payload Too Large" in answer
    assert server.client().get_blocks_count(3) == (False, {"message": "status 406 with text: "
                                                 "Participant with ID 3 not known. Consider initializing new participant."})
    assert server.client().get_block_id() == (True, 0)


def test_client_and_state_need_no_web_stack(tmp_path):
    """Without Starlette (not installed): the client, the state and the study commands work; serve says what is missing."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "import xmanager.xm_local.studyserver as s\n"
        "from xmanager.xm_local.studyserver import Client, StudyState\n"
        "assert s._api.StudyState is StudyState\n"
        "try:\n"
        "    s.serve\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("starlette is not installed: ") and "[study]" in done.stdout


def test_sigkill_and_restart_keeps_participants(config):
    srv = Server(config, persist=True).start()
    try:
        c = srv.client()
        assert c.move_to_next() == (True, {"name": "intro"})
        assert c.new_participant() == (True, 2)
        assert c.add_participant(10) == (True, True)
        assert c.move_to_block(2, 10) == (True, 2)
        assert c.move_to_next(10) == (True, {"name": "outro"})
        srv.kill()
        assert srv.proc.exitcode == -signal.SIGKILL
        assert os.path.exists(participants_db_path(config))
        srv.start()
        assert c.get_block_id(1) == (True, 0)  # The same client: it reconnects by itself.
        assert c.get_block_id(2) == (True, -1)
        assert c.get_block_id(10) == (True, 3)
        assert c.get_config(10)[1]["name"] == "outro"
        assert c.new_participant() == (True, 11)
    finally:
        srv.kill()


def test_config_edit_is_served_and_state_kept(config):
    srv = Server(config).start()
    try:
        c = srv.client()
        c.move_to_next()
        c.move_to_next()
        c.add_participant(3)
        c.move_all_to_block(3)
        assert c.get_all_configs()[1][1]["speed"] == 2.5
        # A new value and one block fewer: participants and block ids stay, as 0.3.9 (3 is past the new end).
        edited = STUDY.replace("SPEED = 2.5", "SPEED = 4.0").replace('final_blocks = ["outro"]', "final_blocks = []")
        config.write_text(edited)
        st = os.stat(config)
        os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert c.get_blocks_count() == (True, 3)  # Seen by the next request.
        assert c.get_block_id(1) == (True, 3)
        assert c.get_block_id(3) == (True, 3)
        assert c.move_to_block(1) == (True, 1)
        assert c.get_config()[1] == {
            "speed": 4.0,
            "targets": [1, 2],
            "hand": "left",
            "participant_index": 1,
            "name": "a",
            "block_id": 1,
        }
        # A broken edit is ignored: the previous config keeps being served.
        config.write_text("[configuration\n")
        os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        assert c.get_config()[1]["speed"] == 4.0
        assert c.get_blocks_count(3) == (True, 3)
    finally:
        srv.kill()


def test_sigterm_stops_cleanly(config):
    srv = Server(config, persist=True).start()
    try:
        assert srv.client().move_to_next() == (True, {"name": "intro"})
        os.kill(srv.proc.pid, signal.SIGTERM)
        srv.proc.join(5)
        assert srv.proc.exitcode == 0
        srv.start()
        assert srv.client().get_block_id() == (True, 0)
    finally:
        srv.kill()


def test_idle_keep_alive_connections_are_closed(config):
    port = free_port()
    thread = threading.Thread(target=serve, args=(config,), kwargs={"port": port, "idle_timeout": 0.3})
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                idle = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        with idle:
            idle.sendall(b"GET /api/block-id HTTP/1.1\r\n\r\n")
            assert _recv_until(idle, b"\r\n\r\n-1").startswith(b"HTTP/1.1 200 ")
            assert idle.recv(65536) == b""  # Closed by the server after 0.3 s without a request.
    finally:
        Client("127.0.0.1", port).shutdown()
        thread.join(5)
    assert not thread.is_alive()


def test_without_persist_nothing_is_written_and_a_restart_starts_afresh(config):
    """As experiment-server 0.3.9: participants live in memory; no file is written next to the config."""
    srv = Server(config).start()
    try:
        c = srv.client()
        assert c.move_to_next() == (True, {"name": "intro"})
        assert c.new_participant() == (True, 2)
        assert c.shutdown()[0]
        srv.proc.join(5)
        assert sorted(os.listdir(config.parent)) == [config.name]
        srv.start()
        assert c.get_block_id() == (True, -1) and c.get_blocks_count(2)[0] is False
    finally:
        srv.kill()


def test_non_loopback_bind_needs_a_token_or_insecure(config):
    """Unlike experiment-server 0.3.9, an address other than loopback is served only with a token (or insecure)."""
    for host in ("0.0.0.0", "192.0.2.1", "::", ""):
        with pytest.raises(StudyServerError, match="^refusing to bind .* without an access token: .*insecure=True"):
            serve(config, host=host, port=free_port())
        with pytest.raises(StudyServerError, match="without an access token"):  # Before a process is started.
            server_process(config, host=host, port=free_port())
    with pytest.raises(StudyServerError, match="without an access token"):
        serve(config, host="0.0.0.0", port=free_port(), token="")
    with pytest.raises(StudyServerError, match="must not be empty"):
        serve(config, port=free_port(), token="")
    # Loopback needs nothing, so local clients work as they did; insecure=True serves any address without a token.
    for kwargs in ({"host": "localhost"}, {"host": "0.0.0.0", "insecure": True}):
        srv = Server(config, **kwargs).start()
        try:
            assert srv.client().move_to_next() == (True, {"name": "intro"})
            assert srv.client().shutdown()[0]
            srv.proc.join(5)
            assert srv.proc.exitcode == 0
        finally:
            srv.kill()


def test_a_token_guards_post_and_put(config):
    """A token (ours, opt-in on loopback, needed off it) guards every POST and PUT."""
    srv = Server(config, host="0.0.0.0", token="s3cret").start()
    try:
        anonymous = srv.client()
        assert anonymous.get_blocks_count() == (True, 4)  # Reading needs no token.
        assert anonymous.move_to_next() == (False, {"message": "status 401 with text: unauthorized"})
        assert srv.client(token="wrong").new_participant()[0] is False
        status, _, _ = srv.raw("PUT", "/api/new-participant", {"Authorization": "Basic s3cret"})
        assert status == 401
        assert anonymous.shutdown()[0] is False
        assert srv.raw("POST", "/api/reset-participant/1")[0] == 401
        status, _, page = srv.raw("GET", "/")
        assert status == 200 and "s3cret" not in page and 'id="token"' in page
        authorized = srv.client(token="s3cret")
        assert authorized.move_to_next() == (True, {"name": "intro"})
        assert authorized.new_participant() == (True, 2)
        assert srv.raw("PUT", "/api/new-participant", {"Authorization": "Bearer s3cret"})[:1] == (200,)
        assert authorized.shutdown() == (True, {"message": "shutting down"})
        srv.proc.join(5)
        assert srv.proc.exitcode == 0
    finally:
        srv.kill()


def test_state_operations_and_reload(config):
    state = StudyState(config, default_participant=2)
    try:
        assert sorted(state.participants) == [2]
        assert state.get_config() is None and not state.get_active()
        assert state.move_to_block(-5) == "START" and state.get_block_id() == -1
        assert state.move_to_block(99) == "END" and state.get_block_id() == 4
        assert state.move_to_block(1) == "a" and state.get_config()["hand"] == "left"
        assert state.new_participant() == 3
        assert state.add_participant(1) is True and state.add_participant(1) is False
        assert state.new_participant() == 4
        state.move_all_to_block(2)
        assert {p.block_id for p in state.participants.values()} == {2}
        assert len(state.get_all_configs(4)) == state.get_blocks_count(4) == 4
        assert state.reset_participant(4) is True
        assert state.get_block_id(4) == 2  # Blocks rebuilt, block id kept (experiment-server's reset).
        config.write_text(STUDY.replace('order = [["a", "b"]]', 'order = [["a"]]'))
        state.reload()
        assert state.get_blocks_count() == 3 and state.get_block_id() == 2 and state.get_config()["name"] == "outro"
    finally:
        state.close()
    again = StudyState(config)  # Re-loaded from the SQLite file.
    try:
        assert {pid: p.block_id for pid, p in again.participants.items()} == {1: 2, 2: 2, 3: 2, 4: 2}
    finally:
        again.close()
