"""``xmanager devcluster slurm|docker start|stop|status DIR``: private test servers from a shell.

NOT FOR PRODUCTION (see :mod:`xmanager.testing`). The server modules load only when the
command runs, so registering it costs the ``xmanager`` parser nothing.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``devcluster`` command to an ``add_subparsers()`` object."""
    devcluster = subparsers.add_parser(
        "devcluster", help="start, stop or check a private Slurm cluster or Docker engine for tests (not for production)"
    )
    kinds = devcluster.add_subparsers(dest="kind", required=True, metavar="KIND")
    slurm = kinds.add_parser("slurm", help="a single-node Slurm cluster (daemons as root, auth/none)")
    docker = kinds.add_parser("docker", help="a private Docker engine and registry on 127.0.0.1 (no TLS, no auth)")
    for kind in (slurm, docker):
        kind.add_argument("action", choices=("start", "stop", "status"), help="what to do with the server")
        kind.add_argument("dir", help="the folder that keeps the servers' state, logs and pids")
    slurm.add_argument("--cpus", type=int, default=16, help="CPUs of the node (default 16)")
    slurm.add_argument("--accounting", action="store_true", help="also run MariaDB and slurmdbd, for sacct")
    docker.add_argument("--no-registry", action="store_true", help="start the engine only")
    docker.add_argument("--python-image", action="store_true", help="also make the test Python base image")
    slurm.set_defaults(run=_slurm)
    docker.set_defaults(run=_docker)
    return devcluster


def _slurm(args: argparse.Namespace) -> int:
    from xmanager.testing import slurm_cluster

    try:
        if args.action == "start":
            cluster = slurm_cluster.start(args.dir, cpus=args.cpus, accounting=args.accounting)
            slurm_cluster.record(cluster)
            print(f"export SLURM_CONF={cluster.conf}")
        elif args.action == "stop":
            slurm_cluster.stop_recorded(args.dir)
        else:
            print(slurm_cluster.status(args.dir))
    except slurm_cluster.DevClusterError as error:
        return _fail(str(error))
    return 0


def _docker(args: argparse.Namespace) -> int:
    from xmanager.testing import docker_engine

    try:
        if args.action == "start":
            engine = docker_engine.start(args.dir, registry=not args.no_registry)
            print(f"export DOCKER_HOST={engine.docker_host}")
            if engine.registry:
                print(f"# registry: {engine.registry}")
            if args.python_image:
                print(f"# python base image: {docker_engine.python_base_image(engine.client())}")
        elif args.action == "stop":
            docker_engine.load(args.dir).stop()
        else:
            print(docker_engine.load(args.dir).status())
    except docker_engine.DevEngineError as error:
        return _fail(str(error))
    return 0


def _fail(message: str) -> int:
    import sys

    print(f"xmanager devcluster: error: {message}", file=sys.stderr)
    return 1
