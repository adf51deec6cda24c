"""Data directory precedence and verified downloads through a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xmanager.xm.data import config

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    monkeypatch.delenv(config.DIR_ENV, raising=False)
    return h


def test_default_dir(home: Path) -> None:
    expected = home / ".local" / "share" / "xmanager" / "datasets"
    assert config.get_base_dir() == expected
    assert not expected.exists()
    assert config.get_data_dir() == expected
    assert expected.is_dir()  # created on first use
    assert config.get_data_dir("mnist") == expected / "mnist"
    assert (expected / "mnist").is_dir()


def test_env_var_beats_default(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.DIR_ENV, str(tmp_path / "from_env"))
    assert config.get_data_dir() == tmp_path / "from_env"


def test_config_file_beats_env_var(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.DIR_ENV, str(tmp_path / "from_env"))
    (home / ".xmanager-data.cfg").write_text(f"[paths]\ndata_dir = {tmp_path / 'from_cfg'}\n")
    assert config.get_data_dir() == tmp_path / "from_cfg"
    # XM_DATA_CONFIG names another config file, which then is the one consulted
    other = tmp_path / "other.cfg"
    other.write_text("[paths]\ndata_dir = ~/elsewhere\n")
    monkeypatch.setenv(config.CONFIG_ENV, str(other))
    assert config.get_data_dir() == home / "elsewhere"


def test_config_file_without_data_dir_falls_through(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".xmanager-data.cfg").write_text("[other]\nx = 1\n")
    monkeypatch.setenv(config.DIR_ENV, str(tmp_path / "from_env"))
    assert config.get_data_dir() == tmp_path / "from_env"


def test_bad_config_file_names_the_file(home: Path) -> None:
    (home / ".xmanager-data.cfg").write_text("not an ini file\n")
    with pytest.raises(ValueError, match="xmanager-data.cfg"):
        config.get_base_dir()


def test_get_data_path_creates_parent(home: Path) -> None:
    p = config.get_data_path("cifar10", "raw", "data.tar.gz")
    assert p == config.get_base_dir() / "cifar10" / "raw" / "data.tar.gz"
    assert p.parent.is_dir()
    assert not p.exists()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        state = self.server.state  # type: ignore[attr-defined]
        state["hits"] = state.get("hits", 0) + 1
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path == "/flaky" and state["hits"] <= state.get("truncate_first", 0):
            # advertise the full length, then send half and drop the connection
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_download(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, _ = server
    out = config.download(f"{base}/file.bin", tmp_path / "sub" / "file.bin")
    assert out.read_bytes() == PAYLOAD


def test_download_and_verify(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    assert config.download_and_verify(f"{base}/file.bin", PAYLOAD_SHA, dest) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "file.bin.unverified").exists()
    # a verified file already in place is not downloaded again
    hits = state["hits"]
    config.download_and_verify(f"{base}/file.bin", PAYLOAD_SHA.upper(), dest)
    assert state["hits"] == hits


def test_checksum_mismatch_leaves_no_file(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    with pytest.raises(config.DownloadError) as info:
        config.download_and_verify(f"{base}/file.bin", "0" * 64, dest, retries=2)
    message = str(info.value)
    assert f"{base}/file.bin" in message and str(dest) in message and "checksum" in message
    assert state["hits"] == 2
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_is_retried(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    state["truncate_first"] = 2
    dest = tmp_path / "file.bin"
    config.download_and_verify(f"{base}/flaky", PAYLOAD_SHA, dest, retries=3)
    assert state["hits"] == 3
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_truncated_every_time_fails(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    state["truncate_first"] = 10
    with pytest.raises(config.DownloadError, match="flaky"):
        config.download_and_verify(f"{base}/flaky", PAYLOAD_SHA, tmp_path / "f.bin", retries=3)
    assert state["hits"] == 3
    assert list(tmp_path.iterdir()) == []


def test_http_error_names_url(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(config.DownloadError, match="404") as info:
        config.download_and_verify(f"{base}/missing", None, tmp_path / "m.bin", retries=1)
    assert f"{base}/missing" in str(info.value)


def test_unreachable_url_names_url_and_directory(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.tar.gz"
    dest = tmp_path / "ds" / "data.tar.gz"
    with pytest.raises(config.DownloadError) as info:
        config.download_and_verify(url, PAYLOAD_SHA, dest, retries=2)
    message = str(info.value)
    assert url in message
    assert f"put it in {dest.parent}" in message
    assert not dest.exists()


def test_retries_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retries"):
        config.download_and_verify("http://127.0.0.1/x", None, tmp_path / "x", retries=0)


def test_copy_and_verify(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dst = tmp_path / "out" / "dst.bin"
    assert config.copy_and_verify(src, PAYLOAD_SHA, dst) == dst
    assert dst.read_bytes() == PAYLOAD
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(config.DownloadError, match="checksum mismatch copying"):
        config.copy_and_verify(src, "f" * 64, bad)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dst.bin"]
    with pytest.raises(FileNotFoundError, match="nope"):
        config.copy_and_verify(tmp_path / "nope", None, dst)
