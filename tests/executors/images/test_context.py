"""Build contexts: deterministic content hashes, generated Dockerfiles, references. No engine needed."""

import os
import tarfile

import pytest
from xmanager import xm
from xmanager.executors.images import build as images
from xmanager.executors.images import context as contexts


@pytest.fixture
def app(tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "main.py").write_text("print('hi')\n")
    (folder / "pkg").mkdir()
    (folder / "pkg" / "util.py").write_text("X = 1\n")
    return folder


def _spec(app, **extra):
    extra.setdefault("base_image", "base:1")
    return xm.PythonContainer(entrypoint=xm.ModuleName("main"), path=str(app), **extra)


def _hash(spec, launch_dir):
    context = contexts.python_container_context(spec, str(launch_dir))
    try:
        with tarfile.open(context.tarball) as archive:
            names = archive.getnames()
        return context.content_hash, names, context.dockerfile_text
    finally:
        context.remove()
        assert not os.path.exists(context.tarball)


def test_hash_follows_content_not_mtimes(app, tmp_path):
    first, names, _ = _hash(_spec(app), tmp_path)
    assert names[0] == "app" and "app/pkg/util.py" in names and ".xm.Dockerfile" in names
    os.utime(app / "main.py", (1, 1))
    assert _hash(_spec(app), tmp_path)[0] == first
    (app / "main.py").write_text("print('changed')\n")
    changed = _hash(_spec(app), tmp_path)[0]
    assert changed != first
    os.chmod(app / "main.py", 0o755)
    assert _hash(_spec(app), tmp_path)[0] != changed  # The exec bit is content too.
    assert _hash(_spec(app, base_image="base:2"), tmp_path)[0] != _hash(_spec(app), tmp_path)[0]


def test_caches_and_dockerignore_stay_out_of_the_context(app, tmp_path):
    before = _hash(_spec(app), tmp_path)[0]
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (app / "data.bin").write_bytes(b"big")
    (app / ".dockerignore").write_text("# comment\ndata.bin\n")
    digest, names, _ = _hash(_spec(app), tmp_path)
    assert "app/data.bin" not in names and not any("__pycache__" in n for n in names)
    assert "app/.dockerignore" in names and digest != before


def test_generated_dockerfile_copies_installs_requirements_and_sets_the_entrypoint(app, tmp_path):
    _, _, text = _hash(_spec(app), tmp_path)
    assert text.splitlines()[0] == "FROM base:1"
    assert "COPY app/ /workdir/app" in text and "WORKDIR /workdir/app" in text
    assert "pip install" not in text
    assert 'ENTRYPOINT ["python", "-m", "main"]' in text
    (app / "requirements.txt").write_text("numpy\n")
    _, _, text = _hash(_spec(app), tmp_path)
    assert (
        "RUN python -m pip install --no-cache-dir --disable-pip-version-check -r /workdir/app/requirements.txt" in text
    )
    _, _, text = _hash(_spec(app, use_deep_module=True), tmp_path)
    assert "WORKDIR /workdir\n" in text


def test_command_list_entrypoint_and_custom_instructions(app, tmp_path):
    spec = xm.PythonContainer(
        entrypoint=xm.CommandList(["echo start", "python main.py"]), path=str(app), docker_instructions=["RUN true"]
    )
    _, _, text = _hash(spec, tmp_path)
    assert "RUN true" in text and "COPY" not in text
    assert 'ENTRYPOINT ["sh", "-c", "echo start\\npython main.py \\"$@\\"", "entrypoint"]' in text


def test_default_base_image_is_slim_python_or_the_env_override(app, tmp_path, monkeypatch):
    monkeypatch.delenv("XM_PYTHON_BASE_IMAGE", raising=False)
    spec = xm.PythonContainer(entrypoint=xm.ModuleName("main"), path=str(app))
    assert _hash(spec, tmp_path)[2].startswith("FROM python:3.")
    assert "-slim\n" in _hash(spec, tmp_path)[2].splitlines(keepends=True)[0]
    monkeypatch.setenv("XM_PYTHON_BASE_IMAGE", "localhost/py:1")
    assert _hash(spec, tmp_path)[2].startswith("FROM localhost/py:1\n")


@pytest.fixture
def launch_script(tmp_path, monkeypatch):
    """``tmp_path/launch.py`` as the launch script (``xmanager launch`` names it in $XM_LAUNCH_SCRIPT)."""
    script = tmp_path / "launch.py"
    script.write_text("")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(script))
    return script


def test_relative_paths_resolve_against_the_launch_script_when_built(app, tmp_path, launch_script):
    spec = xm.PythonContainer(entrypoint=xm.ModuleName("main"), path="app", base_image="b")
    assert spec.path == os.path.realpath(app)
    assert _hash(spec, "/elsewhere")[0] == _hash(_spec(app, base_image="b"), "/elsewhere")[0]


def test_a_relative_path_assigned_later_resolves_against_the_launch_dir(app, tmp_path):
    spec = _spec(app, base_image="b")
    expected = _hash(spec, "/elsewhere")[0]
    spec.path = "app"
    assert _hash(spec, tmp_path)[0] == expected


def test_missing_folders_and_dockerfiles_are_named(tmp_path, launch_script):
    with pytest.raises(contexts.ContextError, match=r"PythonContainer path: no folder at '.*nope'"):
        contexts.python_container_context(_spec(tmp_path / "nope"), str(tmp_path))
    (tmp_path / "file").write_text("")
    with pytest.raises(contexts.ContextError, match="is not a folder"):
        contexts.python_container_context(_spec(tmp_path / "file"), str(tmp_path))
    (tmp_path / "ctx").mkdir()
    with pytest.raises(contexts.ContextError, match=r"no Dockerfile at '.*ctx/Dockerfile'"):
        contexts.dockerfile_context(xm.Dockerfile(path="ctx"), str(tmp_path))


def test_dockerfile_outside_the_context_travels_inside_it(tmp_path, launch_script):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "a.txt").write_text("a")
    (tmp_path / "build.Dockerfile").write_text("FROM base AS build\nFROM build\nFROM scratch\nFROM other:2\n")
    context = contexts.dockerfile_context(xm.Dockerfile(path="ctx", dockerfile="build.Dockerfile"), str(tmp_path))
    try:
        assert context.dockerfile == ".xm.Dockerfile"
        assert context.base_images == ("base", "other:2")
        with tarfile.open(context.tarball) as archive:
            assert sorted(archive.getnames()) == [".xm.Dockerfile", "a.txt"]
    finally:
        context.remove()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("gcr.io/p/x:1", True),
        ("127.0.0.1:5000/x", True),
        ("localhost:5000/a/b@sha256:" + "a" * 64, True),
        ("python:3.11-slim", True),
        ("./img.tar", False),
        ("img.tar", False),
        ("/abs/img.tar.gz", False),
        ("~/img", False),
        ("Upper/Case", False),
        ("", False),
    ],
)
def test_is_registry_reference(path, expected):
    assert images.is_registry_reference(path) is expected


def test_registry_of_and_local_tags():
    assert images.registry_of("127.0.0.1:5000/xm/x") == "127.0.0.1:5000"
    assert images.registry_of("gcr.io/p/x") == "gcr.io"
    assert images.registry_of("library/python") == "docker.io"
    assert images.local_tag("My App!", "ab" * 32) == "xm-local/my-app:" + "ab" * 8


def test_no_engine_gives_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(
        images.DockerUnavailableError, match=r"cannot reach a Docker engine at unix://.*none\.sock.*DOCKER_HOST"
    ):
        images.docker_client()
