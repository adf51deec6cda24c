"""Executable specs: names, validation, conversions."""

import os
import pathlib
import sys

import pytest
from xmanager import xm
from xmanager.xm.executables import name_from_path


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/usr/bin/my-tool", "my_tool"),
        ("my.tool", "my_tool"),
        ("./bin/train", "train"),
        ("/opt/tool/", "tool"),
        ("relative/path/run v2", "run_v2"),
    ],
)
def test_binary_name_from_path(path, name):
    assert xm.Binary(path=path).name == name


def test_name_from_path_edges():
    assert [name_from_path(p) for p in ["/", "", "a//", "."]] == ["", "", "a", "_"]


def test_binary_keeps_path_and_lists_dependencies():
    binary = xm.Binary(path=pathlib.Path("/usr/bin/tool"), dependencies=("d",))
    assert binary.path == pathlib.Path("/usr/bin/tool")  # Kept as given, as in XManager.
    assert binary.dependencies == ["d"]
    assert isinstance(binary, xm.ExecutableSpec)
    assert repr(xm.Binary("x")) == "Binary(path='x', dependencies=[])"
    assert xm.BazelBinary("//a:b", bazel_args=("-c",)).bazel_args == ["-c"]
    assert repr(xm.BazelContainer("//a:b")) == "BazelContainer(label='//a:b', bazel_args=[])"


def test_specs_are_xmanager_attrs_classes():
    """Mutable, compared and ordered by value, unhashable; defaults not shared."""
    first, second = xm.Binary("a"), xm.Binary("b")
    assert first < second and first == xm.Binary("a")
    with pytest.raises(TypeError, match="unhashable"):
        hash(first)
    first.dependencies.append("d")
    assert second.dependencies == []
    first.path = 3  # Assignment stores what it is given.
    assert first.path == 3
    for spec in (xm.Container("c"), xm.BazelContainer("//a"), xm.PythonContainer(xm.ModuleName("m"), "/p")):
        with pytest.raises(TypeError, match="unhashable"):
            hash(spec)


def test_module_name_and_command_list_are_named_tuples():
    assert xm.ModuleName("m") == ("m",) and xm.ModuleName("m")._fields == ("module_name",)
    commands = ["echo a", "echo b"]
    listed = xm.CommandList(commands)
    assert listed.commands is commands and listed == (commands,)
    assert repr(listed) == "CommandList(commands=['echo a', 'echo b'])"
    assert xm.CommandList("echo hi").commands == "echo hi"  # Kept as given.
    assert xm.CommandList([]).commands == []
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'commands'"):
        xm.CommandList()
    with pytest.raises(AttributeError):
        listed.commands = ["b"]


def test_command_list_is_also_an_executable_spec_of_ours():
    from xmanager.xm.executables import command_lines

    assert isinstance(xm.CommandList(["a"]), xm.ExecutableSpec)
    assert xm.CommandList(["/usr/bin/python3 -c 'x'", "other"]).name == "python3"
    assert xm.CommandList([]).name == "commands"
    assert command_lines(xm.CommandList("echo hi")) == ["echo hi"]
    assert command_lines(xm.CommandList(("a", "b"))) == ["a", "b"]
    with pytest.raises(ValueError, match="at least one command"):
        command_lines(xm.CommandList([]))


def test_python_callable_needs_callable():
    with pytest.raises(TypeError, match="callable"):
        xm.PythonCallable(42)
    with pytest.raises(TypeError, match="str"):
        xm.PythonCallable("module.function")


def my_train_fn(**kwargs):
    return kwargs


def test_python_callable_name():
    assert xm.PythonCallable(my_train_fn).name == "my_train_fn"
    assert xm.PythonCallable(my_train_fn, name="custom").name == "custom"
    assert xm.PythonCallable(lambda: None).name == "_lambda_"
    assert xm.PythonCallable(my_train_fn).function is my_train_fn


