"""Every test gets its own data directory, so the store and job folders are fresh."""

import os
import sys

import pytest


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "xm-data"
    monkeypatch.setenv("XM_DATA_DIR", str(folder))
    monkeypatch.delenv("XM_DATABASE_URL", raising=False)
    monkeypatch.delenv("XM_LAUNCH_SCRIPT", raising=False)
    return folder


@pytest.fixture
def python():
    return sys.executable


@pytest.fixture
def script(tmp_path):
    """Writes an executable Python script and returns its path."""

    def write(body: str, name: str = "job.py") -> str:
        path = tmp_path / name
        path.write_text(f"#!{sys.executable}\n{body}")
        os.chmod(path, 0o755)
        return str(path)

    return write


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the session (skipped with the reason when PostgreSQL is missing)."""
    import postgres_support

    server = postgres_support.start_or_skip()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a fresh database on the session's PostgreSQL server."""
    return postgres_server.new_database()
