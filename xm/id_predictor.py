"""Client-side reservation of sequential ids, for objects whose id the backend assigns on creation.

A launcher sometimes needs a work unit's id before creating it (for a checkpoint path, say).
When the backend numbers objects consecutively and one process creates them, the id can be
predicted: :meth:`Predictor.reserve_id` hands out the next number at once, and
:meth:`Predictor.submit_id` makes the creations happen in id order. If one creation fails, the
sequence can no longer be trusted and every later submission raises
:class:`BrokenSequenceError`.

Usage::

    predictor = Predictor(next_id=1)
    unit_id = predictor.reserve_id()
    async with predictor.submit_id(unit_id):
        create_on_backend(...)  # Runs after every smaller id was created.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any


class BrokenSequenceError(RuntimeError):
    """An id can never be submitted: the creation of a smaller one failed."""


class Predictor:
    """Hands out consecutive ids and orders their submissions.

    ``reserve_id`` may be called from any thread; ``submit_id`` from coroutines (of one event
    loop at a time).
    """

    def __init__(self, next_id: int) -> None:
        self._next_id = next_id
        self._reserve_lock = threading.Lock()
        self._last_submitted = next_id - 1
        self._broken = False
        self._turn: Any = None  # An asyncio.Condition, made on first submit (asyncio loads lazily).

    def reserve_id(self) -> int:
        """The next id; each call gets a new one."""
        with self._reserve_lock:
            reserved = self._next_id
            self._next_id += 1
            return reserved

    def _condition(self) -> Any:
        if self._turn is None:
            import asyncio

            self._turn = asyncio.Condition()
        return self._turn

    @contextlib.asynccontextmanager
    async def submit_id(self, id_to_submit: int) -> AsyncIterator[None]:
        """Waits until every smaller id was submitted; the body creates the object with this id.

        Leaving the body normally marks the id as submitted; an exception breaks the sequence.
        """
        turn = self._condition()
        async with turn:
            await turn.wait_for(lambda: self._broken or self._last_submitted == id_to_submit - 1)
            try:
                if self._broken:
                    raise BrokenSequenceError(
                        f"id {id_to_submit} cannot be submitted: the submission of an earlier id failed"
                    )
                yield
                self._last_submitted = id_to_submit
            except BaseException:
                self._broken = True
                raise
            finally:
                turn.notify_all()


__all__ = ["BrokenSequenceError", "Predictor"]
