"""experiment-server's functions and classes in xmanager.xm.study: what its own suite does not pin.

Its suite (tests/compat/experiment_server.toml) runs against these modules too; here: the global-random
contract of process_config_file, errors, files written, no mutation of arguments, the file watcher.
"""

from __future__ import annotations

import json
import logging
import pathlib
import random
import threading
import warnings

import pytest
from xmanager.xm.study import config, ordering, utils
from xmanager.xm.study.errors import (
    ArgumentError,
    ExperimentServerConfigurationException,
    ExperimentServerException,
    StudyConfigError,
)
from xmanager.xm.study.sample import SAMPLE_CONFIG

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def test_error_classes() -> None:
    error = StudyConfigError("bad", file="/home/me/private/study.toml", block="b", key="k", line=3)
    assert isinstance(error, ExperimentServerConfigurationException)
    assert isinstance(error, ExperimentServerException) and isinstance(error, ValueError)
    assert str(error) == "/home/me/private/study.toml:3, block 'b', key 'k': bad"
    assert error.public_message == "study.toml:3, block 'b', key 'k': bad"
    assert str(StudyConfigError("only the detail")) == "only the detail"
    assert error.located(file="other.toml", block="x", key="y") is not error
    assert str(StudyConfigError("d", key="k").located(file="f.toml", block="b")) == "f.toml, block 'b', key 'k': d"
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
    with pytest.raises(ExperimentServerConfigurationException, match="participant index"):
        config.process_config_file(GOLDEN / "choices.toml", 0)
    other = tmp_path / "study.txt"
    other.write_text((GOLDEN / "choices.toml").read_text())
    with pytest.raises(ExperimentServerException, match=r"\.toml") as info:
        config.process_config_file(other, 1)
    assert not isinstance(info.value, StudyConfigError)


def test_process_config_file_logs_unless_suppressed(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="xmanager.xm.study.config"):
        config.process_config_file(GOLDEN / "choices.toml", 1, suppress_message=True)
        assert caplog.records == []
        blocks = config.process_config_file(GOLDEN / "choices.toml", 1)
    assert json.dumps(blocks, indent=2) in caplog.text


def _blocks(*names: str) -> list[dict]:
    return [{"name": name, "config": {"value": 1}} for name in names]


def test_construct_participant_condition_orders_without_changing_its_arguments() -> None:
    order = [["a", "b"], ["c", "d"]]
    blocks = _blocks("a", "b", "c", "d", "i")
    got = ordering.construct_participant_condition(
        blocks, 1, order, ["i"], [], "randomize", "randomize", rng=random.Random(4)
    )
    assert order == [["a", "b"], ["c", "d"]]
    assert got[0] is blocks[4] and sorted(b["name"] for b in got) == ["a", "b", "c", "d", "i"]
    names = [[b["name"] for b in ordering.construct_participant_condition(blocks, 1, order, ["i"], [], "randomize",
                                                                          "randomize", rng=random.Random(4))]]
    assert names[0] == [b["name"] for b in got]  # Same generator, same order.
    numbered = [{"name": 7, "config": {}}]
    assert ordering.construct_participant_condition(numbered, 1, ["7"], [], [])[0]["name"] == "7"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"order": [["a"], ["zz"]]}, None),
        ({"order": [["a", "b"], ["c"]], "within_groups_strategy": "latin_square"}, "within_groups_strategy"),
        ({"order": ["a"], "groups_strategy": "sideways"}, "groups_strategy"),
        ({"order": {"1": ["a"]}, "groups_strategy": "randomize"}, "order"),
        ({"order": {}}, "order"),
        ({"order": ["a"], "init_block_names": {"1": ["b"]}, "init_blocks_strategy": "randomize"}, "init_blocks"),
        ({"order": "a"}, "order"),
    ],
)
def test_construct_participant_condition_errors(kwargs: dict, key: str | None) -> None:
    arguments = {"init_block_names": [], "final_block_names": [], **kwargs}
    with pytest.raises(StudyConfigError) as info:
        ordering.construct_participant_condition(_blocks("a", "b", "c"), 1, **arguments)
    assert info.value.key == key


