"""A single-node Slurm cluster in a folder, for tests, benchmarks and trying the executor. NOT FOR PRODUCTION.

Needs Debian's ``slurm-wlm`` (slurmctld, slurmd and the clients) and root (the daemons
run as root with ``auth/none``, so no munge is needed). Every state, spool, pid and log
file lives under the run folder; the daemons run in the foreground as children of the
process that started them and are stopped by PID. Finished jobs stay visible to
``squeue`` for ``MinJobAge`` seconds and are written to a job completion file.

With ``accounting=True`` it also runs a private MariaDB (on loopback, data under the
run folder) and ``slurmdbd``, so ``sacct`` works (needs Debian's ``slurmdbd`` and
``mariadb-server``).

    xmanager devcluster slurm start DIR   # prints: export SLURM_CONF=...
    xmanager devcluster slurm status DIR
    xmanager devcluster slurm stop DIR
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Any, Optional

import attrs
from xmanager.testing.loopback import free_port, wait_listening

PACKAGE_HINT = "install Debian's slurm-wlm (apt-get install slurm-wlm)"
_PIDS = "daemons.pids"
_DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "mariadbd")

_CONF = """\
ClusterName=xmdev
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
{accounting}
JobCompType=jobcomp/filetxt
JobCompLoc={run}/jobcomp.txt
StateSaveLocation={run}/state
SlurmdSpoolDir={run}/spool
SlurmctldPidFile={run}/slurmctld.pid
SlurmdPidFile={run}/slurmd.pid
SlurmctldLogFile={run}/slurmctld.log
SlurmdLogFile={run}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
MinJobAge={min_job_age}
MaxJobCount=200000
MaxArraySize={max_array_size}
ReturnToService=2
EnforcePartLimits=ALL
MpiDefault=none
MailProg=/bin/true
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=10000
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=ALL MaxTime=00:01:00 State=UP
"""


_NO_ACCOUNTING = "AccountingStorageType=accounting_storage/none"
_ACCOUNTING = """AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={dbd_port}"""
_DBD_CONF = """AuthType=auth/none
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=root
StorageLoc=slurm_acct_db
PidFile={run}/slurmdbd.pid
LogFile={run}/slurmdbd.log
"""


class DevClusterError(RuntimeError):
    """The cluster could not be started (the message says why and where the logs are)."""


def missing_programs(accounting: bool = False) -> list[str]:
    names = ["slurmctld", "slurmd", "sbatch", "squeue", "scontrol"]
    if accounting:
        names += ["slurmdbd", "sacctmgr", "mariadbd", "mariadb-install-db"]
    return [name for name in names if not shutil.which(name)]


@attrs.define
class DevCluster:
    """A running single-node cluster; ``env`` is what Slurm's clients need (``SLURM_CONF``)."""

    run_dir: str
    conf: str
    processes: list[subprocess.Popen[bytes]] = attrs.field(factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": self.conf}

    @property
    def jobcomp(self) -> str:
        return os.path.join(self.run_dir, "jobcomp.txt")

    def stop(self) -> None:
        """Cancels every job, then stops the daemons (by PID) and waits for them."""
        env = {**os.environ, "SLURM_CONF": self.conf}
        if self.processes and all(process.poll() is None for process in self.processes):
            subprocess.run(["scancel", "--quiet", f"--user={os.getuid()}"], env=env, capture_output=True)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # Let slurmd stop the jobs' steps.
                running = subprocess.run(["squeue", "-h", "-t", "RUNNING,COMPLETING"], env=env,
                                         capture_output=True, text=True).stdout.strip()
                if not running:
                    break
                time.sleep(0.2)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def start(
    run_dir: str,
    *,
    cpus: int = 16,
    memory_mb: int = 8000,
    max_array_size: int = 1001,
    min_job_age: int = 600,
    accounting: bool = False,
    timeout: float = 60.0,
) -> DevCluster:
    """Starts slurmctld and slurmd (and, with ``accounting``, MariaDB and slurmdbd) with state
    under ``run_dir``; returns once the node is idle."""
    missing = missing_programs(accounting)
    if missing:
        hint = PACKAGE_HINT + (" slurmdbd mariadb-server" if accounting else "")
        raise DevClusterError(f"{', '.join(missing)} not found on PATH; {hint}")
    if os.geteuid() != 0:
        raise DevClusterError("the dev cluster's daemons run as root (SlurmUser=root); run as root")
    run_dir = os.path.abspath(run_dir)
    for sub in ("state", "spool"):
        os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
    conf = os.path.join(run_dir, "slurm.conf")
    dbd_port, db_port = free_port(), free_port()
    with open(conf, "w") as handle:
        handle.write(
            _CONF.format(
                run=run_dir, ctld_port=free_port(), slurmd_port=free_port(), cpus=cpus,
                memory_mb=memory_mb, max_array_size=max_array_size, min_job_age=min_job_age,
                accounting=_ACCOUNTING.format(dbd_port=dbd_port) if accounting else _NO_ACCOUNTING,
            )
        )
    env = {**os.environ, "SLURM_CONF": conf}
    cluster = DevCluster(run_dir, conf)
    logs = open(os.path.join(run_dir, "daemons.out"), "ab")  # noqa: SIM115 - owned by the daemons.

    def spawn(command: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=env, stdout=logs, stderr=logs, stdin=subprocess.DEVNULL)
        cluster.processes.append(process)
        return process

    try:
        if accounting:
            _start_accounting(run_dir, conf, db_port, dbd_port, spawn, env, timeout)
        spawn(["slurmctld", "-D", "-i", "-f", conf])
        spawn(["slurmd", "-D", "-N", "localhost", "-f", conf])
        _wait_idle(cluster, env, timeout)
    except BaseException:
        cluster.stop()
        raise
    finally:
        logs.close()
    return cluster


def _start_accounting(run_dir: str, conf: str, db_port: int, dbd_port: int, spawn: Any, env: dict[str, str],
                      timeout: float) -> None:
    """A private MariaDB (no grant tables: loopback only, throwaway data) and slurmdbd."""
    data = os.path.join(run_dir, "mysql")
    if not os.path.isdir(os.path.join(data, "mysql")):
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db"],
            check=True, capture_output=True,
        )
    spawn(["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={run_dir}/mysql.sock",
           f"--port={db_port}", "--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables",
           f"--pid-file={run_dir}/mariadbd.pid", "--skip-log-bin"])
    _wait_port(db_port, timeout, "mariadbd", run_dir)
    dbd_conf = os.path.join(run_dir, "slurmdbd.conf")
    with open(os.open(dbd_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(_DBD_CONF.format(run=run_dir, dbd_port=dbd_port, db_port=db_port))
    spawn(["slurmdbd", "-D"])
    _wait_port(dbd_port, timeout, "slurmdbd", run_dir)
    subprocess.run(["sacctmgr", "-i", "add", "cluster", "xmdev"], env=env, capture_output=True, timeout=30)


def _wait_port(port: int, timeout: float, name: str, run_dir: str) -> None:
    if wait_listening(port, timeout):
        return
    raise DevClusterError(f"{name} is not listening on port {port} after {timeout:.0f} s; see {run_dir}")


def _wait_idle(cluster: DevCluster, env: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state: Optional[str] = None
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if process.poll() is not None:
                program = process.args[0] if isinstance(process.args, list) else process.args
                raise DevClusterError(f"{program!s} exited with {process.returncode}; see {cluster.run_dir}/*.log")
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
        state = result.stdout.strip()
        if result.returncode == 0 and state.startswith("idle"):
            return
        time.sleep(0.1)
    raise DevClusterError(f"the node is not idle after {timeout:.0f} s (state {state!r}); see {cluster.run_dir}")


def record(cluster: DevCluster) -> None:
    """Writes the daemons' PIDs in the run folder, for :func:`stop_recorded` from another process."""
    with open(os.path.join(cluster.run_dir, _PIDS), "w") as handle:
        handle.write(" ".join(str(process.pid) for process in cluster.processes))


def _recorded_daemons(run_dir: str) -> Optional[list[int]]:
    """PIDs :func:`record` wrote that still belong to a Slurm (or MariaDB) daemon; None without a record."""
    try:
        with open(os.path.join(run_dir, _PIDS)) as handle:
            numbers = [int(pid) for pid in handle.read().split()]
    except FileNotFoundError:
        return None
    alive = []
    for pid in numbers:
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() in _DAEMONS:  # Else the PID was reused by another program.
                    alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


def status(run_dir: str) -> str:
    """One line: whether the recorded cluster of ``run_dir`` runs, and its ``SLURM_CONF``."""
    alive = _recorded_daemons(run_dir)
    if alive is None:
        raise DevClusterError(f"no dev cluster recorded in {run_dir}")
    if not alive:
        return f"stopped (the daemons recorded in {run_dir} are gone)"
    return f"running: {len(alive)} daemon(s), pids {' '.join(map(str, alive))}; SLURM_CONF={run_dir}/slurm.conf"


def stop_recorded(run_dir: str) -> None:
    """Cancels every job and stops the daemons :func:`record` wrote."""
    alive = _recorded_daemons(run_dir)
    if alive is None:
        raise DevClusterError(f"no dev cluster recorded in {run_dir}")
    if alive:
        conf = os.path.join(run_dir, "slurm.conf")
        subprocess.run(["scancel", "--quiet", f"--user={os.getuid()}"], env={**os.environ, "SLURM_CONF": conf},
                       capture_output=True)
        time.sleep(1)  # Let slurmd stop the jobs' steps before it goes.
    for pid in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    os.remove(os.path.join(run_dir, _PIDS))
