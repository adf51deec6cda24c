"""The SQLite store is complete in its .sqlite3 file once the launcher has exited (its WAL checkpointed)."""

import os
import shutil
import sqlite3
import subprocess
import sys

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

LAUNCHER = """
from xmanager import xm, xm_local

def main(argv):
    with xm_local.create_experiment('backup') as experiment:
        [exe] = experiment.package([xm.binary(xm_local.Local.Spec(), '/bin/true')])
        experiment.add_sweep(xm.Job(exe, xm_local.Local()), [{'i': i} for i in range(25)])
"""


def _counts(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("experiments", "work_units", "jobs")}
    finally:
        db.close()


def test_copying_only_the_sqlite3_file_after_a_launch_gives_every_row(tmp_path, data_dir):
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    for _ in range(2):  # The second launch writes into a store that exists already.
        done = subprocess.run([XMANAGER, "launch", "launcher.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    store = data_dir / "xmanager.sqlite3"
    wal = data_dir / "xmanager.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # Checkpointed and truncated when the launcher exited.
    backup = tmp_path / "backup"
    backup.mkdir()
    shutil.copy(store, backup / "xmanager.sqlite3")  # The file alone, as a naive backup does.
    assert _counts(backup / "xmanager.sqlite3") == {"experiments": 2, "work_units": 50, "jobs": 50}
    assert _counts(store) == _counts(backup / "xmanager.sqlite3")


def test_a_reader_in_another_process_does_not_block_the_closing_checkpoint(tmp_path, data_dir):
    """The checkpoint at exit waits at most a moment for another process's open read transaction."""
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    assert subprocess.run([XMANAGER, "launch", "launcher.py"], cwd=tmp_path, capture_output=True,
                          timeout=120).returncode == 0
    reader = sqlite3.connect(data_dir / "xmanager.sqlite3", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM work_units").fetchone()  # Holds a read snapshot open.
        done = subprocess.run([XMANAGER, "launch", "launcher.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert _counts(data_dir / "xmanager.sqlite3")["work_units"] == 50
