"""The contract every executor plugin must pass, run against each one through the public API.

A launch script (``xmanager launch``, its own process) adds a sweep of contract jobs; other
processes then read, follow and cancel the experiment as a user would (``get_experiment`` in a
fresh interpreter, ``xmanager cancel``). The executors and the services behind them are in
``tests/support/contract_targets.py``; docs/executors.md says how a new plugin joins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import contract_targets
import pytest
from contract_targets import wait_for
from xmanager.xm_local import registry

pytestmark = pytest.mark.integration

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

#: Run in a fresh interpreter: the experiment as another process sees it, after ``action``.
INSPECT = """\
import json, sys
from xmanager import xm_local
experiment = xm_local.get_experiment(sys.argv[1])
error = None
try:
    if sys.argv[2] == "wait":
        experiment.wait_until_complete()
    elif sys.argv[2] == "refresh":
        experiment.refresh()
except Exception as failure:  # Failed or cancelled units: the statuses below say which.
    error = f"{type(failure).__name__}: {failure}"
units = {str(unit_id): {"status": unit.get_status().status.value, "results": unit.results, "args": unit.args}
         for unit_id, unit in experiment.work_units.items()}
print(json.dumps({"units": units, "error": error}))
"""


# ---- the services behind the executors ---------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    from slurm_support import start_or_skip

    cluster = start_or_skip(tmp_path_factory, "contract-slurm", cpus=4)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def vertex_service(tmp_path_factory):
    pytest.importorskip("google.cloud.aiplatform_v1", reason="the Vertex executor needs google-cloud-aiplatform")
    import vertex_servicer

    folder = tmp_path_factory.mktemp("contract-vertex")
    ca_path, key, chain = vertex_servicer.make_tls(str(folder))
    server = vertex_servicer.Server(vertex_servicer.FakeJobService(projects=(vertex_servicer.PROJECT,)), key, chain)
    (folder / "gcloud").mkdir()
    env = {
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": ca_path, "GOOGLE_APPLICATION_CREDENTIALS": vertex_servicer.write_key_file(folder),
        "XM_VERTEX_API_ENDPOINT": server.endpoint, "CLOUDSDK_CONFIG": str(folder / "gcloud"),
        "NO_GCE_CHECK": "true", "GCE_METADATA_HOST": "127.0.0.1:1", "GCE_METADATA_IP": "127.0.0.1:1",
        "NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1",
    }
    yield server.service, env
    server.stop()


@pytest.fixture
def services(request, tmp_path):
    """What the target of this test needs running (only that one is started)."""
    name = request.node.callspec.params["target"]
    if name == "slurm":
        return {"slurm": request.getfixturevalue("slurm_cluster")}
    if name == "kubernetes":
        pytest.importorskip("kubernetes", reason="the Kubernetes executor needs the kubernetes client")
        import fake_apiserver

        server = fake_apiserver.FakeApiServer(token="contract").start()
        request.addfinalizer(server.stop)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {server.url}\n"
            "users:\n- name: tester\n  user:\n    token: contract\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n"
            "current-context: fake\n"
        )
        return {"kubernetes": (server, str(kubeconfig))}
    if name == "vertex":
        service, env = request.getfixturevalue("vertex_service")
        service.reset()
        return {"vertex": (service, env)}
    if name == "vector_engine":
        from xmanager.executors.vector_engine.build import BuildError, build_library

        try:
            build_library({"probe": "int probe(void) { return 0; }"}, language="c", backend="host",
                          build_dir=str(tmp_path / "probe"))
        except BuildError as error:
            pytest.skip(f"cannot build VE kernels for the host backend here: {error}")
    return {}


@pytest.fixture(params=contract_targets.NAMES)
def target(request, services, tmp_path, monkeypatch):
    made = contract_targets.make(request.param, str(tmp_path / "contract"), services)
    for name in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_REGION", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    yield made
    if made.driver is not None:
        made.driver.close()


# ---- driving it as a user would ----------------------------------------------------------------------
#: Put before a launch script: the process kills itself (SIGKILL) as soon as its executor's ``launch``
#: returns, before it stores anything of what was launched (the worst moment for a launcher to die).
KILLED_AFTER_LAUNCH = """\
import os as _os, signal as _signal
from xmanager.xm_local import registry as _registry

_plugin_class = type(_registry.plugin(_os.environ["CONTRACT_EXECUTOR"]))
_open = _plugin_class.open

def _open_killing(self, sink, settings):
    backend = _open(self, sink, settings)
    launch = backend.launch

    def launch_then_die(units):
        launch(units)
        _os.kill(_os.getpid(), _signal.SIGKILL)

    backend.launch = launch_then_die
    return backend

_plugin_class.open = _open_killing
"""


class Launch:
    """``xmanager launch`` of the target's launch script for ``psets``, running in its own process."""

    def __init__(self, target: contract_targets.Target, folder: str, values: list[int], wait: bool,
                 preamble: str = "") -> None:
        script = os.path.join(folder, "launcher.py")
        with open(script, "w") as file:
            file.write(preamble + target.launcher())
        env = {**os.environ, **target.env, "CONTRACT_PSETS": json.dumps(target.psets(values, wait)),
                 "CONTRACT_EXECUTOR": target.name}
        self.process = subprocess.Popen([XMANAGER, "launch", script], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("EXPERIMENT "):
                self.experiment_id = line.split()[1]
                return
        raise AssertionError(f"the launch script printed no experiment id: {self.process.communicate()[1]}")

    def finish(self) -> int:
        """Waits for the launching process (a hang guard only) and returns its exit status."""
        _, stderr = self.process.communicate(timeout=300)
        self.stderr = stderr
        return self.process.returncode


def inspect(target: contract_targets.Target, experiment_id: str, action: str = "read") -> dict[str, dict]:
    """The units as a fresh process sees them after ``action`` (``read``, ``refresh`` or ``wait``)."""
    result = subprocess.run([sys.executable, "-c", INSPECT, experiment_id, action], capture_output=True,
                            text=True, env={**os.environ, **target.env}, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])["units"]


