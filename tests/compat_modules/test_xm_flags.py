"""xmanager.xm_flags: XManager's --xm_* flags with its names, types and defaults."""

from absl import flags
from absl.testing import flagsaver
from xmanager import xm_flags

#: Every flag of XManager 0.8.5's xm_flags.py, with its default.
XMANAGER_FLAGS = {
    "xm_build_image_locally": True, "xm_use_docker_command": True, "xm_show_docker_command_progress": False,
    "xm_wrap_late_bindings": False, "xm_cloud_build_timeout_seconds": 1200, "xm_use_cloud_build_cache": False,
    "xm_use_kaniko": False, "xm_kaniko_cache_ttl": "336h", "xm_gcp_service_account_name": "xmanager",
    "xm_k8s_service_account_name": "default", "xm_db_yaml_config_path": None, "xm_upgrade_db": False,
    "xm_bazel_command": "bazel", "xm_use_multiplexer": None, "xm_open_multiplexer_window": None,
    "xm_subprocess_docker_impl": False, "xm_gcs_path": None, "xm_launch_script": None,
}


def test_every_xmanager_flag_is_defined_with_its_default():
    for name, default in XMANAGER_FLAGS.items():
        assert name in flags.FLAGS, name
        assert flags.FLAGS[name].default == default, name


def test_values_are_readable_before_parsing_and_follow_flagsaver():
    assert xm_flags.value(xm_flags.BAZEL_COMMAND) == "bazel"
    with flagsaver.flagsaver(xm_bazel_command="bazelisk"):
        assert xm_flags.value(xm_flags.BAZEL_COMMAND) == "bazelisk"
    assert not xm_flags.is_present(xm_flags.K8S_SERVICE_ACCOUNT_NAME)


def test_should_use_multiplexer_follows_xmanagers_rule():
    assert xm_flags.should_use_multiplexer() is False
    with flagsaver.flagsaver(xm_open_multiplexer_window=1):
        assert xm_flags.should_use_multiplexer() is True
    with flagsaver.flagsaver(xm_use_multiplexer=False, xm_open_multiplexer_window=1):
        assert xm_flags.should_use_multiplexer() is False


def test_xm_local_defines_the_flags_on_import():
    import subprocess
    import sys

    code = "from absl import flags; from xmanager import xm_local; print(flags.FLAGS['xm_wrap_late_bindings'].default)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
