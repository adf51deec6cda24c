"""`xmanager launch` with XManager's --xm_* flags: the honoured ones act, the rest are accepted."""

import os
import subprocess
import sys

import pytest
from xmanager.xm_local import config

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

LAUNCHER = """
import sys
from absl import flags
from xmanager import xm_local

def main(argv):
    with xm_local.create_experiment('flags') as experiment:
        pass
    print('ARGV', argv[1:])
    print('STORE', experiment._store.url)
    print('K8S', flags.FLAGS.xm_k8s_service_account_name)
    print('SCRIPT', flags.FLAGS.xm_launch_script)
"""


def _launch(tmp_path, *flags_):
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    return subprocess.run([XMANAGER, "launch", "launcher.py", "--", *flags_], capture_output=True, text=True,
                          cwd=tmp_path, env=os.environ, timeout=120)


def test_xmanager_flags_are_accepted_and_not_passed_to_main(tmp_path):
    result = _launch(tmp_path, "--xm_wrap_late_bindings", "--xm_use_kaniko", "--xm_k8s_service_account_name=runner",
                     "--xm_upgrade_db", "--xm_use_docker_command=false", "--xm_cloud_build_timeout_seconds=5")
    assert result.returncode == 0, result.stderr
    assert "ARGV []" in result.stdout and "K8S runner" in result.stdout
    assert f"SCRIPT {tmp_path / 'launcher.py'}" in result.stdout  # As XManager's CLI sets it.


def test_a_database_yaml_file_becomes_the_store(tmp_path):
    (tmp_path / "db.yaml").write_text("sql_connector: sqlite\nsql_connection_settings:\n  backend: sqlite\n"
                                      "  db_name: stores/xm.sqlite3\n")
    (tmp_path / "stores").mkdir()
    result = _launch(tmp_path, "--xm_db_yaml_config_path=db.yaml")
    assert result.returncode == 0, result.stderr
    assert f"STORE sqlite:///{tmp_path}/stores/xm.sqlite3" in result.stdout
    assert (tmp_path / "stores" / "xm.sqlite3").exists()


def test_an_unusable_database_yaml_or_cloud_build_is_one_line(tmp_path):
    (tmp_path / "db.yaml").write_text("sql_connector: ''\nsql_connection_settings: {}\n")
    for flag, message in (
        ("--xm_db_yaml_config_path=db.yaml", "--xm_db_yaml_config_path: "),
        ("--noxm_build_image_locally", "--noxm_build_image_locally asks for Google Cloud Build"),
    ):
        result = _launch(tmp_path, flag)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"xmanager: error: {message}"), result.stderr


@pytest.mark.parametrize(("settings", "url"), [
    ("sql_connector: generic\nsql_connection_settings: {backend: postgresql, db_name: xm, username: u, "
     "password: 'p@ss', host: db.local, port: 5432}", "postgresql://u:p%40ss@db.local:5432/xm"),
    ("sql_connector: generic\nsql_connection_settings: {backend: mysql, driver: pymysql, db_name: xm, host: h}",
     "mysql+pymysql://h/xm"),
])
def test_generic_connection_settings_map_to_a_url(tmp_path, settings, url):
    path = tmp_path / "db.yaml"
    path.write_text(settings)
    assert config.database_url_from_yaml(str(path)) == url


def test_cloudsql_is_refused_with_the_alternative(tmp_path):
    path = tmp_path / "db.yaml"
    path.write_text("sql_connector: cloudsql\nsql_connection_settings: {backend: postgresql, db_name: xm}\n")
    with pytest.raises(ValueError, match="cloudsql .* use sql_connector generic"):
        config.database_url_from_yaml(str(path))
