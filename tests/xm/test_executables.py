"""Executable specs: names, validation, conversions."""

import pathlib

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


def test_name_from_path_root():
    assert name_from_path("/") == "_"


def test_binary_converts_path_and_dependencies():
    binary = xm.Binary(path=pathlib.Path("/usr/bin/tool"), dependencies=["d"])
    assert binary.path == "/usr/bin/tool"
    assert binary.dependencies == ("d",)
    assert isinstance(binary, xm.ExecutableSpec)


def test_command_list_accepts_string_or_sequence():
    assert xm.CommandList("echo hi").commands == ("echo hi",)
    assert xm.CommandList(["echo a", "echo b"]).commands == ("echo a", "echo b")
    assert xm.CommandList(("x",)).commands == ("x",)


@pytest.mark.parametrize("commands", [[], ()])
def test_command_list_needs_a_command(commands):
    with pytest.raises(ValueError, match="at least one command"):
        xm.CommandList(commands)


def test_command_list_name():
    assert xm.CommandList(["/usr/bin/python3 -c 'x'", "other"]).name == "python3"


def test_command_list_is_frozen():
    commands = xm.CommandList(["a"])
    with pytest.raises(AttributeError):
        commands.commands = ("b",)


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


def test_container_and_dockerfile_names():
    assert xm.Container("gcr.io/proj/img:tag").name == "img_tag"
    assert xm.Dockerfile().name == "dockerfile"
    assert xm.Dockerfile("./svc/api", "Dockerfile.dev").name == "api"
    assert xm.BazelBinary("//path/to:target").name == "to_target"
    assert xm.BazelContainer("//path/to:image.tar").name == "to_image_tar"


def test_python_container():
    spec = xm.PythonContainer(entrypoint=xm.ModuleName("pkg.main"), docker_instructions=["RUN x"])
    assert spec.docker_instructions == ("RUN x",)
    assert spec.name == "python_container"
    assert spec.entrypoint.module_name == "pkg.main"
    assert xm.PythonContainer(entrypoint=xm.CommandList("run"), path="/src/project").name == "project"
    assert xm.PythonContainer(entrypoint=xm.ModuleName("m")).docker_instructions is None
