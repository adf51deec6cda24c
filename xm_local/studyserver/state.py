"""Participant state of a study server, persisted in a small SQLite file.

Each participant has an id (>= 1), the blocks :meth:`Study.blocks_for` gives for that id, and a
block id: ``-1`` before the first block, ``0..n-1`` while a block runs, ``n`` after the last one.
A participant is *active* while its block id is in ``0..n-1``.

Every change of the participant table (ids and block ids) is written in its own transaction to
``<config file>.participants.sqlite3`` (WAL mode), so a restart or a crash of the server loses
nothing; :class:`StudyState` re-loads the table when it starts. Blocks are not stored: they are
recomputed from the config file, which is deterministic for a given participant.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

import attrs
from xmanager.xm.study.config import Study, StudyConfigError, load_study

__all__ = [
    "END",
    "START",
    "Participant",
    "StudyConfigError",
    "StudyState",
    "UnknownParticipantError",
    "participants_db_path",
]

START = "START"
END = "END"


class UnknownParticipantError(KeyError):
    """The participant id is not known to the server."""

    def __init__(self, participant_id: int) -> None:
        super().__init__(participant_id)
        self.participant_id = participant_id


def participants_db_path(config_path: str | os.PathLike[str]) -> str:
    """Where the participants of a study file are persisted."""
    return os.fspath(config_path) + ".participants.sqlite3"


@attrs.define
class Participant:
    """One participant: its blocks and where it is in them."""

    participant_id: int
    blocks: list[dict[str, Any]]
    block_id: int = -1
    _config_json: dict[int, str] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    @property
    def blocks_count(self) -> int:
        return len(self.blocks)

    @property
    def active(self) -> bool:
        return 0 <= self.block_id < len(self.blocks)

    @property
    def block_name(self) -> str:
        if self.block_id < 0:
            return START
        if self.block_id >= len(self.blocks):
            return END
        return str(self.blocks[self.block_id]["name"])

    @property
    def config(self) -> dict[str, Any] | None:
        """The config of the current block, or None when not active."""
        if not self.active:
            return None
        config: dict[str, Any] = self.blocks[self.block_id]["config"]
        return config

    def config_json(self) -> str | None:
        """``json.dumps(config, indent=4)`` of the current block (cached), or None when not active."""
        if not self.active:
            return None
        text = self._config_json.get(self.block_id)
        if text is None:
            text = json.dumps(self.blocks[self.block_id]["config"], indent=4)
            self._config_json[self.block_id] = text
        return text

    def clamp(self, block_id: int) -> int:
        return max(-1, min(block_id, len(self.blocks)))

    def status_string(self) -> str:
        return (
            f"Participant index: {self.participant_id}    &nbsp;&nbsp;&nbsp;"
            f"Block: {self.block_id} / {len(self.blocks)}    &nbsp;&nbsp;&nbsp; Name: {self.block_name}"
        )


class StudyState:
    """The participants of one study file, persisted next to it.

    Args:
      config_path: the TOML study file (read with :func:`load_study`).
      default_participant: the participant used when a call gives no id; it is created if needed.
      db_path: the SQLite file; ``<config_path>.participants.sqlite3`` by default.

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
            raise ValueError(f"default participant must be an int >= 1, got {default_participant!r}")
        self.config_path = os.fspath(config_path)
        self.default_participant = default_participant
        self.db_path = os.fspath(db_path) if db_path is not None else participants_db_path(self.config_path)
        self.study: Study = load_study(self.config_path)
        self.participants: dict[int, Participant] = {}
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
            participant = Participant(pid, self.study.blocks_for(pid))
            participant.block_id = participant.clamp(block_id)
            self.participants[pid] = participant
        if self.default_participant not in self.participants:
            self.add_participant(self.default_participant)

    # -- persistence -------------------------------------------------------------------------------

    def _save(self, *participants: Participant) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO participants (participant_id, block_id) VALUES (?, ?) "
                "ON CONFLICT(participant_id) DO UPDATE SET block_id = excluded.block_id",
                [(p.participant_id, p.block_id) for p in participants],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- lookups -----------------------------------------------------------------------------------

    def participant(self, participant_id: int | None = None) -> Participant:
        pid = self.default_participant if participant_id is None else participant_id
        try:
            return self.participants[pid]
        except KeyError:
            raise UnknownParticipantError(pid) from None

    def get_config(self, participant_id: int | None = None) -> dict[str, Any] | None:
        return self.participant(participant_id).config

    def get_all_configs(self, participant_id: int | None = None) -> list[dict[str, Any]]:
        return [block["config"] for block in self.participant(participant_id).blocks]

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
        participant.block_id = participant.clamp(participant.block_id + 1)
        self._save(participant)
        return participant.block_name

    def move_to_block(self, block_id: int, participant_id: int | None = None) -> str:
        """Move to ``block_id`` clamped to ``[-1, n]``; returns the block name, ``START`` or ``END``."""
        participant = self.participant(participant_id)
        participant.block_id = participant.clamp(block_id)
        self._save(participant)
        return participant.block_name

    def move_all_to_block(self, block_id: int) -> None:
        """Move every known participant (active or not) to ``block_id``, clamped per participant."""
        for participant in self.participants.values():
            participant.block_id = participant.clamp(block_id)
        if self.participants:
            self._save(*self.participants.values())

    def new_participant(self) -> int:
        """Create the participant ``max(existing ids) + 1`` and return its id."""
        pid = max(self.participants, default=0) + 1
        self.add_participant(pid)
        return pid

    def add_participant(self, participant_id: int) -> bool:
        """Create a participant; False if it exists. Raises StudyConfigError if its blocks cannot be built."""
        if participant_id in self.participants:
            return False
        participant = Participant(participant_id, self.study.blocks_for(participant_id))
        self._save(participant)
        self.participants[participant_id] = participant
        return True

    def reset_participant(self, participant_id: int | None = None) -> None:
        """Rebuild a participant's blocks from the current study and move it back to the start."""
        participant = self.participant(participant_id)
        blocks = self.study.blocks_for(participant.participant_id)
        participant.blocks = blocks
        participant._config_json.clear()
        participant.block_id = -1
        self._save(participant)

    def reload(self) -> None:
        """Re-read the config file, keeping participants and their block ids (clamped to the new counts).

        On a config error the old study and blocks are kept and the StudyConfigError is raised.
        """
        study = load_study(self.config_path)
        new_blocks = {pid: study.blocks_for(pid) for pid in self.participants}
        self.study = study
        changed: list[Participant] = []
        for pid, blocks in new_blocks.items():
            participant = self.participants[pid]
            participant.blocks = blocks
            participant._config_json.clear()
            clamped = participant.clamp(participant.block_id)
            if clamped != participant.block_id:
                participant.block_id = clamped
                changed.append(participant)
        if changed:
            self._save(*changed)