def test_container_and_dockerfile_names(launch_script):
    assert xm.Container("gcr.io/proj/img:tag").name == "img_tag"
    assert xm.Dockerfile().name == "project"  # The launch script's folder.
    assert xm.Dockerfile("./svc/api", "Dockerfile.dev").name == "api"
    assert xm.BazelBinary("//path/to:target").name == "to_target"
    assert xm.BazelContainer("//path/to:image.tar").name == "to_image_tar"


def test_python_container(launch_script):
    instructions = ["RUN x"]
    spec = xm.PythonContainer(entrypoint=xm.ModuleName("pkg.main"), docker_instructions=instructions)
    assert spec.docker_instructions is instructions
    assert spec.path == str(launch_script.parent) and spec.name == "project"
    assert spec.entrypoint.module_name == "pkg.main"
    assert xm.PythonContainer(entrypoint=xm.CommandList("run"), path="/src/project/").path == "/src/project/"
    assert xm.PythonContainer(entrypoint=xm.CommandList("run"), path="/src/project/").name == "project"
    assert xm.PythonContainer(entrypoint=xm.ModuleName("m")).docker_instructions is None


@pytest.fixture
def launch_script(tmp_path, monkeypatch):
    """A launch script at <tmp>/project/launch.py, named by $XM_LAUNCH_SCRIPT (as `xmanager launch` does)."""
    script = tmp_path / "project" / "launch.py"
    script.parent.mkdir()
    script.write_text("")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(script))
    return script


def test_paths_resolve_against_the_launch_script_when_built(launch_script, monkeypatch):
    root = str(launch_script.parent)
    spec = xm.PythonContainer(xm.ModuleName("m"), "sub/../app")
    assert spec.path == f"{root}/app"
    assert xm.PythonContainer(xm.ModuleName("m"), "..").path == os.path.dirname(root)
    docker = xm.Dockerfile()
    assert (docker.path, docker.dockerfile) == (root, f"{root}/Dockerfile")
    # A relative dockerfile is relative to the launch script, not to path.
    docker = xm.Dockerfile("/ctx", "docker/Dockerfile.dev")
    assert (docker.path, docker.dockerfile) == ("/ctx", f"{root}/docker/Dockerfile.dev")
    assert xm.Dockerfile("ctx", "").dockerfile == f"{root}/ctx/Dockerfile"
    assert xm.Dockerfile("/abs/ctx/").name == "ctx"
    # Resolved once, when built: the working directory and a later launch script do not matter.
    monkeypatch.chdir("/")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", "/elsewhere/launch.py")
    assert spec.path == f"{root}/app"
    assert repr(xm.Dockerfile(root)) == f"Dockerfile(path={root!r}, dockerfile={root + '/Dockerfile'!r})"


def test_paths_resolve_through_symlinks(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (real / "launch.py").write_text("")
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(tmp_path / "link" / "launch.py"))
    assert xm.Dockerfile("ctx").path == str(real / "ctx")


def test_relative_path_without_a_launch_script_is_a_runtime_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys.modules["__main__"], "__file__", None, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError) as raised:
        xm.PythonContainer(xm.ModuleName("m"))
    assert str(raised.value) == (
        f"Unable to determine launch script path. The script is not present at {str(tmp_path / '-c')!r}. "
        "This may happen if launch script changes the working directory."
    )
    assert xm.Dockerfile("/abs").dockerfile == "/abs/Dockerfile"  # Absolute paths need no launch script.
    with pytest.raises(TypeError, match="expected str, bytes or os.PathLike object, not int"):
        xm.Dockerfile(3)


def test_dockerfile_defaults_without_parsed_flags(tmp_path, monkeypatch):
    """Ours falls back to sys.argv[0] when absl flags are not parsed (XManager raises UnparsedFlagAccessError)."""
    script = tmp_path / "launcher.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script)])
    assert xm.Dockerfile().path == str(tmp_path)
