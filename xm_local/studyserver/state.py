"""Participant state of a study: who is in which block. Also experiment-server's ``_api`` module.

Each participant has an index (>= 1), the blocks :meth:`Study.blocks_for` gives for that index, and a
block id: ``-1`` before the first block, ``0..n-1`` while a block runs, ``n`` after the last one.
A participant is *active* while its block id is in ``0..n-1``.

:class:`StudyState` (the server's) writes every change of the participant table (indices and block ids)
in its own transaction to an SQLite database: ``<config file>.participants.sqlite3`` (WAL mode) by default,
so a restart or a crash of the server loses nothing and the table is re-loaded at start, or ``":memory:"``
(the server's default, as experiment-server keeps its participants in memory; ``--persist`` asks for the
file). Blocks are not stored: they are recomputed from the config file, which is deterministic for a given
participant. Each participant's blocks are logged (``Configuration loaded: ...``) as experiment-server logs
each config it processes, and a changed config file is logged (``File modified``, ``Reloading config``).

:class:`Experiment` and :class:`ParticipantState` are experiment-server's classes, with its method
names and results: an :class:`Experiment` keeps its participants in memory and picks up edits of the
config file (checked on every call). ``_generate_config_json`` is its name for
:func:`xmanager.xm.study.config.generate_config_json`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from xmanager.xm.study.config import Study, StudyConfigError, _json_default, generate_config_json, load_study
from xmanager.xm.study.errors import ArgumentError, ExperimentServerException

__all__ = [
    "END",
    "START",
    "Experiment",
    "ParticipantState",
    "StudyConfigError",
    "StudyState",
    "UnknownParticipantError",
    "participants_db_path",
]

log = logging.getLogger(__name__)
START = "START"
END = "END"
# experiment-server's name for writing participants' configs as JSON (the CLI calls it by this name).
_generate_config_json = generate_config_json


class UnknownParticipantError(KeyError, ExperimentServerException):
    """The participant index is not known (a KeyError, as experiment-server's lookups raise)."""

    message: str  # Always set here (the base allows None).

    def __init__(self, participant_id: int) -> None:
        self.message = f"participant with index {participant_id} is not known (add it first)"
        super().__init__(self.message)
        self.participant_id = participant_id

    def __str__(self) -> str:
        return self.message


def participants_db_path(config_path: str | os.PathLike[str]) -> str:
    """Where the participants of a study file are persisted."""
    return os.fspath(config_path) + ".participants.sqlite3"


def _check_int(value: Any, what: str) -> int:
    if not isinstance(value, int):
        raise ArgumentError(f"`{what}` should be an int, got {value!r}")
    return value


class ParticipantState:
    """One participant: its blocks (``config``, a list of blocks) and where it is in them.

    Setting ``block_id`` clamps it to ``-1..len(config)`` and sets ``active``.
    """

    def __init__(self, config: list[dict[str, Any]], participant_index: int, active: bool = False) -> None:
        self.participant_index = participant_index
        self.config = config
        self._block_id = -1
        self.active = active

    @property
    def config(self) -> list[dict[str, Any]]:
        return self._config

    @config.setter
    def config(self, blocks: list[dict[str, Any]]) -> None:
        self._config = blocks
        self._json: dict[int, str] = {}

    @property
    def participant_id(self) -> int:
        return self.participant_index

    @property
    def block_id(self) -> int:
        return self._block_id

    @block_id.setter
    def block_id(self, block_id: int) -> None:
        self._block_id = self.clamp(block_id)
        self.active = 0 <= self._block_id < len(self._config)

    @property
    def blocks_count(self) -> int:
        return len(self._config)

    @property
    def block(self) -> dict[str, Any] | None:
        """The current block, or None before the first and after the last."""
        return self._config[self._block_id] if 0 <= self._block_id < len(self._config) else None

    @property
    def block_name(self) -> str:
        """The current block's name, ``START`` before the first block or ``END`` after the last."""
        if self._block_id < 0:
            return START
        if self._block_id >= len(self._config):
            return END
        return str(self._config[self._block_id]["name"])

    def move_to_next_block(self) -> str:
        self.block_id = self._block_id + 1
        return self.block_name

    def clamp(self, block_id: int) -> int:
        return max(-1, min(block_id, len(self._config)))

    def config_json(self) -> str | None:
        """``json.dumps(config, indent=4)`` of the current block's config (cached), or None when not in a block."""
        block = self.block
        if block is None:
            return None
        text = self._json.get(self._block_id)
        if text is None:
            text = self._json[self._block_id] = json.dumps(block["config"], indent=4)
        return text

    def status_string(self) -> str:
        """Three lines: index, block id / count, and the block's name (``N/A`` outside the blocks)."""
        block = self.block
        name = block["name"] if block is not None else "N/A"
        return f"Participant index: {self.participant_index}    \nBlock: {self._block_id} / {len(self._config)}    \n Name: {name}"


class StudyState:
    """The participants of one study file, persisted next to it.

    Args:
      config_path: the TOML study file (read with :func:`load_study`).
      default_participant: the participant used when a call gives no index; it is created if needed.
      db_path: the SQLite file; ``<config_path>.participants.sqlite3`` by default, ``":memory:"`` for none.

    Raises:
      StudyConfigError: the study file is invalid (at start; :meth:`reload` keeps the old state).
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        default_participant: int = 1,
        db_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(default_participant, int) or isinstance(default_participant, bool) or default_participant < 1:
            raise ArgumentError(f"the default participant index must be an int >= 1, got {default_participant!r}")
        self.config_path = os.fspath(config_path)
        self.default_participant = default_participant
        self.db_path = os.fspath(db_path) if db_path is not None else participants_db_path(self.config_path)
        if Path(self.config_path).suffix != ".toml":
            raise ExperimentServerException("Invalid file type. Expected `.toml`")
        self.study: Study = load_study(self.config_path)
        self._signature = self._config_signature()
        self.participants: dict[int, ParticipantState] = {}
        self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        try:
            self._load()
        except BaseException:
            self._db.close()
            raise

    def _load(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # Survives a crash of the process; fsync at checkpoints.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS participants (participant_id INTEGER PRIMARY KEY, block_id INTEGER NOT NULL)"
        )
        stored = self._db.execute(
            "SELECT participant_id, block_id FROM participants ORDER BY participant_id"
        ).fetchall()
        for pid, block_id in stored:
            participant = ParticipantState(self._blocks_for(pid), pid)
            participant.block_id = block_id
            self.participants[pid] = participant
        if self.default_participant not in self.participants:
            self.add_participant(self.default_participant)

    # -- persistence -------------------------------------------------------------------------------

    def _save(self, *participants: ParticipantState) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO participants (participant_id, block_id) VALUES (?, ?) "
                "ON CONFLICT(participant_id) DO UPDATE SET block_id = excluded.block_id",
                [(p.participant_index, p.block_id) for p in participants],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _blocks_for(self, participant_id: int, study: Study | None = None) -> list[dict[str, Any]]:
        """A participant's blocks, logged (INFO) as experiment-server logs each config it processes."""
        blocks = (study or self.study).blocks_for(participant_id)
        if log.isEnabledFor(logging.INFO):
            log.info("Configuration loaded: \n%s", json.dumps(blocks, indent=2, default=_json_default))
        return blocks

    def close(self) -> None:
        self._db.close()

    # -- lookups -----------------------------------------------------------------------------------

    def participant(self, participant_id: int | None = None) -> ParticipantState:
        pid = self.default_participant if participant_id is None else participant_id
        try:
            return self.participants[pid]
        except (KeyError, TypeError):
            raise UnknownParticipantError(pid) from None

    def get_config(self, participant_id: int | None = None) -> dict[str, Any] | None:
        """The current block's config (the stored dict itself), or None when not in a block."""
        block = self.participant(participant_id).block
        return None if block is None else block["config"]

    def get_all_configs(self, participant_id: int | None = None) -> list[dict[str, Any]]:
        return [block["config"] for block in self.participant(participant_id).config]

    def get_blocks_count(self, participant_id: int | None = None) -> int:
        return self.participant(participant_id).blocks_count

    def get_block_id(self, participant_id: int | None = None) -> int:
        return self.participant(participant_id).block_id

    def get_active(self, participant_id: int | None = None) -> bool:
        return self.participant(participant_id).active

    def status_string(self, participant_id: int | None = None) -> str:
        return self.participant(participant_id).status_string()

    # -- changes -----------------------------------------------------------------------------------

    def move_to_next(self, participant_id: int | None = None) -> str:
        """Move to the next block; returns its name, or ``END`` after the last block."""
        participant = self.participant(participant_id)
        name = participant.move_to_next_block()
        self._save(participant)
        return name

    def move_to_block(self, block_id: int, participant_id: int | None = None) -> str:
        """Move to ``block_id`` clamped to ``[-1, n]``; returns the block name, ``START`` or ``END``."""
        _check_int(block_id, "block_id")
        participant = self.participant(participant_id)
        participant.block_id = block_id
        self._save(participant)
        return participant.block_name

    def move_all_to_block(self, block_id: int) -> str | None:
        """Move every participant (active or not) to ``block_id``, clamped per participant.

        Returns the block name of the first participant (None if there is none).
        """
        _check_int(block_id, "block_id")
        for participant in self.participants.values():
            participant.block_id = block_id
        if not self.participants:
            return None
        self._save(*self.participants.values())
        return next(iter(self.participants.values())).block_name

    def new_participant(self) -> int:
        """Create the participant ``max(existing indices) + 1`` and return its index."""
        pid = max(self.participants, default=0) + 1
        self.add_participant(pid)
        return pid

    def add_participant(self, participant_id: int) -> bool:
        """Create a participant; False if it exists. Raises StudyConfigError if its blocks cannot be built."""
        if participant_id in self.participants:
            return False
        participant = ParticipantState(self._blocks_for(participant_id), participant_id)
        self._save(participant)
        self.participants[participant_id] = participant
        return True

    def reset_participant(self, participant_id: int | None = None) -> bool:
        """Rebuild a participant's blocks from the current study; the block id and ``active`` stay, as there."""
        participant = self.participant(participant_id)
        participant.config = self._blocks_for(participant.participant_index)
        return True

    # -- the config file ---------------------------------------------------------------------------

    def _config_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.config_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self) -> None:
        """Re-read the config file and rebuild each participant's blocks, as experiment-server does on a change.

        Block ids and ``active`` stay as they are (a block id past the new end reads as ``END``). Participants
        are rebuilt in order: when one fails, the ones before it keep their new blocks and the others their old
        ones, and the error is raised; a file that fails for everyone changes nothing.
        """
        self._signature = self._config_signature()
        study = load_study(self.config_path)
        self.study = study
        for pid, participant in self.participants.items():
            participant.config = self._blocks_for(pid, study)

    def reload_if_changed(self) -> bool:
        """Reload if the file changed since it was last read; a broken file is logged and the old config kept."""
        signature = self._config_signature()
        if signature is None or signature == self._signature:
            return False
        log.info("File modified: %s", os.path.join(os.path.dirname(self.config_path) or ".", os.path.basename(self.config_path)))
        log.info("Reloading config")
        try:
            self.reload()
        except Exception as exc:  # As experiment-server: logged, and the previous config stays.
            log.exception("Failed to load config %s", exc)
            return False
        return True

    # -- experiment-server's names -----------------------------------------------------------------

    @property
    def global_state(self) -> dict[int, ParticipantState]:
        """The participants by index."""
        return self.participants

    @property
    def default_participant_index(self) -> int:
        return self.default_participant

    @default_participant_index.setter
    def default_participant_index(self, value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise ArgumentError(f"the default participant index must be an int >= 1, got {value!r}")
        self.default_participant = value
        self.add_participant(value)

    @property
    def config_file(self) -> Path:
        return Path(self.config_path)

    @config_file.setter
    def config_file(self, value: str | os.PathLike[str]) -> None:
        """Serve another config file: every participant's blocks are rebuilt and start again before block 0."""
        study = load_study(value)
        blocks = {pid: self._blocks_for(pid, study) for pid in self.participants}
        self.config_path, self.study = os.fspath(value), study
        self._signature = self._config_signature()
        for pid, participant_blocks in blocks.items():
            self.participants[pid] = ParticipantState(participant_blocks, pid)
        if self.participants:
            self._save(*self.participants.values())

    def get_next_participant(self) -> int:
        return self.new_participant()

    def add_participant_index(self, participant_index: int) -> bool:
        return self.add_participant(participant_index)

    def get_participant_state(self, participant_index: int | None = None) -> ParticipantState:
        return self.participant(participant_index)

    def get_state(self, participant_index: int | None = None) -> bool:
        """Whether the participant is in a block."""
        return self.get_active(participant_index)


class Experiment(StudyState):
    """experiment-server's ``Experiment``: the participants of a study file, kept in memory.

    Any call after the config file changed works on the new config (participants and block ids kept);
    a broken edit is logged and the previous config stays. Nothing is written to disk.
    """

    def __init__(self, config_file: str | os.PathLike[str], default_participant_index: int = 1) -> None:
        super().__init__(config_file, default_participant_index, db_path=":memory:")

    def participant(self, participant_id: int | None = None) -> ParticipantState:
        self.reload_if_changed()
        return super().participant(participant_id)

    def add_participant(self, participant_id: int) -> bool:
        self.reload_if_changed()
        return super().add_participant(participant_id)

    def move_all_to_block(self, block_id: int) -> str | None:
        self.reload_if_changed()
        return super().move_all_to_block(block_id)
