"""The README's launch script is examples/launcher.py, and it runs as written with the train.sh next to it."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "examples" / "launcher.py"


def _readme_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## A launch script\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's launch script section has no python block"
    return match.group(1)


def test_readme_block_is_the_example_file():
    assert LAUNCHER.read_text().endswith(_readme_block())


def test_readme_launcher_runs_and_prints_every_unit(tmp_path):
    xmanager = Path(sys.executable).with_name("xmanager")
    env = {**os.environ, "XM_DATA_DIR": str(tmp_path / "xm-data")}
    done = subprocess.run(
        [str(xmanager), "launch", str(LAUNCHER)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert [row[1:] for row in rows] == [["64", "0.3000", "completed", "0"], ["1024", "0.0656", "completed", "0"]]
    assert "HEAPPROFILE=/tmp/a.hprof" in done.stdout
