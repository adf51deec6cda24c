"""Executors are found through the ``xmanager.executors`` entry points only: a plugin is its folder plus one
entry point, and ``xm_local`` re-exports what the plugins declare, loading only the plugin named."""

import importlib.metadata
import subprocess
import sys
import textwrap

import pytest
from xmanager import xm_local
from xmanager.xm_local import registry

TOY_PLUGIN = textwrap.dedent('''\
    import attrs
    from xmanager.executors.api import ExecutorPlugin
    from xmanager.xm.job_blocks import Executor, ExecutorSpec

    @attrs.frozen
    class ToySpec(ExecutorSpec):
        pass

    @attrs.frozen
    class Toy(Executor):
        Spec = ToySpec

    class ToyPlugin(ExecutorPlugin):
        name = NAME
        executor_type = Toy
        spec_type = ToySpec
        supported_executables = ()
        exports = {"Toy": Toy, "ToySpec": ToySpec}

        def package(self, packageable):
            raise NotImplementedError

        def open(self, sink, settings):
            raise NotImplementedError

    plugin = ToyPlugin()
    ''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Installs a plugin module and registers it (``registered(name)``) as an entry point."""

    def registered(entry_name, plugin_name=None):
        (tmp_path / "toy_executor.py").write_text(TOY_PLUGIN.replace("NAME", repr(plugin_name or entry_name)))
        monkeypatch.syspath_prepend(str(tmp_path))
        entries = dict(registry._entry_points())
        entries[entry_name] = importlib.metadata.EntryPoint(entry_name, "toy_executor:plugin", registry.GROUP)
        monkeypatch.setattr(registry, "_entry_points", lambda: entries)
        _forget()

    yield registered
    _forget()
    sys.modules.pop("toy_executor", None)


def _forget():
    """Drops what the registry and xm_local cached, so they look again."""
    for cached in (registry.plugin, registry.export, registry.for_executor, registry.for_spec):
        cached.cache_clear()
    for name in ("__all__", "Toy", "ToySpec"):
        xm_local.__dict__.pop(name, None)


def test_a_new_plugin_is_its_module_plus_one_entry_point(toy):
    toy("toy")
    import toy_executor

    assert xm_local.Toy is toy_executor.Toy and xm_local.ToySpec is toy_executor.ToySpec
    assert {"Toy", "ToySpec", "Local", "Slurm", "InProcess", "create_experiment"} <= set(xm_local.__all__)
    assert registry.for_executor(toy_executor.Toy) is toy_executor.plugin
    assert registry.for_spec(toy_executor.ToySpec) is toy_executor.plugin


def test_a_plugin_must_carry_its_entry_points_name(toy):
    toy("toy", plugin_name="other")
    with pytest.raises(TypeError, match="entry point 'toy' in xmanager.executors names a plugin called 'other'"):
        registry.plugin("toy")


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        xm_local.Nothing  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        xm_local.nothing  # noqa: B018
    with pytest.raises(LookupError, match="no executor plugin named 'nothing' .registered: in_process, kubernetes"):
        registry.plugin("nothing")


def test_xmanagers_names_resolve_to_the_plugins_classes():
    vertex = registry.plugin("vertex")
    assert xm_local.Caip is xm_local.Vertex is vertex.executor_type
    assert xm_local.CaipSpec is xm_local.VertexSpec is vertex.spec_type
    assert xm_local.DockerOptions is registry.plugin("local").exports["DockerOptions"]


@pytest.mark.parametrize(("name", "package"), [
    ("Slurm", "xmanager.executors.slurm"),
    ("VectorEngineSpec", "xmanager.executors.vector_engine"),
    ("Local", "xmanager.executors.local"),
])
def test_naming_one_executor_loads_no_other_plugin(name, package):
    code = (
        "import sys\nfrom xmanager import xm_local\n"
        f"xm_local.{name}\nfrom xmanager.xm_local import experiment, registry\n"
        "plugins = {entry.module for entry in registry._entry_points().values()}\n"
        "print(' '.join(sorted(plugins & set(sys.modules))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [package]
