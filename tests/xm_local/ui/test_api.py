"""The dashboard's routes through Starlette's TestClient: pages, the JSON API (pagination, filters, sorting),
log following, charts, metrics, and the access rules (read-only but for cancel; the token)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from starlette.testclient import TestClient
from xmanager.xm_local.store import Store
from xmanager.xm_local.ui import build_app
from xmanager.xm_local.ui.server import UiError, check_access

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def client(big_store):
    url, _, _ = big_store
    store = Store(url)
    with TestClient(build_app(store), base_url="http://127.0.0.1:8050") as test_client:
        yield test_client
    store.close()


def test_pages_are_served_with_their_scripts(client, big_store):
    _, experiment_id, _ = big_store
    for path in ("/", f"/experiments/{experiment_id}", f"/experiments/{experiment_id}/units/5"):
        page = client.get(path)
        assert page.status_code == 200 and "/static/ui.js" in page.text
    plotly_js = client.get("/static/plotly.min.js")
    assert plotly_js.status_code == 200 and len(plotly_js.content) > 1_000_000 and b"plotly" in plotly_js.content[:2000]
    assert client.get("/static/ui.js").status_code == 200


def test_experiments_are_paginated_newest_first(client):
    first = client.get("/api/experiments", params={"per_page": 50}).json()
    assert first["total"] == 122 and first["pages"] == 3
    assert [e["title"] for e in first["experiments"][:3]] == ["cluster runs", "big sweep", "run 119"]
    third = client.get("/api/experiments", params={"per_page": 50, "page": 3}).json()
    assert [e["title"] for e in third["experiments"]] == [f"run {i}" for i in range(21, -1, -1)]
    big = first["experiments"][1]
    assert big["work_unit_count"] == 100_000 and big["status_counts"] == {"completed": 90_000, "failed": 10_000}


def test_experiment_filters(client):
    assert client.get("/api/experiments", params={"title": "run 11"}).json()["total"] == 11  # 11, 110..119
    assert client.get("/api/experiments", params={"tag": "cluster"}).json()["experiments"][0]["title"] == "cluster runs"
    failed = client.get("/api/experiments", params={"status": "failed"}).json()
    assert {e["title"] for e in failed["experiments"]} == {"big sweep", "cluster runs"}
    assert client.get("/api/experiments", params={"since": "2999-01-01"}).json()["total"] == 0
    assert client.get("/api/experiments", params={"until": "1990-01-01"}).json()["total"] == 0
    today = time.strftime("%Y-%m-%d")
    assert client.get("/api/experiments", params={"since": today, "until": today}).json()["total"] == 122


@pytest.mark.parametrize("params, message", [
    ({"status": "exploded"}, "status must be one of"),
    ({"page": "0"}, "page must be from 1"),
    ({"per_page": "100000"}, "per_page must be from 1 to 500"),
    ({"since": "yesterday"}, "since must be a date"),
])
def test_bad_experiment_queries_are_400(client, params, message):
    answer = client.get("/api/experiments", params=params)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_units_of_a_100000_unit_experiment_page_in_sql(client, big_store):
    _, experiment_id, _ = big_store
    answer = client.get(f"/api/experiments/{experiment_id}/units", params={"page": 2}).json()
    assert answer["total"] == 100_000 and answer["pages"] == 2000
    assert [unit["work_unit_id"] for unit in answer["units"]] == list(range(51, 101))
    assert answer["args"] == ["lr", "batch", "opt"] and answer["results"] == ["loss", "acc"]
    last = client.get(f"/api/experiments/{experiment_id}/units", params={"page": 2000}).json()
    assert last["units"][-1]["work_unit_id"] == 100_000


def test_units_sort_and_filter(client, big_store):
    _, experiment_id, _ = big_store
    base = f"/api/experiments/{experiment_id}/units"
    lrs = [u["args"]["lr"] for u in client.get(base, params={"sort": "args.lr", "order": "desc"}).json()["units"]]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > 0.099
    losses = [u["results"]["loss"] for u in client.get(base, params={"sort": "results.loss"}).json()["units"]]
    assert losses == sorted(losses)
    failed = client.get(base, params={"status": "failed", "per_page": 500}).json()
    assert failed["total"] == 10_000 and {u["status"] for u in failed["units"]} == {"failed"}
    assert {u["exit_code"] for u in failed["units"]} == {1}
    chosen = client.get(base, params={"where": "opt=sgd; batch=64; lr>0.05", "per_page": 500}).json()
    assert chosen["total"] > 0
    assert all(u["args"]["opt"] == "sgd" and u["args"]["batch"] == 64 and u["args"]["lr"] > 0.05 for u in chosen["units"])
    hosts = client.get(base, params={"q": "node3", "per_page": 500}).json()
    assert {u["host"] for u in hosts["units"]} == {"node3"}
    durations = [u["duration"] for u in client.get(base, params={"sort": "duration", "order": "desc"}).json()["units"]]
    assert durations == sorted(durations, reverse=True)


@pytest.mark.parametrize("params, message", [
    ({"sort": "password"}, "sort must be one of"),
    ({"order": "sideways"}, "order must be asc or desc"),
    ({"where": "lr ~ 3"}, "is not KEY OP VALUE"),
])
def test_bad_unit_queries_are_400(client, big_store, params, message):
    _, experiment_id, _ = big_store
    answer = client.get(f"/api/experiments/{experiment_id}/units", params=params)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_unknown_experiments_and_units_are_404(client, big_store):
    _, experiment_id, _ = big_store
    for path in ("/api/experiments/12345", "/api/experiments/12345/units", "/api/experiments/12345/charts",
                 f"/api/experiments/{experiment_id}/units/100001", f"/api/experiments/{experiment_id}/units/100001/logs"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "error" in answer.json()


def test_unit_shows_executor_links(client, big_store):
    _, _, cluster_id = big_store
    slurm = client.get(f"/api/experiments/{cluster_id}/units/1").json()
    assert slurm["unit"]["status"] == "completed" and slurm["unit"]["args"] == {"lr": 0.1}
    assert slurm["jobs"][0]["where"] == "Slurm job 4242_3" and slurm["jobs"][0]["console_url"] is None
    vertex = client.get(f"/api/experiments/{cluster_id}/units/2").json()
    assert vertex["jobs"][0]["console_url"].startswith("https://console.cloud.google.com/vertex-ai/")
    assert vertex["unit"]["exit_code"] == 1


def test_charts_sample_a_large_experiment(client, big_store):
    _, experiment_id, _ = big_store
    answer = client.get(f"/api/experiments/{experiment_id}/charts", params={"metric": "acc", "x": "lr"}).json()
    assert answer["metric"] == "acc" and answer["x"] == "lr"
    assert answer["metrics"] == ["loss", "acc"] and answer["xs"] == ["lr", "batch", "opt"]
    points = sum(len(trace["x"]) for trace in answer["scatter"]["data"])
    assert points == 5000
    assert {trace["name"] for trace in answer["scatter"]["data"]} == {"completed", "failed"}
    [parcoords] = answer["parcoords"]["data"]
    assert parcoords["type"] == "parcoords"
    assert [d["label"] for d in parcoords["dimensions"]] == ["lr", "batch", "opt", "acc"]
    assert parcoords["dimensions"][2]["ticktext"] == ["adam", "sgd"]
    default = client.get(f"/api/experiments/{experiment_id}/charts").json()
    assert default["metric"] == "loss" and default["x"] == "lr"


def test_get_routes_are_read_only(client, big_store):
    _, experiment_id, _ = big_store
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/api/experiments", f"/api/experiments/{experiment_id}", f"/api/experiments/{experiment_id}/units",
                     f"/api/experiments/{experiment_id}/units/1"):
            assert client.request(method, path).status_code == 405, (method, path)
    for path in (f"/api/experiments/{experiment_id}/cancel", f"/api/experiments/{experiment_id}/units/1/cancel"):
        assert client.get(path).status_code == 405


def test_logs_follow_a_file_from_an_offset(tmp_path):
    from xmanager.xm_local.ui.logs import TAIL_BYTES, read_from

    path = tmp_path / "stdout.log"
    path.write_bytes(b"one\n")
    first = read_from(str(path), None)
    assert first["text"] == "one\n" and first["reset"] and first["offset"] == 4
    with open(path, "ab") as log:
        log.write("two \u00e9".encode() + "\u00e9".encode()[:1])  # Ends inside a character.
    second = read_from(str(path), first["offset"])
    assert second["text"] == "two \u00e9" and not second["reset"]
    with open(path, "ab") as log:
        log.write("\u00e9".encode()[1:] + b"\n")
    assert read_from(str(path), second["offset"])["text"] == "\u00e9\n"
    path.write_bytes(b"new\n")  # Rewritten shorter: read again from its start.
    again = read_from(str(path), second["offset"])
    assert again["text"] == "new\n" and again["reset"]
    path.write_bytes(b"x" * 10 + b"\n" + b"y\n" * TAIL_BYTES)
    tail = read_from(str(path), None)
    assert tail["text"].startswith("[... ") and "x" not in tail["text"] and tail["offset"] == path.stat().st_size
    assert read_from(str(tmp_path / "missing.log"), None)["exists"] is False


# ---- a real local job: logs, metrics, cancel --------------------------------------------------------
LAUNCHER = """
import sys
from xmanager import xm, xm_local

