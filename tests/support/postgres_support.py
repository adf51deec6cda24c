"""A private PostgreSQL server for the tests: initdb in a temporary folder, one database per test.

Debian's ``postgresql`` package provides the binaries (setup_scripts/test.sh installs it). The
server listens on 127.0.0.1 on a free port, trusts local connections, runs without fsync, and is
stopped by ``pg_ctl stop`` at the end of the session. PostgreSQL refuses to run as root, so under
root the server runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

import pytest
from xmanager.testing.loopback import free_port


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


class PostgresServer:
    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir
        self.root = tempfile.mkdtemp(prefix="xm-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        result = subprocess.run([*self._as_user, *argv], capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        self._run(f"{self.bin_dir}/initdb", "-D", self.data, "-A", "trust", "-U", "xm", "--no-sync", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run(f"{self.bin_dir}/pg_ctl", "-D", self.data, "-o", options, "-l", f"{self.root}/log", "-w", "start")

    def stop(self) -> None:
        try:
            self._run(f"{self.bin_dir}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=xm dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://xm@127.0.0.1:{self.port}/{name}"


def start_or_skip() -> PostgresServer:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin); setup_scripts/test.sh installs it")
    for module in ("sqlalchemy", "psycopg"):
        pytest.importorskip(module, reason=f"{module} is a test dependency: pip install -e '.[test]'")
    server = PostgresServer(bin_dir)
    server.start()
    return server
