"""Status codes of malformed and odd routes, as experiment-server 0.3.9 answers them; no folders in error bodies.

The expected codes were observed on experiment-server 0.3.9 (Tornado 6.6) serving a study like the one
below: its API routes are ``/api/<action>`` with zero, one or two ids of ASCII digits, and every other path
falls to a static-file handler (GET and HEAD 404, any other method 405). Where 0.3.9 fails with a 500
we answer a 4xx (documented in docs/studies.md).
"""

from __future__ import annotations

import http.client

import pytest
import studyserver_support

pytestmark = pytest.mark.integration

STUDY = """\
[configuration]
order = [["a", "b", "c"]]

[[blocks]]
name = "a"
config = { x = 1 }

[[blocks]]
name = "b"
config = { x = 2 }

[[blocks]]
name = "c"
config = { x = 3 }
"""

# (method, path, experiment-server 0.3.9, ours), requested in this order on one server.
ROUTES = [
    # Not an API route (an id that is not ASCII digits, a third id, a trailing slash, no action): GET/HEAD 404, else 405.
    ("POST", "/api/move-to-next/abc", 405, 405),
    ("GET", "/api/move-to-next/abc", 404, 404),
    ("HEAD", "/api/move-to-next/abc", 404, 404),
    ("PUT", "/api/move-to-next/abc", 405, 405),
    ("DELETE", "/api/move-to-next/abc", 405, 405),
    ("POST", "/api/move-to-next/-1", 405, 405),
    ("POST", "/api/move-to-next/1.5", 405, 405),
    ("POST", "/api/move-to-next/%31", 405, 405),
    ("POST", "/api/move-to-next/%D9%A1", 405, 405),
    ("POST", "/api/move-to-next/", 405, 405),
    ("POST", "/api/move-to-next/1/", 405, 405),
    ("POST", "/api/move-to-block/1/2/3", 405, 405),
    ("GET", "/api/config/1/2/3", 404, 404),
    ("GET", "/api/config/abc", 404, 404),
    ("PUT", "/api/add-participant/abc", 405, 405),
    ("POST", "/api/config/1/abc", 405, 405),
    ("POST", "/api/config/abc/1", 405, 405),
    ("GET", "/api", 404, 404),
    ("POST", "/api", 405, 405),
    ("POST", "/api/", 405, 405),
    ("POST", "/api//1", 405, 405),
    # API routes: methods other than GET, POST and PUT are 405 (HEAD too).
    ("DELETE", "/api/config", 405, 405),
    ("PATCH", "/api/config/1", 405, 405),
    ("OPTIONS", "/api/move-to-next", 405, 405),
    ("HEAD", "/api/config", 405, 405),
    # An action the method does not have.
    ("GET", "/api/move-to-next", 404, 404),
    ("POST", "/api/config", 404, 404),
    ("POST", "/api/nothing/1/2", 404, 404),
    ("PUT", "/api/config", 200, 200),  # A PUT to an action without one does nothing.
    ("PUT", "/api/shutdown", 200, 200),
    ("PUT", "/api/nothing/1", 200, 200),
    # A second id where none is taken.
    ("POST", "/api/move-to-next/1/2", 404, 404),
    ("POST", "/api/move-all-to-block/1/2", 404, 404),
    ("POST", "/api/move-to-block/1/2", 200, 200),
    ("PUT", "/api/new-participant/1", 406, 406),
    ("PUT", "/api/add-participant/1", 406, 406),
    ("POST", "/api/move-to-block", 404, 404),
    # Pages.
    ("GET", "/", 200, 200),
    ("HEAD", "/", 200, 200),
    ("POST", "/", 405, 405),
    ("POST", "/index", 405, 405),
    ("GET", "/foo", 404, 404),
    ("HEAD", "/foo/bar", 404, 404),
    ("PUT", "/foo", 405, 405),
    # 0.3.9 fails with a 500 here (a handler called with an id too many, or int(None)); we answer a 4xx.
    ("GET", "/api/config/1/2", 500, 404),
    ("PUT", "/api/config/1/2", 500, 404),
    ("GET", "/api/shutdown/1/2", 500, 404),
    ("PUT", "/api/new-participant/1/2", 500, 404),
    ("PUT", "/api/add-participant", 500, 406),
    ("POST", "/api/move-all-to-block", 500, 404),
]


def _request(port: int, method: str, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def study(tmp_path):
    folder = tmp_path / "private" / "folders"
    folder.mkdir(parents=True)
    path = folder / "study.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture
def server(study):
    proc, port = studyserver_support.start(study)
    yield port
    proc.terminate()
    proc.join(10)


def test_status_codes_of_routes(server):
    got = [(method, path, _request(server, method, path)[0]) for method, path, _, _ in ROUTES]
    assert got == [(method, path, ours) for method, path, _, ours in ROUTES]
    assert all(peer == ours for _, _, peer, ours in ROUTES if peer != 500)


def test_an_id_too_many_moves_nobody(server):
    assert _request(server, "POST", "/api/move-to-next/1/2") == (404, "unknown second parameter 2")
    assert _request(server, "GET", "/api/block-id/1") == (200, "-1")  # 0.3.9 moves participant 1 all the same.


def test_error_bodies_are_experiment_server_s_messages(server, study):
    status, body = _request(server, "PUT", "/api/add-participant/0")
    assert (status, body) == (406, "Participant index needs to be greater than 0, got 0")  # 0.3.9's e.message
    status, page = _request(server, "GET", "/")
    assert status == 200 and '"study.toml"' in page
    for text in (body, page):
        assert str(study.parent) not in text and "private" not in text


def test_relative_config_path_is_shown_by_name(study, monkeypatch):
    monkeypatch.chdir(study.parent.parent)
    proc, port = studyserver_support.start("folders/study.toml")
    try:
        status, page = _request(port, "GET", "/")
        assert status == 200 and '"study.toml"' in page and "folders/" not in page
    finally:
        proc.terminate()
        proc.join(10)
