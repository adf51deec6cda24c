"""experiment-server's functions and classes in xmanager.xm.study: what its own suite does not pin.

Its suite (tests/compat/experiment_server.toml) runs against these modules too; here: the global-random
contract of process_config_file, its errors (class and text), logs, files written, in-place changes of the
arguments (as 0.3.9), the file watcher, the sample file.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import pickle
import random
import threading
import warnings

import pytest
from xmanager.xm.study import config, grid, ordering, utils
from xmanager.xm.study.errors import (
    ArgumentError,
    ExperimentServerConfigurationException,
    ExperimentServerException,
    InvalidStudyError,
    StudyConfigError,
)
from xmanager.xm.study.sample import SAMPLE_CONFIG

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def test_error_classes() -> None:
    error = InvalidStudyError("bad", file="/home/me/private/study.toml", block="b", key="k", line=3)
    assert isinstance(error, StudyConfigError) and isinstance(error, ExperimentServerConfigurationException)
    assert isinstance(error, ExperimentServerException) and not isinstance(error, ValueError)
    assert str(error) == "bad" and error.message == "bad"  # experiment-server's text; where it is, apart.
    assert error.located_message == "/home/me/private/study.toml:3, block 'b', key 'k': bad"
    assert error.public_message == "study.toml:3, block 'b', key 'k': bad"
    assert error.located(file="other.toml", block="x") is error and error.file.endswith("private/study.toml")
    key_error = StudyConfigError.of(KeyError)("'c'", args=("c",), file="f.toml")
    assert isinstance(key_error, KeyError) and not isinstance(key_error, ExperimentServerException)
    assert str(key_error) == "'c'" and key_error.args == ("c",) and StudyConfigError.of(KeyError) is type(key_error)
    assert pickle.loads(pickle.dumps(key_error)).file == "f.toml"
    assert issubclass(ArgumentError, TypeError) and issubclass(ArgumentError, AssertionError)
    assert str(ExperimentServerException("text")) == "text" and ExperimentServerException("text").message == "text"


@pytest.mark.parametrize("case", ["choices", "groups_latin4", "flat_randomize", "latin_odd", "extends_chain"])
def test_process_config_file_is_blocks_for_and_seeds_the_global_generator(case: str, monkeypatch) -> None:
    path = GOLDEN / f"{case}.toml"
    study = _quiet(config.load_study, path)
    seeds = []
    monkeypatch.setattr(random, "seed", lambda value: (seeds.append(value), random._inst.seed(value))[1])
    for p in (1, 2, 5):
        blocks = _quiet(config.process_config_file, path, p, suppress_message=True)
        assert json.dumps(blocks) == json.dumps(study.blocks_for(p))
    assert seeds == [study.random_seed + p for p in (1, 2, 5)]


def test_process_config_file_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ExperimentServerConfigurationException, match="^Participant index needs to be greater than 0, got 0$"):
        config.process_config_file(GOLDEN / "choices.toml", 0)
    other = tmp_path / "study.txt"
    other.write_text((GOLDEN / "choices.toml").read_text())
    with pytest.raises(ExperimentServerException, match=r"^Invalid file type. Expected `\.toml`$") as info:
        config.process_config_file(other, 1)
    assert type(info.value) is ExperimentServerException
    with pytest.raises(FileNotFoundError):
        config.process_config_file(tmp_path / "missing.toml", 1)


def test_process_config_logs_and_changes_the_document_as_0_3_9(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="xmanager.xm.study.config"):
        config.process_config_file(GOLDEN / "choices.toml", 1, suppress_message=True)
        assert caplog.records == []
        blocks = config.process_config_file(GOLDEN / "choices.toml", 1)
    assert caplog.records[0].getMessage() == "Configuration loaded: \n" + json.dumps(blocks, indent=2)
    document = {
        "configuration": {"order": [["a", "b", "c"]], "within_groups_strategy": "randomize", "random_seed": 3},
        "blocks": [{"name": n, "config": {}} for n in "abc"],
    }
    config._process_config(document, 1, suppress_message=True)
    expected = [["a", "b", "c"]]
    random.seed(4)
    random.shuffle(expected[0])
    assert document["configuration"]["order"] == expected  # Shuffled in place, as there.


def _blocks(*names: str) -> list[dict]:
    return [{"name": name, "config": {"value": 1}} for name in names]


def test_construct_participant_condition_shuffles_its_arguments_in_place() -> None:
    order = [["a", "b"], ["c", "d"]]
    groups = list(order)
    blocks = _blocks("a", "b", "c", "d", "i")
    got = ordering.construct_participant_condition(
        blocks, 1, order, ["i"], [], "randomize", "randomize", rng=random.Random(4)
    )
    assert got[0] is blocks[4] and [b["name"] for b in got[1:]] == [name for group in order for name in group]
    assert sorted(map(id, order)) == sorted(map(id, groups))  # The caller's lists, shuffled (as 0.3.9 does).
    numbered = [{"name": 7, "config": {}}]
    assert ordering.construct_participant_condition(numbered, 1, ["7"], [], [])[0]["name"] == "7"
    assert numbered[0]["name"] == "7"


@pytest.mark.parametrize(
    ("kwargs", "kind", "message"),
    [
        ({"order": [["a"], ["zz"]]}, KeyError, "'zz'"),
        ({"order": [["a", "b"], ["c"]], "within_groups_strategy": "latin_square"}, ExperimentServerConfigurationException,
         "Currently latin_square not supported for `within_groups` when the number of elements in all groups are not the same"),
        ({"order": ["a"], "groups_strategy": "sideways"}, ExperimentServerConfigurationException,
         "Allowed values for `groups` are dict_values(['randomize', 'latin_square', 'as_is']), for sideways"),
        ({"order": {"1": ["a"]}, "groups_strategy": "randomize"}, ExperimentServerConfigurationException,
         "Ordering strategy for order should be as_is when order is a dictionary. Got randomize"),
        ({"order": ["a"], "init_block_names": {"1": ["b"]}, "init_blocks_strategy": "randomize"},
         ExperimentServerConfigurationException,
         "Ordering strategy for init_blocks should be as_is when init_blocks is a dictionary. Got randomize"),
        ({"order": ["a"], "init_block_names": "b"}, AssertionError, ""),
        ({"order": {"x": ["a"]}}, ValueError, "invalid literal for int() with base 10: 'x'"),
    ],
)
def test_construct_participant_condition_errors(kwargs: dict, kind: type, message: str) -> None:
    arguments = {"init_block_names": [], "final_block_names": [], **kwargs}
    with pytest.raises(kind) as info:
        ordering.construct_participant_condition(_blocks("a", "b", "c"), 1, **arguments)
    assert str(info.value) == message


def test_resolve_extends_in_place_and_unknown_parent() -> None:
    blocks = [{"name": "a", "config": {"x": 1, "t": {"u": 1}}}, {"name": "b", "extends": "a", "config": {"t": {"v": 2}}}]
    assert config.resolve_extends(blocks) is blocks
    assert blocks[1] == {"name": "b", "extends": "a", "config": {"t": {"v": 2, "u": 1}, "x": 1}}
    with pytest.raises(ExperimentServerConfigurationException, match="^`nope` is not a valid name. It must be a `name`.$"):
        config.resolve_extends([{"name": "c", "extends": "nope"}])


def test_choices_function_groups_and_errors() -> None:
    unique = config.ChoicesFunction([list(range(6))], {"unique": True}, random.Random(1))
    drawn = [value for _ in range(6) for value in unique([list(range(6))], {"unique": True})]
    assert sorted(drawn) == list(range(6))
    with pytest.raises(ExperimentServerConfigurationException, match="more calls to `choices`"):
        unique([list(range(6))], {"unique": True})
    with pytest.raises(AssertionError):
        unique([list(range(7))], {"unique": True})
    with pytest.raises(ExperimentServerConfigurationException, match="`args` should be a list or a dict. Got abc"):
        config.ChoicesFunction("abc", None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nothing'"):
        config.ChoicesFunction({"nothing": 1}, None)({"nothing": 1}, None)
    with pytest.raises(ExperimentServerConfigurationException, match="^Unknown function shuffle$"):
        config._resolve_function("shuffle", [[1]], {})


def test_verify_config(tmp_path: pathlib.Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="xmanager.xm.study.config"):
        assert _quiet(config.verify_config, GOLDEN / "choices.toml") == (True, None)
    table = config._get_table_for_participants(GOLDEN / "choices.toml")
    assert [record.getMessage() for record in caplog.records] == [
        f"Ordering for 5 participants: \n\n{grid.fancy_grid(table)}\n",
        f"Config file verification successful for {GOLDEN / 'choices.toml'}",
    ]
    seen = []
    assert config.verify_config(GOLDEN / "choices.toml", test_func=lambda blocks: (seen.append(1) or True, "")) == (
        True,
        None,
    )
    assert len(seen) == 5
    valid, reason = config.verify_config(GOLDEN / "choices.toml", test_func=lambda blocks: (False, "too short"))
    assert (valid, reason) == (False, "AssertionError: test_func failed for 1 with reason, too short\n")
    bad = tmp_path / "bad.toml"
    bad.write_text('[configuration]\norder = ["a"]\n[[blocks]]\nname = "b"\nconfig = {}\n')
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xmanager.xm.study.config"):
        valid, reason = config.verify_config(bad)
    assert (valid, reason) == (False, "xmanager.xm.study.errors.StudyKeyError: 'a'\n")
    assert caplog.records[-1].levelname == "ERROR" and caplog.records[-1].exc_info is not None
    with pytest.raises(KeyError):
        config.verify_config(bad, raise_on_error=True)


def test_verify_table_is_tabulate_s_fancy_grid() -> None:
    tabulate = pytest.importorskip("tabulate").tabulate
    cells = ["a", "1", "22", None, "", "1.5", "1,000", "True", "nan", "-3", "xé", "0.25", "1e5"]
    rng = random.Random(0)
    for _ in range(500):
        width = rng.randint(1, 4)
        table = [["block", *(f"participant_{p}" for p in range(1, width))]]
        table += [[f"block_{r}", *(rng.choice(cells) for _ in range(1, width))] for r in range(rng.randint(0, 4))]
        assert grid._fancy_grid(table) == tabulate(table, headers="firstrow", tablefmt="fancy_grid"), table


def test_generate_config_json(tmp_path: pathlib.Path, capsys, caplog) -> None:
    study = config.load_study(GOLDEN / "choices.toml")
    assert config.generate_config_json(GOLDEN / "choices.toml", [2, 1]) is None
    configs = {p: [b["config"] for b in study.blocks_for(p)] for p in (1, 2)}
    assert capsys.readouterr().out == json.dumps(configs[2]) + json.dumps(configs[1])  # No newlines, as there.
    out = tmp_path / "made" / "here"
    with caplog.at_level(logging.INFO, logger="xmanager.xm.study.config"):
        config.generate_config_json(GOLDEN / "choices.toml", range(1, 3), out)
    paths = [out / f"choices-participant_{p}.json" for p in (1, 2)]
    assert [r.getMessage() for r in caplog.records] == [
        f"Creating direcotry {out}",
        "Generated files: \n" + "\n".join(map(str, paths)),
    ]
    assert paths[1].read_text() == json.dumps(configs[2], indent=2)
    a_file = tmp_path / "file.json"
    a_file.write_text("")
    with pytest.raises(ExperimentServerException, match="`out_file_location` should be a directory"):
        config.generate_config_json(GOLDEN / "choices.toml", [1], a_file)
    # One participant after the other, as there: participant 1's file is written before participant 0 fails.
    with pytest.raises(ExperimentServerConfigurationException):
        config.generate_config_json(GOLDEN / "choices.toml", [1, 0], tmp_path / "partial")
    assert os.listdir(tmp_path / "partial") == ["choices-participant_1.json"]


def test_merge_dicts() -> None:
    assert utils.merge_dicts({"a": None, "b": {"c": 1}}, {"a": 2, "b": {"d": 3}, "e": 4}) == {
        "a": 2,
        "b": {"c": 1, "d": 3},
        "e": 4,
    }
    assert utils.merge_dicts({"a": 1}, "not a dict") == {"a": 1}
    assert utils.balanced_latin_square is ordering.balanced_latin_square


def test_file_modified_watcher(tmp_path: pathlib.Path, caplog) -> None:
    path = tmp_path / "study.toml"
    path.write_text("a")
    first, second = threading.Event(), threading.Event()

    def callback() -> None:
        if not first.is_set():
            first.set()
            raise RuntimeError("a failing callback does not stop the watch")
        second.set()

    with caplog.at_level(logging.INFO, logger="xmanager.xm.study.utils"):
        watcher = utils.FileModifiedWatcher(path, callback, interval=0.02)
        try:
            path.write_text("ab")
            assert first.wait(30)
            path.write_text("abc")
            assert second.wait(30)
        finally:
            watcher.end_watch()
    assert f"File modified: {path}" in caplog.text
    assert "Callback after file modified failed" in caplog.text


def test_new_config_file(tmp_path: pathlib.Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="xmanager.xm.study.utils"):
        assert utils.new_config_file(tmp_path / "a" / "b") is None
        assert (tmp_path / "a" / "b" / "new_config.toml").read_text() == SAMPLE_CONFIG
        utils.new_config_file(tmp_path / "c" / "s.toml")  # Parents of a .toml path are made (0.3.9 fails there).
        assert (tmp_path / "c" / "s.toml").read_text() == SAMPLE_CONFIG
        utils.new_config_file(tmp_path / "c" / "s.toml")
        utils.new_config_file(tmp_path / "a")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"New config at: {tmp_path / 'a' / 'b' / 'new_config.toml'}"),
        ("INFO", f"New config at: {tmp_path / 'c' / 's.toml'}"),
        ("ERROR", f"{tmp_path / 'c' / 's.toml'} already exists!"),
        ("ERROR", f"{tmp_path / 'a'} exists and does not end with `.toml`"),
    ]


def test_the_sample_is_a_valid_study(tmp_path: pathlib.Path) -> None:
    """Our own sample text (not experiment-server's sample_config.toml): what it says holds, and it expands."""
    path = tmp_path / "s.toml"
    path.write_text(SAMPLE_CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # No old key names, nothing deprecated.
        assert config.verify_config(path, raise_on_error=True) == (True, None)
        participants = {p: config.process_config_file(path, p, suppress_message=True) for p in range(1, 9)}
    conditions = ["slow", "medium", "fast", "adaptive"]
    for blocks in participants.values():
        names = [block["name"] for block in blocks]
        assert names[0] == "training" and names[-1] == "questionnaire" and sorted(names[1:-1]) == sorted(conditions)
        for block in blocks[1:-1]:
            assert block["config"]["trials"] == 20 and len(block["config"]["difficulty"]) == 3  # $trials, k = 3.
        sizes = [block["config"]["target_size"][0] for block in blocks[1:-1]]
        assert len(set(sizes)) == 4  # One `id` group, unique = true: no size twice for a participant.
    # A balanced Latin square over the four conditions: participants 1..4 each start with another one.
    assert sorted(participants[p][1]["name"] for p in range(1, 5)) == sorted(conditions)
    assert [b["name"] for b in participants[5]] == [b["name"] for b in participants[1]]
