"""Slurm(cluster=...) through a real sshd: every Slurm command runs on the "login node" over SSH.

The login node is this machine, reached through a private sshd (Debian's openssh-server,
installed by the test set-up) whose sessions get the dev cluster's SLURM_CONF; this process
has no SLURM_CONF, so a Slurm command run here instead would fail.
"""

import os
import shutil
import subprocess
import time

import pytest
from xmanager import xm, xm_local
from xmanager.testing.loopback import free_port

pytestmark = pytest.mark.integration

JOB = """
import sys
from xmanager import xm
xm.report(value=int(sys.argv[1].split('=')[1]) * 10)
"""


@pytest.fixture(scope="module")
def login_node(tmp_path_factory, _slurm_daemons):
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None or shutil.which("ssh") is None:
        pytest.skip("openssh-server is not installed; setup_scripts/test.sh installs it")
    folder = tmp_path_factory.mktemp("ssh")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder}/host_key\nPidFile {folder}/sshd.pid\n"
        f"AuthorizedKeysFile {folder}/authorized_keys\nStrictModes no\nPermitRootLogin yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"SetEnv SLURM_CONF={_slurm_daemons.conf} PATH={os.environ['PATH']}\n"
    )
    (folder / "ssh_config").write_text(
        f"Host xmlogin\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {folder}/client_key\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")],
                               stdout=subprocess.DEVNULL, stderr=open(folder / "sshd.log", "wb"))
    config = str(folder / "ssh_config")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if subprocess.run(["ssh", "-F", config, "xmlogin", "true"], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    else:
        process.terminate()
        pytest.fail(f"the private sshd did not accept a login; see {folder}/sshd.log")
    yield config
    process.terminate()
    process.wait(timeout=10)


def test_a_sweep_through_a_login_node(login_node, script, monkeypatch):
    monkeypatch.delenv("SLURM_CONF", raising=False)  # Here, sbatch would not know the cluster.
    path = script(JOB)
    executor = xm_local.Slurm(cluster="xmlogin", ssh_options=("-F", login_node))
    with xm_local.create_experiment("over ssh") as experiment:
        [exe] = experiment.package([xm.binary(executor_spec=xm_local.Slurm.Spec(), path=path)])
        experiment.add_sweep(xm.Job(exe, executor), xm.plist("n", [1, 2, 3]))
    experiment.wait_until_complete()
    assert sorted(experiment.to_dataframe()["value"]) == [10, 20, 30]
