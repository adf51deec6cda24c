"""Batches packaging requests made one by one (``package_async``) into one build (``package``).

``AsyncPackager.add`` queues a packageable and returns an awaitable of its executable; the next
``package()`` builds everything queued (plus any extra packageables given to it) in one call to
the batch function. Awaiting before ``package()`` raises :class:`PackageHasNotBeenCalledError`.
The awaitables pickle once their value is known, so they can travel to another process or loop.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

from xmanager.xm.job_blocks import Executable, Packageable

BatchPackager = Callable[[Sequence[Packageable]], Sequence[Executable]]


class PackageHasNotBeenCalledError(RuntimeError):
    """A ``package_async`` result was awaited before ``package()`` built it."""


class PicklableAwaitableImpl:
    """An awaitable of a packaging result; usable from any event loop, picklable once done."""

    def __init__(self, get_future: Callable[[], concurrent.futures.Future[Any]]) -> None:
        self._get_future = get_future

    def __await__(self) -> Generator[Any, None, Any]:
        import asyncio

        return asyncio.wrap_future(self._get_future()).__await__()

    def __reduce__(self) -> tuple[Any, ...]:
        return _resolved, (self._get_future().result(),)


def _resolved(value: Any) -> PicklableAwaitableImpl:
    """An awaitable of a value that is already known (how a pickled awaitable comes back)."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return PicklableAwaitableImpl(lambda: future)


class AsyncPackager:
    """Queues packageables and builds them in batches with ``package_batch``. Thread-safe."""

    def __init__(self, package_batch: BatchPackager) -> None:
        self._package_batch = package_batch
        self._lock = threading.Lock()
        self._queued: list[tuple[Packageable, concurrent.futures.Future[Executable]]] = []

    def add(self, packageable: Packageable) -> Awaitable[Executable]:
        """Queues ``packageable``; the awaitable gives its executable after the next ``package()``."""
        future: concurrent.futures.Future[Executable] = concurrent.futures.Future()
        with self._lock:
            self._queued.append((packageable, future))

        def packaged() -> concurrent.futures.Future[Executable]:
            with self._lock:
                if any(entry is future for _, entry in self._queued):
                    raise PackageHasNotBeenCalledError(
                        "call package() before awaiting a package_async() result"
                    )
            return future

        return PicklableAwaitableImpl(packaged)

    def package(self, extra_packageables: Sequence[Packageable] = ()) -> Sequence[Executable]:
        """Builds everything queued and ``extra_packageables`` in one batch; returns the extras' executables.

        If the batch fails, every queued awaitable raises the same error, and so does this call.
        """
        with self._lock:
            queued, self._queued = self._queued, []
        batch = [packageable for packageable, _ in queued] + list(extra_packageables)
        if not batch:
            return []
        try:
            executables = list(self._package_batch(batch))
        except Exception as error:
            for _, future in queued:
                future.set_exception(error)
            raise
        for (_, future), executable in zip(queued, executables):
            future.set_result(executable)
        return executables[len(queued):]


__all__ = ["AsyncPackager", "PackageHasNotBeenCalledError", "PicklableAwaitableImpl"]