def main():
    with xm_local.create_experiment(experiment_title="live") as experiment:
        [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=sys.argv[1])])
        experiment.add(xm.Job(executable=executable, executor=xm_local.Local(), args={"steps": int(sys.argv[2])}))

main()
"""

JOB = """
import sys, time
from xmanager import xm
steps = int(sys.argv[1].split("=")[1])
for step in range(steps):
    print(f"line {step}", flush=True)
    print(f"warning {step}", file=sys.stderr, flush=True)
    xm.report(step=step, loss=1.0 / (step + 1), acc=step / steps)
    time.sleep(0.2)
xm.report(loss=1.0 / steps)
"""


def _launch(tmp_path, url: str, steps: int) -> subprocess.Popen:
    launcher, job = tmp_path / "launcher.py", tmp_path / "job.py"
    launcher.write_text(LAUNCHER)
    job.write_text(f"#!{sys.executable}\n{JOB}")
    job.chmod(0o755)
    env = dict(os.environ, XM_DATABASE_URL=url)
    return subprocess.Popen([sys.executable, str(launcher), str(job), str(steps)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def live_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    store = Store(url)
    yield url, store
    store.close()


def _running_unit(client: TestClient) -> int:
    def found():
        experiments = client.get("/api/experiments").json()["experiments"]
        if experiments and experiments[0]["status_counts"].get("running"):
            return experiments[0]["experiment_id"]
        return None

    return _wait(found)


def test_logs_and_metrics_of_a_real_job(tmp_path, live_store):
    url, store = live_store
    with TestClient(build_app(store)) as client:
        launcher = _launch(tmp_path, url, steps=5)
        try:
            experiment_id = _running_unit(client)
            assert launcher.wait(30) == 0, launcher.stderr.read() if launcher.stderr else ""
        finally:
            launcher.kill()
            launcher.wait()
        base = f"/api/experiments/{experiment_id}/units/1"
        unit = client.get(base).json()
        assert unit["unit"]["status"] == "completed" and unit["unit"]["results"]["loss"] == 0.2
        assert unit["jobs"][0]["where"].startswith("pid ")
        stdout = client.get(f"{base}/logs", params={"stream": "stdout"}).json()
        assert stdout["text"] == "".join(f"line {i}\n" for i in range(5)) and not stdout["active"]
        assert client.get(f"{base}/logs", params={"stream": "stdout", "offset": stdout["offset"]}).json()["text"] == ""
        stderr = client.get(f"{base}/logs", params={"stream": "stderr"}).json()
        assert "warning 4" in stderr["text"]
        metrics = client.get(f"{base}/metrics").json()
        assert metrics["available"] and metrics["points"] == 10
        traces = {trace["name"]: trace for trace in metrics["figure"]["data"]}
        assert traces["loss"]["x"] == [0, 1, 2, 3, 4] and traces["loss"]["y"][-1] == 0.2


def test_cancel_a_running_unit(tmp_path, live_store):
    url, store = live_store
    with TestClient(build_app(store)) as client:
        launcher = _launch(tmp_path, url, steps=300)
        try:
            experiment_id = _running_unit(client)
            cross_site = client.post(f"/api/experiments/{experiment_id}/units/1/cancel", headers={"Origin": "http://evil.example"})
            assert cross_site.status_code == 403
            assert client.get(f"/api/experiments/{experiment_id}/units/1").json()["unit"]["status"] == "running"
            answer = client.post(f"/api/experiments/{experiment_id}/units/1/cancel")
            assert answer.status_code == 200 and answer.json() == {"cancelled": 1}
            assert client.get(f"/api/experiments/{experiment_id}/units/1").json()["unit"]["status"] == "cancelled"
            launcher.wait(30)  # The launcher sees the cancellation and exits once the job has stopped.
        finally:
            launcher.kill()
            launcher.wait()
        log = client.get(f"/api/experiments/{experiment_id}/units/1/logs").json()
        assert log["text"].count("line") < 300


def test_cancel_needs_the_token(tmp_path, big_store):
    url, experiment_id, _ = big_store
    store = Store(url)
    try:
        with TestClient(build_app(store, token=TOKEN)) as client:
            path = f"/api/experiments/{experiment_id}/cancel"
            missing = client.post(path)
            assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
            assert client.post(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert client.post(f"/api/experiments/{experiment_id}/units/3/cancel").status_code == 401
            assert client.get("/api/config").json()["token_required"] is True
            assert client.get("/api/experiments").status_code == 200  # Reading needs no token.
            # The right token: nothing of this experiment is unfinished, so nothing is cancelled.
            answer = client.post(f"/api/experiments/{experiment_id}/units/3/cancel",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 200 and answer.json() == {"cancelled": 0}
    finally:
        store.close()


def test_serving_beyond_loopback_needs_a_token():
    check_access("127.0.0.1", None)
    check_access("::1", None)
    check_access("0.0.0.0", TOKEN)
    with pytest.raises(UiError, match="without an access token"):
        check_access("0.0.0.0", None)
    with pytest.raises(UiError, match="must not be empty"):
        check_access("127.0.0.1", "")
