"""Awaitables returned by the launch API: what ``add()`` returns, and a unit's completion.

Both work from sync and async code: a ``UnitFuture`` is already done when a unit was launched
in place, or follows a task (an asyncio task of the caller's loop, or a task running on an
experiment's own loop thread). asyncio is imported only when something is awaited.
"""

from __future__ import annotations

import collections.abc
import sys
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Optional

_PENDING = object()


def running_loop() -> Any:
    """The running asyncio loop of this thread, without importing asyncio when unused."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class UnitFuture:
    """What ``add()`` returns: awaitable, and usable from sync code like a future.

    ``await`` it (or call ``.result()`` once done) for the unit; ``cancel()`` stops a launch
    that has not finished; ``add_done_callback(fn)`` calls ``fn(future)``.
    """

    def __init__(self, future: Any = None, *, value: Any = _PENDING) -> None:
        self._future = future  # None (value known), an asyncio future/task, or a concurrent future.
        self._value = value

    @classmethod
    def resolved(cls, value: Any) -> UnitFuture:
        return cls(value=value)

    def _is_concurrent(self) -> bool:
        return _is_concurrent_future(self._future)

    def done(self) -> bool:
        return self._future is None or self._future.done()

    def cancelled(self) -> bool:
        return self._future is not None and self._future.cancelled()

    def cancel(self) -> bool:
        """Cancels a launch that is still running; False when it already finished."""
        return self._future is not None and self._future.cancel()

    def result(self, timeout: Optional[float] = None) -> Any:
        """The unit. Blocks for a launch on another thread; raises asyncio's InvalidStateError on this
        thread's running loop (await it there)."""
        if self._future is None:
            return self._value
        if self._is_concurrent() and (self._future.done() or running_loop() is None):
            return self._future.result(timeout)
        if not self._future.done():
            import asyncio

            raise asyncio.InvalidStateError("the launch is not finished; await the future instead")
        return self._future.result()

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if self._future is None:
            return None
        if self._is_concurrent():
            return self._future.exception(timeout)
        return self._future.exception()

    def add_done_callback(self, callback: Callable[[UnitFuture], Any]) -> None:
        if self._future is None:
            callback(self)
        else:
            self._future.add_done_callback(lambda _: callback(self))

    def __await__(self) -> Generator[Any, None, Any]:
        if self._future is None:
            return self._value
        if self._is_concurrent():
            import asyncio

            return (yield from asyncio.wrap_future(self._future).__await__())
        return (yield from self._future.__await__())

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled() else "done" if self.done() else "pending"
        shown = f" {self._value!r}" if self._future is None else ""
        return f"<UnitFuture {state}{shown}>"


def _is_concurrent_future(value: Any) -> bool:
    futures = sys.modules.get("concurrent.futures")  # Not loaded: nothing can be one of its futures.
    return futures is not None and isinstance(value, futures.Future)


async def await_launch(launch: Any) -> Any:
    """Awaits a launch future of any kind (asyncio, concurrent, or our UnitFuture)."""
    if _is_concurrent_future(launch):
        import asyncio

        return await asyncio.wrap_future(launch)
    return await launch


class WorkUnitCompletedAwaitable(collections.abc.Coroutine[Any, Any, Any]):
    """What ``wait_until_complete()`` returns: await it for the unit; ``.work_unit`` is the unit.

    Usable with ``asyncio.wait``/``as_completed``: each result knows its unit. Sync code has
    waited already (``wait_until_complete`` blocks there); awaiting then just returns the unit.
    """

    def __init__(self, work_unit: Any, awaitable: Optional[Callable[[], Awaitable[Any]]]) -> None:
        self.work_unit = work_unit
        self._wait = awaitable  # Makes the awaitable of the wait; None: nothing left to wait for.
        self._coroutine: Any = None  # Made on first use: an unawaited one would warn when collected.

    async def _run(self) -> Any:
        if self._wait is not None:
            await self._wait()
        return self.work_unit

    def _inner(self) -> Any:
        if self._coroutine is None:
            self._coroutine = self._run()
        return self._coroutine

    def __await__(self) -> Generator[Any, None, Any]:
        return self._inner().__await__()

    def send(self, value: Any) -> Any:
        return self._inner().send(value)

    def throw(self, *args: Any) -> Any:
        return self._inner().throw(*args)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()


__all__ = ["UnitFuture", "WorkUnitCompletedAwaitable", "await_launch", "running_loop"]
