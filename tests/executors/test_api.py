"""The seam's value objects and what each installed plugin declares."""

from xmanager.executors.api import ExecutorPlugin, Handle
from xmanager.xm_local import registry


def test_a_handle_comes_back_from_what_the_store_keeps():
    handle = Handle("slurm", 12, 3, "train", {"job_id": "41", "task": 0})
    stored = handle.to_json()
    assert stored == {"executor": "slurm", "data": {"job_id": "41", "task": 0}}  # The ids are the row's keys.
    assert Handle.from_json(stored, 12, 3, "train") == handle
    assert Handle.from_json({"executor": "local"}, 1, 2, "j") == Handle("local", 1, 2, "j", {})


def test_every_plugin_declares_whether_its_jobs_outlive_the_launcher():
    plugins = {plugin.name: plugin for plugin in registry.all_plugins()}
    assert {name: plugin.detached for name, plugin in plugins.items()} == {
        "local": False, "slurm": True, "kubernetes": True, "vertex": True, "vector_engine": False,
        "in_process": False,
    }
    for plugin in plugins.values():
        assert isinstance(plugin, ExecutorPlugin)
        assert plugin.exports[plugin.executor_type.__name__] is plugin.executor_type
        assert plugin.exports[plugin.spec_type.__name__] is plugin.spec_type
