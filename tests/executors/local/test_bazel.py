"""xm.BazelBinary on the local executor: built with a real Bazel when one is installed, a clear error otherwise."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from absl.testing import flagsaver
from xmanager import xm, xm_flags, xm_local  # noqa: F401 - xm_flags defines --xm_bazel_command.
from xmanager.executors.local import bazel

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")
#: Debian's rules_java: Bazel resolves its Java toolchains for every build, and would download them otherwise.
RULES_JAVA = "/usr/share/bazel/rules/java"
# genrules only: sh_binary and cc_binary need rules_cc, which Bazel would download.
BUILD = """
genrule(name = "greet", srcs = ["greet.sh"], outs = ["greet"], cmd = "cp $< $@", executable = True)
genrule(name = "image", outs = ["image.tar"], cmd = "echo not-an-image > $@")
"""
GREET = '#!/bin/sh\necho "greetings $*" > "$OUTPUT_PATH"\n'


def _workspace(folder):
    folder.mkdir()
    (folder / "WORKSPACE").write_text("")
    (folder / "BUILD").write_text(BUILD)
    (folder / "greet.sh").write_text(GREET)
    os.chmod(folder / "greet.sh", 0o755)
    # Offline: Debian's rules_java instead of a download; a short-lived server for the test.
    (folder / ".bazelrc").write_text(
        f"startup --max_idle_secs=20\nbuild --override_repository=rules_java={RULES_JAVA}\n"
    )
    (folder / "launch.py").write_text("")
    return folder


needs_bazel = pytest.mark.skipif(
    shutil.which("bazel") is None or not os.path.isdir(RULES_JAVA),
    reason="Bazel is not installed (setup_scripts/test.sh installs bazel-bootstrap and bazel-rules-java)",
)


def test_bazel_command_honours_the_flag_and_splits_startup_options(tmp_path):
    with flagsaver.flagsaver(xm_bazel_command="bazel --max_idle_secs=5"):
        assert bazel.bazel_command() == ["bazel", "--max_idle_secs=5"]
    program = tmp_path / "my bazel"
    program.write_text("")
    with flagsaver.flagsaver(xm_bazel_command=str(program)):
        assert bazel.bazel_command() == [str(program)]


def test_without_bazel_packaging_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(tmp_path / "launch.py"))
    with flagsaver.flagsaver(xm_bazel_command="no-such-bazel-here"):
        with xm_local.create_experiment("no bazel") as experiment:
            with pytest.raises(bazel.BazelUnavailableError, match=r"BazelBinary\(label='//:x'\) needs Bazel.*no-such-bazel"):
                experiment.package([xm.Packageable(xm.BazelBinary(label="//:x"), xm_local.Local.Spec())])


def test_outputs_come_from_the_build_event_stream(tmp_path):
    events = tmp_path / "events.json"
    lines = [
        {"id": {"namedSet": {"id": "1"}}, "namedSetOfFiles": {"files": [{"name": "b", "uri": "file:///out/b%20c"}]}},
        {"id": {"namedSet": {"id": "0"}},
         "namedSetOfFiles": {"files": [{"name": "a", "uri": "file:///out/a"}], "fileSets": [{"id": "1"}]}},
        {"id": {"targetCompleted": {"label": "//:a"}},
         "completed": {"success": True, "outputGroup": [{"name": "default", "fileSets": [{"id": "0"}]}]}},
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert bazel._outputs(str(events)) == ["/out/a", "/out/b c"]


@needs_bazel
@pytest.mark.integration
def test_a_bazel_binary_is_built_and_run_with_the_jobs_args(tmp_path, monkeypatch):
    workspace = _workspace(tmp_path / "ws")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(workspace / "launch.py"))
    output = tmp_path / "out.txt"
    with xm_local.create_experiment("bazel binary") as experiment:
        [executable] = experiment.package([
            xm.Packageable(xm.BazelBinary(label="//:greet"), xm_local.Local.Spec(), args=["--from=packaging"]),
        ])
        experiment.add(xm.Job(executable, xm_local.Local(), args={"name": "xm"}, env_vars={"OUTPUT_PATH": str(output)}))
    assert output.read_text().strip() == "greetings --from=packaging --name=xm"
    assert os.path.basename(executable.command[0]) == "greet" and "bazel-out" in executable.command[0]


@needs_bazel
@pytest.mark.integration
def test_a_failed_build_is_one_error_with_bazels_reason(tmp_path, monkeypatch):
    workspace = _workspace(tmp_path / "ws")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(workspace / "launch.py"))
    with xm_local.create_experiment("bazel broken") as experiment:
        with pytest.raises(bazel.BazelBuildError, match=r"bazel build //:missing failed in .*ERROR: .*missing") as error:
            experiment.package([xm.Packageable(xm.BazelBinary(label="//:missing"), xm_local.Local.Spec())])
    assert "\n" not in str(error.value) and error.value.log


def test_the_cli_reports_a_missing_bazel_in_one_line(tmp_path):
    (tmp_path / "launcher.py").write_text(
        "from xmanager import xm, xm_local\n"
        "def main(argv):\n"
        "    with xm_local.create_experiment('bazel cli') as experiment:\n"
        "        experiment.package([xm.Packageable(xm.BazelBinary(label='//:x'), xm_local.Local.Spec())])\n"
    )
    result = subprocess.run([XMANAGER, "launch", "launcher.py", "--", "--xm_bazel_command=no-such-bazel-here"],
                            capture_output=True, text=True, cwd=tmp_path, env=os.environ, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("xmanager: error: xm.BazelBinary(label='//:x') needs Bazel"), result.stderr


@needs_bazel
@pytest.mark.integration
def test_a_bazel_container_builds_its_tar_and_loads_it_into_the_engine(tmp_path, monkeypatch):
    from xmanager.executors.images.build import DockerUnavailableError

    workspace = _workspace(tmp_path / "ws")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(workspace / "launch.py"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with xm_local.create_experiment("bazel container") as experiment:
        with pytest.raises(DockerUnavailableError, match="cannot reach a Docker engine"):
            experiment.package([xm.Packageable(xm.BazelContainer(label="//:image"), xm_local.Local.Spec())])
    assert (workspace / "bazel-bin" / "image.tar").exists()  # Built before the engine was needed.
