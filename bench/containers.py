"""Container images and local container runs: build caching, and launch overhead per unit vs ``docker run``.

    python bench/containers.py [--quick] [--units N] [--tmpdir DIR] [--keep]

Starts its own private dockerd (``xmanager.testing.docker_engine``, state in the
scratch folder, no registry, no host network changes) and imports the no-network Python
base image (the host interpreter, cached under ``~/.cache/xmanager-test``); needs Debian's
docker.io and root, else it says so and exits 0. The scratch folder is also the data folder
and metadata store. Measurements:

1. Image build caching, for a PythonContainer of a small folder (3 files): the first
   ``ensure_image`` (a real ``docker build``), then the best of 5 ``ensure_image`` calls of
   the unchanged spec (hash the context, find the tag: no build), against the best of 3
   ``docker build -q`` of the same context with Docker's own layer cache warm (the CLI,
   which still sends the context and walks every step).
2. Launch overhead per unit: N units (default 20, ``--quick``: 6) of a container that runs
   ``python -c pass``-like work (``python -m main`` printing one line), one at a time
   (``max_parallel=1``), timed from ``add`` of the first unit to the end of the ``with``
   block (statuses, logs and results recorded), divided by N; against N sequential
   ``docker run --rm --network none IMAGE`` of the same image through the docker CLI
   (which prints the output, like our logs). No target: the ratio is reported; both
   sides pay the engine's container create/start/wait/remove.

Every run is checked outside the timing (all units completed, every stdout.log holds the
line, no container left behind).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from _common import scratch_dir, table

UNITS, UNITS_QUICK = 20, 6
APP = "import sys\nprint('unit', sys.argv[1:])\n"


def _app(root: str) -> str:
    folder = os.path.join(root, "benchapp")
    os.makedirs(os.path.join(folder, "pkg"), exist_ok=True)
    with open(os.path.join(folder, "main.py"), "w", encoding="utf-8") as handle:
        handle.write(APP)
    with open(os.path.join(folder, "pkg", "__init__.py"), "w", encoding="utf-8") as handle:
        handle.write("")
    with open(os.path.join(folder, "README"), "w", encoding="utf-8") as handle:
        handle.write("bench app\n")
    return folder


def _best(times: list[float]) -> float:
    return min(times)


def bench_build(engine: object, base_image: str, folder: str) -> tuple[list[list[object]], str]:
    from xmanager import xm
    from xmanager.executors.images import build as images
    from xmanager.executors.images import context as contexts

    spec = xm.PythonContainer(entrypoint=xm.ModuleName("main"), path=folder, base_image=base_image)
    start = time.perf_counter()
    first = images.ensure_image(spec, launch_dir=folder)
    cold = time.perf_counter() - start
    assert first.built, "the first ensure_image should build"
    cached = []
    for _ in range(5):
        start = time.perf_counter()
        again = images.ensure_image(spec, launch_dir=folder)
        cached.append(time.perf_counter() - start)
        assert not again.built and again.image_id == first.image_id, "an unchanged spec was rebuilt"
    # docker build of the very same context (tarball + generated Dockerfile), layer cache warm.
    build_dir = os.path.join(os.path.dirname(folder), "docker-build-context")
    os.makedirs(build_dir, exist_ok=True)
    context = contexts.python_container_context(spec, folder)
    try:
        subprocess.run(["tar", "-xf", context.tarball, "-C", build_dir], check=True)
    finally:
        context.remove()
    docker_times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(
            ["docker", "build", "-q", "-f", os.path.join(build_dir, contexts.GENERATED_DOCKERFILE), "-t", "direct",
             build_dir],
            check=True, capture_output=True,
        )  # fmt: skip
        docker_times.append(time.perf_counter() - start)
    rows = [
        ["first ensure_image (docker build)", f"{cold:.3f}"],
        ["ensure_image, unchanged spec (best of 5)", f"{_best(cached):.4f}"],
        ["docker build -q, layer cache warm (best of 3)", f"{_best(docker_times):.3f}"],
    ]
    return rows, first.tag


def bench_launch(client: object, tag: str, units: int) -> list[list[object]]:
    from xmanager import xm, xm_local

    with xm_local.create_experiment("bench containers", max_parallel=1) as experiment:
        [executable] = experiment.package([xm.container(executor_spec=xm_local.Local.Spec(), image_path=tag)])
        start = time.perf_counter()
        for index in range(units):
            experiment.add(xm.Job(executable, xm_local.Local(), args={"i": index}))
    ours = time.perf_counter() - start
    frame = experiment.to_dataframe()
    assert list(frame["_status"]) == ["completed"] * units, frame["_status"].tolist()
    for unit in experiment.work_units.values():
        with open(unit.launched_jobs[0].logs.replace("stderr.log", "stdout.log"), encoding="utf-8") as log:
            assert log.read().startswith("unit ["), "a unit's stdout.log lacks its output"
    label = f"org.xmanager.experiment={experiment.experiment_id}"
    left = client.containers.list(all=True, filters={"label": label})  # type: ignore[attr-defined]
    assert not left, f"{len(left)} containers left behind"
    start = time.perf_counter()
    for index in range(units):
        result = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", tag, f"--i={index}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.startswith("unit [")
    direct = time.perf_counter() - start
    return [
        [f"xm_local.Local, {units} units one at a time", f"{ours:.2f}", f"{ours / units:.3f}"],
        [f"docker run --rm, {units} runs one after another", f"{direct:.2f}", f"{direct / units:.3f}"],
        ["ratio (ours / docker run)", "", f"{ours / direct:.2f}"],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--units", type=int, default=None)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    from xmanager.testing import docker_engine

    missing = docker_engine.missing_programs()
    if missing or os.geteuid() != 0 or shutil.which("docker") is None:
        reason = f"{', '.join(missing)} missing" if missing else ("not root" if os.geteuid() else "no docker CLI")
        print(f"containers: skipped ({reason}; needs Debian's docker.io and root)")
        return 0
    units = args.units or (UNITS_QUICK if args.quick else UNITS)
    # dockerd's socket path must stay short, so the engine gets its own short folder.
    with scratch_dir("xmbench-containers-", args.keep, args.tmpdir, use_as_store=True) as work:
        engine = docker_engine.start(os.path.join(work, "e"), registry=False)
        os.environ["DOCKER_HOST"] = engine.docker_host
        try:
            client = engine.client()
            start = time.perf_counter()
            base = docker_engine.python_base_image(client)
            print(f"engine up, base image {base} ready in {time.perf_counter() - start:.1f} s\n")
            rows, tag = bench_build(engine, base, _app(work))
            print("image build caching (seconds)")
            print(table(["step", "s"], rows))
            print()
            print(f"container launch overhead ({units} trivial units)")
            print(table(["how", "total s", "per unit s"], bench_launch(client, tag, units)))
        finally:
            engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
