"""A private Docker engine + registry for a test session, or a skip with the reason.

The engine's state lives under a short temp folder (unix socket paths are limited to 108
bytes); the Python base image is made from the host interpreter without any network and
its rootfs tarball is cached under ``~/.cache/xmanager-test`` between runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import attrs
import pytest
from xmanager.testing import docker_engine


@attrs.define
class DockerEnv:
    engine: docker_engine.DevEngine
    client: object
    python_image: str

    @property
    def docker_host(self) -> str:
        return self.engine.docker_host

    @property
    def registry(self) -> str:
        assert self.engine.registry is not None
        return self.engine.registry


def start_or_skip() -> tuple[DockerEnv, str]:
    """(the engine with the Python base image imported, its run folder to remove after stop)."""
    missing = docker_engine.missing_programs(registry=True)
    if missing:
        pytest.skip(f"Docker is not installed ({', '.join(missing)} missing); setup_scripts/test.sh installs docker.io")
    if os.geteuid() != 0:
        pytest.skip("the private Docker engine runs dockerd, which needs root")
    run_dir = tempfile.mkdtemp(prefix="xmdock-")
    try:
        engine = docker_engine.start(run_dir, registry=True)
    except docker_engine.DevEngineError as error:
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.skip(f"dockerd could not start here: {error}")
    try:
        client = engine.client()
        image = docker_engine.python_base_image(client)
    except BaseException:
        engine.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return DockerEnv(engine, client, image), run_dir


def stop(env: DockerEnv, run_dir: str) -> None:
    env.engine.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


_session: dict[str, object] = {}


def session_engine(request: pytest.FixtureRequest) -> DockerEnv:
    """One engine per pytest run, shared by every test module that asks; stopped when pytest ends."""
    if "skip" in _session:
        pytest.skip(str(_session["skip"]))
    if "env" not in _session:
        try:
            env, run_dir = start_or_skip()
        except pytest.skip.Exception as skipped:
            _session["skip"] = str(skipped)
            raise
        _session["env"] = env
        request.config.add_cleanup(lambda: stop(env, run_dir))
    env = _session["env"]
    assert isinstance(env, DockerEnv)
    return env


def use_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> DockerEnv:
    """The session's engine, with DOCKER_HOST pointing at it for the calling test."""
    env = session_engine(request)
    monkeypatch.setenv("DOCKER_HOST", env.docker_host)
    return env
