"""A local launch never imports google.cloud.aiplatform (it costs seconds to import)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

LAUNCHER = """
import sys
from xmanager import xm, xm_local

def main(argv):
    with xm_local.create_experiment('local-only') as experiment:
        [exe] = experiment.package([xm.binary(xm_local.Local.Spec(), sys.executable, args=['-c', 'pass'])])
        experiment.add(xm.Job(exe, xm_local.Local()))
    # Naming the Vertex executor (without launching on it) must stay cheap too.
    xm_local.Vertex(requirements=xm.JobRequirements(t4=1), project='p')
    xm_local.Vertex.Spec()
    print('UNITS', experiment.status_counts)
    heavy = sorted(m for m in sys.modules if m.startswith(('google.cloud.aiplatform', 'google.api_core', 'grpc')))
    print('HEAVY', heavy)
"""


def test_local_launch_does_not_import_aiplatform(tmp_path):
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    result = subprocess.run([XMANAGER, "launch", str(script)], capture_output=True, text=True, env=os.environ,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "UNITS {'completed': 1}" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout
