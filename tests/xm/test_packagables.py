"""Packageable factories: xm.binary(executor_spec, path, ...) and friends."""

import pytest
from xm_fakes import FakeExecutor, FakeSpec
from xmanager import xm


def train(**kwargs):
    return kwargs


def test_binary():
    spec = FakeExecutor.Spec()
    packageable = xm.binary(spec, "/usr/bin/my-tool", args={"lr": 0.1, "on": True}, env_vars={"SEED": 1})
    assert isinstance(packageable, xm.Packageable)
    assert packageable.executor_spec is spec
    assert packageable.executable_spec == xm.Binary(path="/usr/bin/my-tool")
    assert packageable.executable_spec.name == "my_tool"
    assert isinstance(packageable.args, xm.SequentialArgs)
    assert packageable.args.to_list() == ["--lr=0.1", "--on"]
    assert packageable.env_vars == {"SEED": 1}


def test_binary_keyword_arguments_and_defaults():
    packageable = xm.binary(executor_spec=FakeSpec(), path="tool", dependencies=("a",))
    assert packageable.executable_spec.dependencies == ["a"]
    assert packageable.args == xm.SequentialArgs()
    assert packageable.env_vars == {} and type(packageable.env_vars) is dict
    with pytest.raises(TypeError, match="'NoneType' object is not iterable"):
        xm.binary(FakeSpec(), "tool", env_vars=None)


def test_binary_args_are_keyword_only():
    with pytest.raises(TypeError):
        xm.binary(FakeSpec(), "tool", (), ["--x"])  # type: ignore[misc]


def test_binary_list_and_sequential_args():
    assert xm.binary(FakeSpec(), "t", args=["a", "b"]).args.to_list() == ["a", "b"]
    merged = xm.merge_args({"a": 1}, ["p"])
    assert xm.binary(FakeSpec(), "t", args=merged).args == merged


def test_binary_validates_args_and_env():
    with pytest.raises(ValueError):
        xm.binary(FakeSpec(), "t", args="--x")
    with pytest.raises(ValueError, match="'1BAD'"):
        xm.binary(FakeSpec(), "t", env_vars={"1BAD": "x"})


def test_command_list():
    packageable = xm.command_list(FakeSpec(), ["echo a", "echo b"], args=["x"])
    assert packageable.executable_spec == xm.CommandList(["echo a", "echo b"])
    assert packageable.args.to_list() == ["x"]
    assert xm.command_list(FakeSpec(), []).executable_spec == xm.CommandList([])  # Refused when packaged.


def test_python_callable():
    packageable = xm.python_callable(FakeSpec(), train, name="trainer", args={"lr": 1})
    assert packageable.executable_spec.function is train
    assert packageable.executable_spec.name == "trainer"
    assert xm.python_callable(FakeSpec(), train).executable_spec.name == "train"
    assert packageable.args.to_dict() == {"lr": 1}
    with pytest.raises(TypeError):
        xm.python_callable(FakeSpec(), "train")


def test_containers():
    spec = FakeSpec()
    python = xm.python_container(spec, xm.ModuleName("pkg.main"), path="src", docker_instructions=["RUN a"])
    assert python.executable_spec == xm.PythonContainer(
        entrypoint=xm.ModuleName("pkg.main"), path="src", docker_instructions=["RUN a"]
    )
    image = xm.container(spec, "repo/img:1", env_vars={"A": "b"})
    assert image.executable_spec == xm.Container("repo/img:1")
    assert image.env_vars == {"A": "b"}
    docker = xm.dockerfile_container(spec, "ctx", "Dockerfile.x", args={"k": "v"})
    assert docker.executable_spec == xm.Dockerfile("ctx", "Dockerfile.x")
    assert docker.args.to_list() == ["--k=v"]


def test_bazel_factories():
    spec = FakeSpec()
    binary = xm.bazel_binary(spec, "//pkg:tool", bazel_args=["-c", "opt"], args=["-f"], env_vars={"K": "v"})
    assert binary.executable_spec == xm.BazelBinary(label="//pkg:tool", bazel_args=["-c", "opt"])
    assert binary.args.to_list() == ["-f"] and binary.env_vars == {"K": "v"}
    container = xm.bazel_container(spec, "//pkg:image.tar")
    assert container.executable_spec == xm.BazelContainer(label="//pkg:image.tar")
    assert container.args == xm.SequentialArgs() and container.env_vars == {}
