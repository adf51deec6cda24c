"""SequentialArgs / merge_args: XManager merge semantics, rendered to argv without a shell."""

import os

import pytest
from xmanager import xm
from xmanager.xm import args as args_lib


def test_merge_args_renders_xmanager_argv():
    merged = xm.merge_args(
        {"lr": 0.1, "flag": True, "off": False, "lst": [1, 2], "s": "a b"},
        ["--", "pos"],
        {"lr": 0.2},
    )
    assert merged.to_list() == ["--lr=0.2", "--flag", "--nooff", "--lst=1", "--lst=2", "--s=a b", "--", "pos"]


def test_values_are_not_shell_quoted():
    rendered = xm.merge_args({"q": "it's \"x\"", "glob": "*.py"}, ["a; rm -rf /"]).to_list()
    assert rendered == ["--q=it's \"x\"", "--glob=*.py", "a; rm -rf /"]


def test_tuple_value_repeats_flag():
    assert xm.merge_args({"t": ("a", "b")}).to_list() == ["--t=a", "--t=b"]


def test_none_value_is_omitted_with_warning():
    merged = xm.merge_args({"a": 1, "skip": None, "b": 2})
    with pytest.warns(UserWarning, match="skip"):
        rendered = merged.to_list()
    assert rendered == ["--a=1", "--b=2"]


def test_bare_string_raises_value_error():
    with pytest.raises(ValueError, match="string"):
        xm.merge_args("--lr=0.1")
    with pytest.raises(ValueError):
        xm.SequentialArgs.from_collection(b"--lr")


def test_non_string_key_raises_type_error():
    with pytest.raises(TypeError, match="1"):
        xm.merge_args({1: "x"})


def test_unsupported_collection_type_raises_type_error():
    with pytest.raises(TypeError, match="int"):
        xm.merge_args(5)


def test_keyword_override_keeps_its_position():
    merged = xm.merge_args({"a": 1, "b": 2}, ["p"], {"c": 3}, {"a": 10})
    assert merged.to_list() == ["--a=10", "--b=2", "p", "--c=3"]
    assert list(merged) == [("a", 10), ("b", 2), (None, "p"), ("c", 3)]


def test_positionals_are_appended_not_deduplicated():
    assert xm.merge_args(["x"], ["x"]).to_list() == ["x", "x"]


def test_merge_skips_none_operands_and_accepts_sequential_args():
    base = xm.merge_args({"a": 1}, ["p"])
    merged = xm.merge_args(None, base, None, {"a": 2})
    assert merged.to_list() == ["--a=2", "p"]
    # The operand was not modified by merging over it.
    assert base.to_list() == ["--a=1", "p"]


def test_from_collection_none_is_empty():
    empty = xm.SequentialArgs.from_collection(None)
    assert len(empty) == 0
    assert empty.to_list() == []


def test_copy_is_independent():
    original = xm.merge_args({"a": 1})
    clone = original.copy()
    clone.update({"a": 2, "b": 3})
    assert original.to_list() == ["--a=1"]
    assert clone.to_list() == ["--a=2", "--b=3"]
    assert clone != original


def test_equality():
    assert xm.merge_args({"a": 1}, ["x"]) == xm.merge_args({"a": 1}, ["x"])
    assert xm.merge_args({"a": 1}, ["x"]) != xm.merge_args(["x"], {"a": 1})
    assert xm.merge_args({"a": 1}) != {"a": 1}


def test_to_dict_kwargs_only():
    merged = xm.merge_args(["p0"], {"a": 1, "b": [1, 2]}, ["p1"])
    assert merged.to_dict(kwargs_only=True) == {"a": 1, "b": [1, 2]}


def test_to_dict_with_positionals_leading():
    merged = xm.merge_args(["p0", "p1"], {"a": 1})
    assert merged.to_dict() == {"0": "p0", "1": "p1", "a": 1}


def test_shell_safe_arg_expands_from_given_env():
    env = {"HOME": "/h", "USER": "me"}
    merged = xm.merge_args(
        [xm.ShellSafeArg("$HOME/data"), xm.ShellSafeArg("${USER}_x")],
        {"out": xm.ShellSafeArg("$HOME/${USER}"), "many": [xm.ShellSafeArg("$USER"), "lit"]},
    )
    assert merged.to_list(env) == ["/h/data", "me_x", "--out=/h/me", "--many=me", "--many=lit"]


def test_shell_safe_arg_missing_var_expands_to_empty():
    assert xm.ShellSafeArg("a${NOPE}b$NOPE").expand({}) == "ab"


def test_shell_safe_arg_defaults_to_process_environment(monkeypatch):
    monkeypatch.setenv("XM_TEST_ARGS_VAR", "fromenv")
    assert xm.merge_args([xm.ShellSafeArg("$XM_TEST_ARGS_VAR")]).to_list() == ["fromenv"]
    # An explicit env mapping wins over the process environment, even when empty.
    assert xm.merge_args([xm.ShellSafeArg("$XM_TEST_ARGS_VAR")]).to_list({}) == [""]


def test_plain_string_dollar_is_not_expanded():
    assert xm.merge_args(["$HOME"], {"x": "${HOME}"}).to_list({"HOME": "/h"}) == ["$HOME", "--x=${HOME}"]


def test_command_substitution_renders_literally(tmp_path):
    marker = tmp_path / "x"
    text = f"$(touch {marker})"
    merged = xm.merge_args([text, xm.ShellSafeArg(text)], {"k": text, "s": xm.ShellSafeArg(f"`touch {marker}`")})
    assert merged.to_list({}) == [text, text, f"--k={text}", f"--s=`touch {marker}`"]
    assert not os.path.exists(marker)


def test_shell_safe_arg_value_semantics():
    assert xm.ShellSafeArg("$A") == xm.ShellSafeArg("$A")
    assert xm.ShellSafeArg("$A") != "$A"
    assert hash(xm.ShellSafeArg("$A")) == hash(xm.ShellSafeArg("$A"))
    assert repr(xm.ShellSafeArg("$A")) == "ShellSafeArg('$A')"


def test_module_exports_same_objects():
    assert xm.SequentialArgs is args_lib.SequentialArgs
    assert xm.merge_args is args_lib.merge_args
