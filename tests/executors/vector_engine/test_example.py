"""examples/ve_sweep/launcher.py runs through ``xmanager launch`` on the host backend and shows the kernel's outputs."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from xmanager import xm_local

LAUNCHER = Path(__file__).resolve().parents[3] / "examples" / "ve_sweep" / "launcher.py"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="the host backend compiles kernels with gcc")
def test_ve_sweep_example_runs_and_reads_outputs_from_the_dataframe(tmp_path, data_dir):
    xmanager = os.path.join(os.path.dirname(sys.executable), "xmanager")
    env = {**os.environ, "XM_DATA_DIR": str(data_dir), "XM_VE_BUILD_DIR": str(tmp_path / "ve-build")}
    result = subprocess.run(
        [xmanager, "launch", str(LAUNCHER), "--", "--backend=host"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = re.findall(r"^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+(\w+)$", result.stdout, re.MULTILINE)
    periods = {(float(r), float(x0)): int(period) for r, x0, period, _, _ in rows}
    assert periods[(2.8, 0.5)] == 1 and periods[(3.2, 0.5)] == 2 and periods[(3.5, 0.5)] == 4
    assert periods[(3.56, 0.5)] == 8
    assert {status for *_, status in rows} == {"completed"} and len(rows) == 7
    experiment_id = re.search(r"experiment (\d+):", result.stdout).group(1)
    frame = xm_local.get_experiment(experiment_id).to_dataframe()
    fixed_point = frame[frame["r"] == 2.8].iloc[0]["result_tail"]
    assert fixed_point == pytest.approx([1 - 1 / 2.8] * 8)  # The map's fixed point 1 - 1/r.
