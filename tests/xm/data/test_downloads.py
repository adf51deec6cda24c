"""Verified downloads (xmanager.xm.data.downloads) through a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xmanager.xm.data import downloads

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


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


def test_fetch_url(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, _ = server
    out = downloads.fetch_url(f"{base}/file.bin", tmp_path / "sub" / "file.bin")
    assert out.read_bytes() == PAYLOAD


def test_fetch_verified(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    assert downloads.fetch_verified(f"{base}/file.bin", PAYLOAD_SHA, dest) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "file.bin.unverified").exists()
    # a verified file already in place is not downloaded again
    hits = state["hits"]
    downloads.fetch_verified(f"{base}/file.bin", PAYLOAD_SHA.upper(), dest)
    assert state["hits"] == hits


def test_checksum_mismatch_leaves_no_file(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    dest = tmp_path / "file.bin"
    with pytest.raises(downloads.DownloadError) as info:
        downloads.fetch_verified(f"{base}/file.bin", "0" * 64, dest, retries=2)
    message = str(info.value)
    assert f"{base}/file.bin" in message and str(dest) in message and "checksum" in message
    assert state["hits"] == 2
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_is_retried(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    state["truncate_first"] = 2
    dest = tmp_path / "file.bin"
    downloads.fetch_verified(f"{base}/flaky", PAYLOAD_SHA, dest, retries=3)
    assert state["hits"] == 3
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_truncated_every_time_fails(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, state = server
    state["truncate_first"] = 10
    with pytest.raises(downloads.DownloadError, match="flaky"):
        downloads.fetch_verified(f"{base}/flaky", PAYLOAD_SHA, tmp_path / "f.bin", retries=3)
    assert state["hits"] == 3
    assert list(tmp_path.iterdir()) == []


def test_http_error_names_url(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(downloads.DownloadError, match="404") as info:
        downloads.fetch_verified(f"{base}/missing", None, tmp_path / "m.bin", retries=1)
    assert f"{base}/missing" in str(info.value)


def test_unreachable_url_names_url_and_directory(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.tar.gz"
    dest = tmp_path / "ds" / "data.tar.gz"
    with pytest.raises(downloads.DownloadError) as info:
        downloads.fetch_verified(url, PAYLOAD_SHA, dest, retries=2)
    message = str(info.value)
    assert url in message
    assert f"put it in {dest.parent}" in message
    assert not dest.exists()


def test_retries_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retries"):
        downloads.fetch_verified("http://127.0.0.1/x", None, tmp_path / "x", retries=0)


def test_copy_verified(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dst = tmp_path / "out" / "dst.bin"
    assert downloads.copy_verified(src, PAYLOAD_SHA, dst) == dst
    assert dst.read_bytes() == PAYLOAD
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(downloads.DownloadError, match="checksum mismatch copying"):
        downloads.copy_verified(src, "f" * 64, bad)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dst.bin"]
    with pytest.raises(FileNotFoundError, match="nope"):
        downloads.copy_verified(tmp_path / "nope", None, dst)
