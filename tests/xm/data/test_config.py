"""Data directory precedence, and batchup's config helpers beyond what batchup's own tests pin."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from xmanager.xm.data import config

PAYLOAD = b"hello world"
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
    assert config.dataset_dir("mnist") == expected / "mnist"
    assert (expected / "mnist").is_dir()  # created on first use


def test_batchup_names_live_under_the_data_directory(home: Path) -> None:
    base = home / ".local" / "share" / "xmanager" / "datasets"
    assert config.get_batchup_path() == str(base)
    assert base.is_dir()
    assert config.get_data_dir() == os.path.join(str(base), "data")
    assert config.get_data_path("mnist.h5") == os.path.join(str(base), "data", "mnist.h5")
    assert config.get_data_path(Path("/abs/x.h5")) == "/abs/x.h5"
    assert not (base / "data").exists()  # batchup does not create it either


def test_data_directory_that_is_a_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(config.DIR_ENV, str(tmp_path / "file"))
    with pytest.raises(RuntimeError, match="not a directory"):
        config.get_batchup_path()


def test_env_var_beats_default(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.DIR_ENV, str(tmp_path / "from_env"))
    assert config.get_base_dir() == tmp_path / "from_env"


def test_config_file_beats_env_var(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.DIR_ENV, str(tmp_path / "from_env"))
    (home / ".xmanager-data.cfg").write_text(f"[paths]\ndata_dir = {tmp_path / 'from_cfg'}\n")
    assert config.get_base_dir() == tmp_path / "from_cfg"
    # XM_DATA_CONFIG names another config file, which then is the one consulted
    other = tmp_path / "other.cfg"
    other.write_text("[paths]\ndata_dir = ~/elsewhere\n")
    monkeypatch.setenv(config.CONFIG_ENV, str(other))
    assert config.get_base_dir() == home / "elsewhere"


def test_config_file_without_data_dir_falls_through(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".xmanager-data.cfg").write_text("[other]\nx = 1\n")
    monkeypatch.setenv(config.DIR_ENV, str(tmp_path / "from_env"))
    assert config.get_base_dir() == tmp_path / "from_env"


def test_bad_config_file_names_the_file(home: Path) -> None:
    (home / ".xmanager-data.cfg").write_text("not an ini file\n")
    with pytest.raises(ValueError, match="xmanager-data.cfg"):
        config.get_base_dir()


def test_existing_file_with_the_wrong_digest_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []

    def fake_urlretrieve(url: str, path: str, reporthook: object) -> None:
        calls.append(url)
        Path(path).write_bytes(PAYLOAD)

    monkeypatch.setattr(config, "urlretrieve", fake_urlretrieve)
    dest = tmp_path / "d.bin"
    dest.write_bytes(b"corrupt")
    assert config.download_and_verify(str(dest), "http://host/d.bin", PAYLOAD_SHA) == str(dest)
    assert calls == ["http://host/d.bin"]
    assert dest.read_bytes() == PAYLOAD
    assert "does not have the expected SHA-256" in capsys.readouterr().out
    # a stale .unverified file from an interrupted run is never trusted
    dest.unlink()
    (tmp_path / "d.bin.unverified").write_bytes(b"stale")
    assert config.download_and_verify(str(dest), "http://host/d.bin", PAYLOAD_SHA) == str(dest)
    assert len(calls) == 2 and dest.read_bytes() == PAYLOAD


def test_copy_and_verify_missing_source(tmp_path: Path) -> None:
    assert config.copy_and_verify(str(tmp_path / "out"), str(tmp_path / "nope"), None) is None
    assert not (tmp_path / "out").exists()


def test_progress_without_a_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def fake_urlretrieve(url: str, path: str, reporthook) -> None:  # a server that sends no Content-Length
        Path(path).write_bytes(PAYLOAD)
        reporthook(1, 8192, -1)

    monkeypatch.setattr(config, "urlretrieve", fake_urlretrieve)
    config.download(str(tmp_path / "x"), "http://host/x")
    assert "Downloading x 8192 bytes" in capsys.readouterr().out
