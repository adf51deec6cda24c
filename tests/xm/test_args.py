"""SequentialArgs / merge_args: XManager merge semantics; escapers for a shell, for argv, and ours with $VAR expansion."""

import os

import attrs
import pytest
from xmanager import xm
from xmanager.xm import args as args_lib
from xmanager.xm import utils


def test_merge_args_renders_xmanager_tokens():
    merged = xm.merge_args(
        {"lr": 0.1, "flag": True, "off": False, "lst": [1, 2], "s": "a b"},
        ["--", "pos"],
        {"lr": 0.2},
    )
    assert merged.to_list(utils.ARGV_ESCAPER) == [
        "--lr=0.2", "--flag", "--nooff", "--lst=1", "--lst=2", "--s=a b", "--", "pos",
    ]
    # The default escaper quotes for a POSIX shell.
    assert merged.to_list()[5] == "--s='a b'"


def test_argv_escaper_leaves_values_literal():
    rendered = xm.merge_args({"q": "it's \"x\"", "glob": "*.py"}, ["a; rm -rf /"]).to_list(utils.ARGV_ESCAPER)
    assert rendered == ["--q=it's \"x\"", "--glob=*.py", "a; rm -rf /"]


def test_tuple_value_repeats_flag_and_nested_lists_are_one_value():
    assert xm.merge_args({"t": ("a", "b")}).to_list(str) == ["--t=a", "--t=b"]
    assert xm.merge_args({"n": [[1], 2]}).to_list(str) == ["--n=[[1], 2]"]


def test_custom_kwargs_joiner():
    assert xm.merge_args({"a": 1}).to_list(str, lambda key, value: f"{key} {value}") == ["--a 1"]


def test_none_value_is_omitted_with_a_warning_on_stdout_once(capsys):
    merged = xm.merge_args({"a": 1, "skip_this_one": None, "b": 2})
    assert merged.to_list(str) == ["--a=1", "--b=2"]
    assert merged.to_list(str) == ["--a=1", "--b=2"]
    assert capsys.readouterr().out == (
        "WARNING: Setting `skip_this_one=None` will exclude the flag. To pass the actual value, "
        'pass the string literal `skip_this_one="None"` instead\n'
    )


def test_bare_string_raises_value_error_naming_the_fix():
    with pytest.raises(ValueError, match=r"Wrap it in a list: \['--lr=0.1'\]"):
        xm.merge_args("--lr=0.1")


def test_mapping_keys_become_strings():
    assert xm.merge_args({1: "x"}).to_dict() == {"1": "x"}


def test_unsupported_collection_type_raises_type_error():
    with pytest.raises(TypeError, match="^Unsupported collection type: 5$"):
        xm.merge_args(5)
    with pytest.raises(TypeError, match=r"^Unsupported collection type: \{1\}$"):
        xm.SequentialArgs.from_collection({1})


def test_keyword_override_keeps_its_position():
    merged = xm.merge_args({"a": 1, "b": 2}, ["p"], {"c": 3}, {"a": 10})
    assert merged.to_list(str) == ["--a=10", "--b=2", "p", "--c=3"]
    assert merged.to_indexed_dict() == {"a": 10, "b": 2, "2": "p", "c": 3}


def test_positionals_are_appended_not_deduplicated():
    assert xm.merge_args(["x"], ["x"]).to_list(str) == ["x", "x"]


def test_merge_skips_none_operands_and_does_not_change_operands():
    base = xm.merge_args({"a": 1}, ["p"])
    merged = xm.merge_args(None, base, None, {"a": 2})
    assert merged.to_list(str) == ["--a=2", "p"]
    assert base.to_list(str) == ["--a=1", "p"]


def test_from_collection_none_is_empty():
    empty = xm.SequentialArgs.from_collection(None)
    assert empty == xm.SequentialArgs() and empty.to_list() == []
    assert bool(empty)  # No __len__, as in XManager: an empty one is still true.


def test_rewrite_and_remove_return_new_args():
    original = xm.merge_args(["keep", "drop"], {"drop": 1, "path": "/a/x", "n": 3})
    rewritten = original.rewrite_args(lambda text: text.replace("/a", "/b"))
    assert rewritten.to_list(str) == ["keep", "drop", "--drop=1", "--path=/b/x", "--n=3"]
    assert original.remove_args("drop").to_list(str) == ["keep", "--path=/a/x", "--n=3"]
    assert original.to_list(str) == ["keep", "drop", "--drop=1", "--path=/a/x", "--n=3"]


def test_equality_and_repr():
    assert xm.merge_args({"a": 1}, ["x"]) == xm.merge_args({"a": 1}, ["x"])
    assert xm.merge_args({"a": 1}, ["x"]) != xm.merge_args(["x"], {"a": 1})
    assert xm.merge_args({"a": 1}) != {"a": 1}
    # attrs' repr of XManager's fields (XManager's own __repr__ is overridden by attrs).
    assert repr(xm.merge_args({"a": "v"}, [2])) == (
        "SequentialArgs(_items=[SequentialArgs._KeywordItem(name='a'), SequentialArgs._RegularItem(value=2)], "
        "_kwvalues={'a': 'v'})"
    )