def statuses(units: dict[str, dict]) -> dict[str, str]:
    return {unit_id: unit["status"] for unit_id, unit in units.items()}


def signal(target: contract_targets.Target, name: str) -> str:
    return os.path.join(target.signals, name)


def release(target: contract_targets.Target) -> None:
    open(signal(target, "release"), "w").close()


# ---- the contract -------------------------------------------------------------------------------------
def test_a_batch_runs_and_its_statuses_and_results_reach_the_store(target, tmp_path):
    launch = Launch(target, str(tmp_path), [1, 2, 3], wait=False)
    assert launch.finish() == 0, launch.stderr
    followed = inspect(target, launch.experiment_id, "wait")
    assert statuses(followed) == {"1": "completed", "2": "completed", "3": "completed"}
    assert {unit["args"]["value"] for unit in followed.values()} == {1, 2, 3}
    assert [followed[str(v)]["results"] for v in (1, 2, 3)] == [target.expected_results(v) for v in (1, 2, 3)]
    assert inspect(target, launch.experiment_id) == followed  # What the follower learnt is in the store.


def test_cancel_from_another_process(target, tmp_path):
    launch = Launch(target, str(tmp_path), [1], wait=True)
    wait_for(lambda: os.path.exists(signal(target, "1.started")), "the job to start")
    cancelled = subprocess.run([XMANAGER, "cancel", launch.experiment_id], capture_output=True, text=True,
                               env={**os.environ, **target.env}, timeout=300)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelled 1 work unit(s) of experiment {launch.experiment_id}" in cancelled.stdout
    assert statuses(inspect(target, launch.experiment_id)) == {"1": "cancelled"}
    if target.stops_running_jobs:
        wait_for(lambda: target.stopped(1), "the executor to stop the running job")
    release(target)
    assert launch.finish() == 0, launch.stderr  # A unit cancelled elsewhere is no failure of the launch.
    assert statuses(inspect(target, launch.experiment_id, "wait")) == {"1": "cancelled"}
    if target.stops_running_jobs:
        assert not os.path.exists(signal(target, "1.finished"))
    # Executors that cannot stop a running job let it run while their process lives (the in-process and VE
    # host executors run it in the launcher, which may exit first); either way its record stays cancelled.


def test_units_are_followed_after_the_launching_process_has_exited(target, tmp_path):
    launch = Launch(target, str(tmp_path), [1, 2], wait=True)
    wait_for(lambda: os.path.exists(signal(target, "1.started")), "the job to start")
    if registry.plugin(target.name).detached:  # The launcher leaves the units running.
        assert launch.finish() == 0, launch.stderr
        assert statuses(inspect(target, launch.experiment_id, "refresh"))["1"] == "running"
        release(target)
    else:  # The launcher waits for its units, then exits.
        release(target)
        assert launch.finish() == 0, launch.stderr
    followed = inspect(target, launch.experiment_id, "wait")
    assert statuses(followed) == {"1": "completed", "2": "completed"}
    assert [followed[str(v)]["results"] for v in (1, 2)] == [target.expected_results(v) for v in (1, 2)]
    assert inspect(target, launch.experiment_id, "refresh") == followed


def test_a_launcher_killed_before_it_stored_its_handles_leaves_no_unit_unfinished(target, tmp_path):
    """Killed right after ``launch`` returned: nothing launched was stored but the rows. Detached executors'
    jobs run on: the next process finds them (``ExecutorBackend.recover``), stores their handles and follows
    them to their results. Other executors' jobs are settled as the local faults say (adopted, or failed
    with "launcher died")."""
    detached = registry.plugin(target.name).detached
    launch = Launch(target, str(tmp_path), [1, 2], wait=False, preamble=KILLED_AFTER_LAUNCH)
    assert launch.finish() == -9, launch.stderr
    from xmanager.xm_local import config
    from xmanager.xm_local.store import Store

    store = Store(config.database_url())
    if detached:  # What the follower is left with: rows, no handle.
        assert [job.handle for job in store.jobs(int(launch.experiment_id))] == [None, None]
    followed = inspect(target, launch.experiment_id, "wait")
    assert set(statuses(followed).values()) <= {"completed", "failed"}, followed  # Every unit ended.
    if detached:
        assert statuses(followed) == {"1": "completed", "2": "completed"}
        assert [followed[str(v)]["results"] for v in (1, 2)] == [target.expected_results(v) for v in (1, 2)]
        assert all(job.handle is not None for job in store.jobs(int(launch.experiment_id)))  # Stored for all.
    else:
        failures = [unit.message for unit in store.units(int(launch.experiment_id)) if unit.status == "failed"]
        assert all("launcher died" in message for message in failures), failures
    assert inspect(target, launch.experiment_id) == followed
