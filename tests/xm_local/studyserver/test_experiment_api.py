"""experiment-server's Experiment and ParticipantState (xmanager.xm_local.studyserver.state), beyond its own suite."""

from __future__ import annotations

import os

import pytest
import xmanager.xm_local.studyserver as experiment_server
from xmanager.xm.study.errors import ArgumentError, ExperimentServerException
from xmanager.xm_local.studyserver.state import Experiment, ParticipantState, UnknownParticipantError

STUDY = """\
[configuration]
order = [["a", "b"]]
[configuration.variables]
X = 1
[[blocks]]
name = "a"
config = { x = "$X" }
[[blocks]]
name = "b"
config = { x = 2 }
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


def test_package_has_experiment_servers_names() -> None:
    assert experiment_server.__version__ == "0.3.9"
    assert experiment_server.Experiment is Experiment
    for name, module in [("_api", "state"), ("_server", "http"), ("_client", "client")]:
        assert getattr(experiment_server, name).__name__ == f"xmanager.xm_local.studyserver.{module}"
    assert experiment_server._process_config.__name__ == "xmanager.xm.study.config"
    assert experiment_server._participant_ordering.__name__ == "xmanager.xm.study.ordering"
    assert experiment_server.utils.__name__ == "xmanager.xm.study.utils"
    assert experiment_server.cli.cli.name == "experiment-server"


def test_experiment_is_in_memory_and_follows_the_file(config, tmp_path) -> None:
    experiment = Experiment(config, 2)
    try:
        assert os.listdir(tmp_path) == ["study.toml"]  # Nothing written.
        assert list(experiment.global_state) == [2] and experiment.default_participant_index == 2
        assert experiment.get_config() is None and experiment.get_state() is False
        assert experiment.move_to_next() == "a" and experiment.get_config()["x"] == 1
        config.write_text(STUDY.replace("X = 1", "X = 10"))
        assert experiment.get_config()["x"] == 10  # The next call sees the edit; the block id stays.
        assert experiment.get_participant_state().block_id == 0
        config.write_text("[configuration\n")
        assert experiment.get_config()["x"] == 10  # A broken edit keeps the previous config.
        config.write_text(STUDY)
        experiment.default_participant_index = 5
        assert sorted(experiment.global_state) == [2, 5] and experiment.get_state(2) is True
        assert experiment.move_all_to_block(1) == "b"
        assert experiment.move_to_block(7) == "END" and experiment.get_state() is False
        with pytest.raises(AssertionError):
            experiment.move_to_block(1.0)
        with pytest.raises(AssertionError):
            experiment.default_participant_index = 0
        with pytest.raises(KeyError) as info:
            experiment.get_config(9)
        assert isinstance(info.value, ExperimentServerException) and isinstance(info.value, UnknownParticipantError)
        assert "9" in str(info.value)
        other = config.with_name("other.toml")
        other.write_text(STUDY.replace('order = [["a", "b"]]', 'order = [["b"]]'))
        experiment.config_file = other  # Another file: everyone starts again.
        assert experiment.config_file == other
        assert [(p, s.block_id, s.blocks_count) for p, s in experiment.global_state.items()] == [(2, -1, 1), (5, -1, 1)]
    finally:
        experiment.close()
    with pytest.raises(AssertionError):
        Experiment(config, 0)


def test_participant_state() -> None:
    blocks = [{"name": "a", "config": {"block_id": 0}}, {"name": "b", "config": {"block_id": 1}}]
    state = ParticipantState(blocks, 3, False)
    assert (state.block_id, state.active, state.block, state.block_name) == (-1, False, None, "START")
    assert state.status_string() == "Participant index: 3    \nBlock: -1 / 2    \n Name: N/A"
    assert state.move_to_next_block() == "a" and state.active and state.block is blocks[0]
    assert state.config_json() == '{\n    "block_id": 0\n}'
    state.block_id = 9
    assert (state.block_id, state.active, state.block_name) == (2, False, "END")
    assert state.status_string().endswith("Block: 2 / 2    \n Name: N/A")
    state.block_id = -4
    assert state.block_id == -1
    state.config = blocks[:1]
    assert state.blocks_count == 1


def test_argument_errors_are_assertions_and_type_errors() -> None:
    assert issubclass(ArgumentError, AssertionError) and issubclass(ArgumentError, TypeError)