def test_xmanager_data_model():
    merged = xm.merge_args(["p"], {"k": 1}, {"k": 2})
    assert merged._items == [xm.SequentialArgs._RegularItem("p"), xm.SequentialArgs._KeywordItem("k")]
    assert merged._kwvalues == {"k": 2}
    assert xm.SequentialArgs([xm.SequentialArgs._RegularItem("x")], {}).to_list() == ["x"]
    assert xm.merge_args(["a"]) < xm.merge_args(["b"])  # attrs ordering, as in XManager.
    with pytest.raises(TypeError, match="unhashable"):
        hash(merged)
    with pytest.raises(TypeError, match="not iterable"):
        iter(merged)
    with pytest.raises(TypeError, match="unexpected keyword argument 'items'"):
        attrs.evolve(merged)
    assert isinstance(xm.SequentialArgs.__dict__["from_collection"], staticmethod)


def test_to_dict_kwargs_only_is_the_keyword_mapping_itself():
    merged = xm.merge_args(["p"], {"k": 1, "n": None})
    kwargs = merged.to_dict(kwargs_only=True)
    assert kwargs == {"k": 1, "n": None}
    kwargs["z"] = 3
    assert merged.to_dict(kwargs_only=True) == {"k": 1, "n": None, "z": 3}
    assert merged.to_dict() is not merged.to_dict()


def test_to_dict_forms():
    merged = xm.merge_args(["p0"], {"a": 1, "b": [1, 2]}, [xm.ShellSafeArg("$X")])
    assert merged.to_dict(kwargs_only=True) == {"a": 1, "b": [1, 2]}
    assert merged.to_dict() == {"p0": True, "a": 1, "b": [1, 2], "$X": True}
    assert merged.to_indexed_dict() == {"0": "p0", "a": 1, "b": [1, 2], "3": xm.ShellSafeArg("$X")}


def test_escapers():
    import enum

    class Mode(enum.Enum):
        FAST = 1

    assert utils.ARG_ESCAPER("a b") == "'a b'"
    assert utils.ARG_ESCAPER(Mode.FAST) == "FAST"
    assert utils.ARG_ESCAPER(xm.ShellSafeArg("$HOME")) == "$HOME"
    assert utils.ARGV_ESCAPER("a b") == "a b"
    assert utils.ARGV_ESCAPER(Mode.FAST) == "FAST"
    assert utils.trivial_kwargs_joiner("--a", "1") == "--a=1"


def test_env_expanding_escaper_expands_shell_safe_args_only():
    env = {"HOME": "/h", "USER": "me"}
    merged = xm.merge_args(
        [xm.ShellSafeArg("$HOME/data"), xm.ShellSafeArg("${USER}_x"), "$HOME"],
        {"out": xm.ShellSafeArg("$HOME/${USER}"), "many": [xm.ShellSafeArg("$USER"), "lit"], "plain": "${HOME}"},
    )
    assert merged.to_list(utils.env_expanding_escaper(env)) == [
        "/h/data", "me_x", "$HOME", "--out=/h/me", "--many=me", "--many=lit", "--plain=${HOME}",
    ]


def test_shell_safe_arg_missing_var_expands_to_empty():
    assert xm.ShellSafeArg("a${NOPE}b$NOPE").expand({}) == "ab"


def test_command_substitution_renders_literally(tmp_path):
    marker = tmp_path / "x"
    text = f"$(touch {marker})"
    merged = xm.merge_args([text, xm.ShellSafeArg(text)], {"k": text, "s": xm.ShellSafeArg(f"`touch {marker}`")})
    assert merged.to_list(utils.env_expanding_escaper({})) == [text, text, f"--k={text}", f"--s=`touch {marker}`"]
    assert not os.path.exists(marker)


def test_shell_safe_arg_value_semantics():
    assert xm.ShellSafeArg("$A") == xm.ShellSafeArg("$A")
    assert xm.ShellSafeArg("$A") != "$A"
    assert xm.ShellSafeArg("$A") < xm.ShellSafeArg("$B")
    with pytest.raises(TypeError, match="unhashable"):
        hash(xm.ShellSafeArg("$A"))
    assert repr(xm.ShellSafeArg("$A")) == "ShellSafeArg(arg='$A')"
    with pytest.raises(RuntimeError) as raised:
        str(xm.ShellSafeArg("$A"))
    assert str(raised.value) == "Converting ShellSafeArg(arg='$A') to a string would strip the ShellSafe semantics."
    assert isinstance(xm.ShellSafeArg("$A"), utils.SpecialArg)


def test_module_exports_same_objects():
    assert xm.SequentialArgs is args_lib.SequentialArgs
    assert xm.merge_args is args_lib.merge_args
    assert xm.ShellSafeArg is utils.ShellSafeArg