def test_resolve_extends_in_place_and_unknown_parent() -> None:
    blocks = [{"name": "a", "config": {"x": 1, "t": {"u": 1}}}, {"name": "b", "extends": "a", "config": {"t": {"v": 2}}}]
    assert config.resolve_extends(blocks) is blocks
    assert blocks[1] == {"name": "b", "extends": "a", "config": {"t": {"v": 2, "u": 1}, "x": 1}}
    with pytest.raises(StudyConfigError, match="`nope` is not a valid name") as info:
        config.resolve_extends([{"name": "c", "extends": "nope"}])
    assert (info.value.block, info.value.key) == ("c", "extends")


def test_choices_function_groups_and_errors() -> None:
    unique = config.ChoicesFunction([list(range(6))], {"unique": True}, random.Random(1))
    drawn = [value for _ in range(6) for value in unique([list(range(6))], {"unique": True})]
    assert sorted(drawn) == list(range(6))
    with pytest.raises(StudyConfigError, match="more calls to `choices`"):
        unique([list(range(6))], {"unique": True})
    with pytest.raises(StudyConfigError, match="differ"):
        unique([list(range(7))], {"unique": True})
    with pytest.raises(StudyConfigError, match="list or a table"):
        config.ChoicesFunction("abc", None)
    with pytest.raises(StudyConfigError, match="invalid `args`"):
        config.ChoicesFunction({"nothing": 1}, None)({"nothing": 1}, None)
    calls: dict = {}
    with pytest.raises(StudyConfigError, match="unknown function"):
        config._resolve_function("shuffle", [[1]], calls)


def test_verify_config(tmp_path: pathlib.Path) -> None:
    assert _quiet(config.verify_config, GOLDEN / "choices.toml") == (True, None)
    seen = []
    assert config.verify_config(GOLDEN / "choices.toml", test_func=lambda blocks: (seen.append(1) or True, "")) == (
        True,
        None,
    )
    assert len(seen) == 5
    valid, reason = config.verify_config(GOLDEN / "choices.toml", test_func=lambda blocks: (False, "too short"))
    assert not valid and "too short" in reason and "participant 1" in reason
    bad = tmp_path / "bad.toml"
    bad.write_text('[configuration]\norder = ["a"]\n[[blocks]]\nname = "b"\nconfig = {}\n')
    valid, reason = config.verify_config(bad)
    assert not valid and reason == f"{bad}, block 'a', key 'order': unknown block (not a `name` in [[blocks]])"
    with pytest.raises(StudyConfigError):
        config.verify_config(bad, raise_on_error=True)


def test_generate_config_json(tmp_path: pathlib.Path, capsys) -> None:
    study = config.load_study(GOLDEN / "choices.toml")
    assert config.generate_config_json(GOLDEN / "choices.toml", [2, 1]) == []
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [[b["config"] for b in study.blocks_for(p)] for p in (2, 1)]
    out = tmp_path / "made" / "here"
    written = config.generate_config_json(GOLDEN / "choices.toml", range(1, 3), out)
    assert written == [str(out / f"choices-participant_{p}.json") for p in (1, 2)]
    assert (out / "choices-participant_2.json").read_text() == json.dumps(
        [b["config"] for b in study.blocks_for(2)], indent=2
    )
    a_file = tmp_path / "file.json"
    a_file.write_text("")
    with pytest.raises(ExperimentServerException, match="not a folder"):
        config.generate_config_json(GOLDEN / "choices.toml", [1], a_file)
    with pytest.raises(StudyConfigError):  # Participant 0 fails before anything is written.
        config.generate_config_json(GOLDEN / "choices.toml", [1, 0], tmp_path / "never")
    assert not (tmp_path / "never").exists()


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
    assert "callback for the change" in caplog.text


def test_new_config_file(tmp_path: pathlib.Path) -> None:
    written = utils.new_config_file(tmp_path / "a" / "b")
    assert written == tmp_path / "a" / "b" / "new_config.toml" and written.read_text() == SAMPLE_CONFIG
    assert utils.new_config_file(tmp_path / "s.toml").read_text() == SAMPLE_CONFIG
    with pytest.raises(ExperimentServerException, match="already exists"):
        utils.new_config_file(tmp_path / "s.toml")
