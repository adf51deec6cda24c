"""xm.utils: sync wrappers for async code, the launch script's path, ShellSafeArg's guard."""

import asyncio
import os
import sys
import threading

import pytest
from xmanager import xm
from xmanager.xm import utils


def test_run_in_asyncio_loop_returns_and_keeps_metadata():
    @xm.run_in_asyncio_loop
    async def main(a, b=2):
        """Adds."""
        await asyncio.sleep(0)
        return a + b

    assert main(1, b=3) == 4
    assert main.__name__ == "main" and main.__doc__ == "Adds."


def test_run_in_asyncio_loop_inside_a_running_loop_uses_another_thread():
    @utils.run_in_asyncio_loop
    async def where():
        return threading.get_ident()

    async def caller():
        return where()

    assert asyncio.run(caller()) != threading.get_ident()
    assert where() == threading.get_ident()


def test_launch_script_from_environment(monkeypatch, tmp_path):
    script = tmp_path / "launch.py"
    script.write_text("")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(script))
    utils.find_launch_script_path.cache_clear()
    try:
        assert utils.find_launch_script_path() == str(script)
        assert utils.resolve_path_relative_to_launcher("data") == os.path.realpath(tmp_path / "data")
        assert utils.resolve_path_relative_to_launcher("/abs") == "/abs"
    finally:
        utils.find_launch_script_path.cache_clear()


def test_launch_script_missing_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(tmp_path / "gone.py"))
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "gone.py")])
    utils.find_launch_script_path.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="gone.py"):
            utils.resolve_path_relative_to_launcher(".")
    finally:
        utils.find_launch_script_path.cache_clear()


def test_shell_safe_arg_refuses_formatting():
    arg = xm.ShellSafeArg("$HOME")
    with pytest.raises(RuntimeError, match="ShellSafeArg"):
        f"--home={arg}"  # noqa: B018 - the formatting is what is tested.
    assert utils.ARG_ESCAPER(arg) == utils.ARGV_ESCAPER(arg) == "$HOME"


def test_launch_script_is_kept_while_its_sources_stay_the_same(monkeypatch, tmp_path):
    (tmp_path / "launch.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["launch.py"])
    assert utils.find_launch_script_path() == str(tmp_path / "launch.py")
    monkeypatch.chdir("/")  # A relative argv[0] still names the script found first.
    assert utils.resolve_path_relative_to_launcher("data") == os.path.realpath(tmp_path / "data")
    other = tmp_path / "other" / "run.py"
    other.parent.mkdir()
    other.write_text("")
    monkeypatch.setenv("XM_LAUNCH_SCRIPT", str(other))  # A new source is looked up.
    assert utils.resolve_path_relative_to_launcher(".") == os.path.realpath(other.parent)
