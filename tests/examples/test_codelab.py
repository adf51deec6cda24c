"""The codelab notebook runs top to bottom, as Jupyter would run it, and its checks hold."""

import json
import os
import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "codelab.ipynb"

# Runs the code cells in order in one namespace named __main__ (as a kernel does); shell and
# magic lines (! and %) are the Colab set-up and are skipped.
RUNNER = """
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
namespace = {"__name__": "__main__"}
for index, cell in enumerate(cells):
    if cell["cell_type"] != "code":
        continue
    lines = [line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("!", "%"))]
    print(f"--- cell {index}", flush=True)
    exec(compile("\\n".join(lines), f"codelab cell {index}", "exec"), namespace)
print("--- done")
"""


def test_notebook_is_valid_nbformat_4():
    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["nbformat"] == 4
    kinds = {cell["cell_type"] for cell in notebook["cells"]}
    assert kinds == {"markdown", "code"}
    assert all(cell["outputs"] == [] for cell in notebook["cells"] if cell["cell_type"] == "code")


def test_notebook_installs_from_one_variable_without_an_editable_install():
    notebook = json.loads(NOTEBOOK.read_text())
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    installs = [line for cell in code for line in cell.splitlines() if line.lstrip().startswith(("%pip", "!pip"))]
    assert installs == ['%pip install -q "{XM_INSTALL_SOURCE}"'], installs
    assert code[0].startswith("XM_INSTALL_SOURCE = ")


def test_codelab_runs_top_to_bottom_and_leaves_no_temporary_folders(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XM_DATA_DIR"}  # The notebook picks its own folder.
    env["TMPDIR"] = str(temporary)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(NOTEBOOK)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.rstrip().endswith("--- done")
    assert "store and job folders under " + str(temporary) in result.stdout
    assert sorted(path.name for path in temporary.iterdir()) == []
    assert "best: 0.01 64 loss" in result.stdout
    assert "added 3 units" in result.stdout
