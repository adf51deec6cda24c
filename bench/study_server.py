"""Study server: GET /api/config on loopback under keep-alive load, ours vs experiment-server 0.3.9.

    python bench/study_server.py [--seconds 5] [--connections 16] [--peer-python PATH]

Both servers serve the same study file (10 blocks) to participant 1, moved to its first block
first. Ours is ``serve()`` as ``xmanager study run`` runs it: the Starlette app on one uvicorn worker
(httptools' parser and uvloop when installed, as the ``study`` extra installs them; the table names
what ran). The load generator is Debian's ``wrk`` (2 threads, keep-alive connections, ``--latency``),
run against each server in turn for the same time. experiment-server runs from
``bench/.peer-es-venv`` (``pip install experiment-server==0.3.9``, made on first use) or
``--peer-python``; when it cannot be installed the table says so. Targets: >= 5,000 req/s,
>= 3x experiment-server, p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
from typing import Optional

from _common import scratch_dir, table
from _peer import make_venv, package_version, verdict
from xmanager.testing.loopback import free_port, wait_listening

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_DIR = os.path.join(HERE, ".peer-es-venv")
PEER_SPEC = "experiment-server==0.3.9"
STUDY = """
[configuration]
order = [["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"]]
groups_strategy = "as_is"
within_groups_strategy = "latin_square"
random_seed = 7
""" + "".join(
    f'\n[[blocks]]\nname = "b{i}"\nconfig = {{ speed = {i}, label = "block {i}", targets = [1, 2, 3] }}\n'
    for i in range(10)
)


def _wait_up(port: int, timeout: float = 30.0) -> None:
    if wait_listening(port, timeout):
        return
    raise RuntimeError(f"no server on port {port} after {timeout:.0f} s")


def _prepare(port: int) -> None:
    """Participant 1 moves to its first block, so /api/config has something to serve."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/api/move-to-next/1", body=b"")
    response = connection.getresponse()
    response.read()
    connection.request("GET", "/api/config/1")
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or b"speed" not in body:
        raise RuntimeError(f"GET /api/config/1 gave {response.status}: {body[:200]!r}")
    connection.close()


def _wrk(port: int, seconds: int, connections: int) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) from one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/api/config/1"],
        capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return rate, p99


def _measure(command: list[str], port: int, seconds: int, connections: int, cwd: str) -> tuple[float, float]:
    server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL)
    try:
        _wait_up(port)
        _prepare(port)
        return _wrk(port, seconds, connections)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def _peer(peer_python: Optional[str]) -> tuple[Optional[str], str]:
    def version_of(python: str) -> tuple[Optional[str], str]:
        return package_version(python, "experiment-server")

    if peer_python:
        version, error = version_of(peer_python)
        return (peer_python, f"experiment-server {version}") if version else (None, error)
    python = os.path.join(VENV_DIR, "bin", "python")
    if os.path.exists(python):
        version, _ = version_of(python)
        if version:
            return python, f"experiment-server {version} under {python}"
    return make_venv(VENV_DIR, PEER_SPEC, version_of, "experiment-server")


def _stack() -> str:
    """What serves our requests: uvicorn's HTTP parser and event loop as its ``auto`` settings pick them."""
    import importlib.util

    import uvicorn

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"Starlette on uvicorn {uvicorn.__version__} ({parser}, {loop}), one worker"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--peer-python", metavar="PATH")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk); nothing measured")
        return 0
    rows = []
    with scratch_dir("xm-bench-study-", keep=False, use_as_store=True) as work:
        config = os.path.join(work, "study.toml")
        with open(config, "w") as handle:
            handle.write(STUDY)
        port = free_port()
        ours = _measure(
            [sys.executable, "-c",
             f"from xmanager.xm_local.studyserver import serve; serve({config!r}, port={port})"],
            port, args.seconds, args.connections, work,
        )
        python, peer_text = _peer(args.peer_python)
        theirs: Optional[tuple[float, float]] = None
        if python is not None:
            cli = os.path.join(os.path.dirname(python), "experiment-server")
            peer_port = free_port()
            theirs = _measure([cli, "run", config, "-p", str(peer_port)], peer_port, args.seconds,
                              args.connections, work)
    rows.append(["GET /api/config req/s", f"{ours[0]:,.0f}", f"{theirs[0]:,.0f}" if theirs else "n/a",
                 f"{ours[0] / theirs[0]:.1f}x" if theirs else "n/a",
                 verdict(ours[0], 5000)])
    if theirs:
        rows.append(["req/s vs experiment-server", "", "", f"{ours[0] / theirs[0]:.1f}x",
                     verdict(ours[0] / theirs[0], 3)])
    rows.append(["p99 latency (ms)", f"{ours[1]:.2f}", f"{theirs[1]:.2f}" if theirs else "n/a", "",
                 verdict(ours[1], 10, at_least=False)])
    print(f"study server: wrk -t2 -c{args.connections} -d{args.seconds}s --latency on loopback, keep-alive")
    print(f"ours: {_stack()}")
    print(f"peer: {peer_text}\n")
    print(table(["case", "ours", "experiment-server", "ours / peer", "target"], rows))
    print("\ntargets: >= 5,000 req/s, >= 3x experiment-server, p99 < 10 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
