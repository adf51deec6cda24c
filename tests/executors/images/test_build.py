"""ensure_image / push_image against a real private dockerd and a real local registry."""

import base64
import hashlib
import threading
import zipfile

import docker_support
import pytest
from xmanager import xm
from xmanager.executors.images import build as images
from xmanager.executors.images import context as contexts

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(request, monkeypatch):
    """The session's private Docker engine (DOCKER_HOST set for this test)."""
    return docker_support.use_engine(request, monkeypatch)


@pytest.fixture
def app(tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "main.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    return folder


def _spec(app, image, **extra):
    return xm.PythonContainer(entrypoint=xm.ModuleName("main"), path=str(app), base_image=image, **extra)


def _run(env, tag, *args):
    return env.client.containers.run(tag, list(args), remove=True, network_mode="none").decode()


def test_second_ensure_of_an_unchanged_spec_does_not_build(engine, app, tmp_path):
    spec = _spec(app, engine.python_image)
    first = images.ensure_image(spec, launch_dir=str(tmp_path))
    second = images.ensure_image(spec, launch_dir=str(tmp_path))
    assert first.built and not second.built
    assert first == second and first.tag.startswith("xm-local/app:")
    image = engine.client.images.get(first.tag)
    assert image.labels[images.HASH_LABEL] == first.content_hash
    assert _run(engine, first.tag, "--a=1") == "args ['--a=1']\n"
    (app / "main.py").write_text("print('v2')\n")
    third = images.ensure_image(spec, launch_dir=str(tmp_path))
    assert third.built and third.tag != first.tag and _run(engine, third.tag) == "v2\n"


def test_concurrent_ensures_build_once(engine, app, tmp_path):
    (app / "marker.txt").write_text("concurrent")
    spec = _spec(app, engine.python_image)
    refs = []
    threads = [
        threading.Thread(target=lambda: refs.append(images.ensure_image(spec, launch_dir=str(tmp_path))))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refs) == 4 and len({r.image_id for r in refs}) == 1
    assert sum(r.built for r in refs) == 1


def _wheel(folder, name="tinydep", version="0.1"):
    """A minimal pure-Python wheel, written by hand (no build backend, no network)."""
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = f"{name}-{version}.dist-info/RECORD"
    lines = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(text.encode())}")
    files[record] = "\n".join([*lines, f"{record},,"]) + "\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name_in_zip, text in files.items():
            archive.writestr(name_in_zip, text)
    return path


def test_requirements_are_pip_installed_from_a_local_wheel(engine, app, tmp_path):
    (app / "wheels").mkdir()
    wheel = _wheel(app / "wheels")
    (app / "requirements.txt").write_text(f"./wheels/{wheel.name}\n")
    (app / "main.py").write_text("import tinydep\nprint('tinydep', tinydep.VALUE)\n")
    ref = images.ensure_image(_spec(app, engine.python_image), launch_dir=str(tmp_path))
    assert _run(engine, ref.tag) == "tinydep 42\n"


def test_failing_dockerfile_raises_with_the_build_log(engine, tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM {engine.python_image}\nRUN echo about to fail && exit 3\n")
    with pytest.raises(images.ImageBuildError) as failure:
        images.ensure_image(xm.Dockerfile(path=str(tmp_path)), launch_dir="/")
    message = str(failure.value)
    assert f"docker build of xm.Dockerfile(path={str(tmp_path)!r}) failed" in message
    assert "returned a non-zero code: 3" in message and "about to fail" in message
    assert "  > RUN echo about to fail && exit 3" in message
    assert "Step 2/" in failure.value.log


def test_missing_base_image_names_it_and_the_fix(engine, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM localhost/absent-base:7\n")
    with pytest.raises(images.ImageNotFoundError) as failure:
        images.ensure_image(xm.Dockerfile(path=str(tmp_path)), launch_dir="/")
    message = str(failure.value)
    assert "'localhost/absent-base:7'" in message and "could not be pulled" in message and "docker load" in message


def test_container_specs_load_a_tarball_or_use_a_present_reference(engine, app, tmp_path):
    ref = images.ensure_image(_spec(app, engine.python_image), launch_dir=str(tmp_path))
    tarball = tmp_path / "saved.tar"
    with open(tarball, "wb") as handle:
        for chunk in engine.client.images.get(ref.image_id).save(named=True):
            handle.write(chunk)
    loaded = images.ensure_image(xm.Container(image_path="saved.tar"), launch_dir=str(tmp_path))
    assert loaded.image_id == ref.image_id and loaded.built and loaded.tag.startswith("xm-local/saved_tar:")
    assert not images.ensure_image(xm.Container(image_path=str(tarball)), launch_dir="/").built
    present = images.ensure_image(xm.Container(image_path=engine.python_image), launch_dir="/")
    assert present.tag == engine.python_image and not present.built
    with pytest.raises(contexts.ContextError, match=r"no image tarball at '.*missing\.tar'"):
        images.ensure_image(xm.Container(image_path="missing.tar"), launch_dir=str(tmp_path))
    with pytest.raises(images.ImageNotFoundError, match="127.0.0.1:1/absent:1"):
        images.ensure_image(xm.Container(image_path="127.0.0.1:1/absent:1"), launch_dir="/")


def test_push_returns_a_digest_reference_that_pulls_back(engine, app, tmp_path):
    (app / "marker.txt").write_text("push")
    ref = images.ensure_image(_spec(app, engine.python_image), launch_dir=str(tmp_path))
    repository = f"{engine.registry}/xm/app"
    pushed = images.push_image(ref, repository)
    assert pushed.startswith(f"{repository}@sha256:")
    assert images.push_image(ref, repository) == pushed  # Same content, same digest.
    engine.client.images.remove(f"{repository}:{ref.content_hash[:16]}")
    pulled = images.ensure_image(xm.Container(image_path=pushed), launch_dir="/")
    assert pulled.image_id == ref.image_id


def test_unreachable_registry_is_one_clear_error(engine, app, tmp_path):
    ref = images.ensure_image(_spec(app, engine.python_image), launch_dir=str(tmp_path))
    with pytest.raises(images.RegistryError) as failure:
        images.push_image(ref, "127.0.0.1:1/xm/app")
    message = str(failure.value)
    assert "registry 127.0.0.1:1" in message and "connection refused" in message and "reachable" in message
    with pytest.raises(ValueError, match="not a valid image repository"):
        images.push_image(ref, "./not a repo")
