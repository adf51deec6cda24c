"""Thread and process worker pools that compute batches in the background, delivering results in order.

``pool.work_stream(tasks)`` runs ``(fn, args)`` tasks and yields their results in submission order while keeping a
buffer of pending tasks topped up. ``pool.parallel_data_source(ds)`` wraps a random-access data source: the calling
process draws the batch indices (so shuffling with a given RNG gives exactly the serial batches) and the workers
compute ``ds.samples_by_indices_nomapping(indices)``.

The process pool sends each batch back through ``multiprocessing.shared_memory`` blocks, never as a pickle of the
arrays: each worker owns a few reusable blocks ("slots"), the consumer names the slot with each task, copies the batch
out and hands the slot back. Workers unlink their blocks when they exit. Workers are daemonic, ignore SIGINT, exit on their
own when the parent process disappears, and are stopped by ``close()``, by leaving a ``with`` block or at interpreter
exit. Abandoning an iterator part-way is safe: results still in flight are discarded and their memory released.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

__all__ = ["ParallelDataSource", "RemoteTracebackError", "WorkStream", "WorkerProcessPool", "WorkerThreadPool"]

_ALIGN = 64
_POLL_SECONDS = 0.2
_PARENT_CHECK_SECONDS = 1.0


class RemoteTracebackError(Exception):
    """Carries the formatted traceback of an exception raised in a worker process."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _normalise_task(task: Any) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    if callable(task):
        return task, (), {}
    if isinstance(task, tuple) and 1 <= len(task) <= 3 and callable(task[0]):
        fn = task[0]
        args = tuple(task[1]) if len(task) > 1 else ()
        kwargs = dict(task[2]) if len(task) > 2 else {}
        return fn, args, kwargs
    raise TypeError(f"a task must be a callable or a (fn, args[, kwargs]) tuple, not {task!r}")


def _check_buffer_size(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, not {value!r}")


class WorkStream:
    """In-order results of a stream of tasks; iterate it, or call :meth:`retrieve`."""

    def __init__(self, results: Iterator[Any]) -> None:
        self._results = results

    def __iter__(self) -> Iterator[Any]:
        return self._results

    def retrieve_iter(self) -> Iterator[Any]:
        return self._results

    def retrieve(self) -> Any:
        """The next result; raises ``StopIteration`` when the tasks are exhausted."""
        return next(self._results)

    def close(self) -> None:
        close = getattr(self._results, "close", None)
        if close is not None:
            close()


class _PoolBase:
    """Ordered, buffered submission shared by the thread and process pools."""

    def _submit_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _submit_batch(self, ds: Any, key: int, indices: Any) -> Any:
        raise NotImplementedError

    def _collect(self, handle: Any) -> Any:
        raise NotImplementedError

    def _discard(self, handle: Any) -> None:
        raise NotImplementedError

    def _check_open(self) -> None:
        raise NotImplementedError

    def _ordered(self, submitters: Iterable[Callable[[], Any]], buffer_size: int) -> Iterator[Any]:
        self._check_open()
        pending: collections.deque[Any] = collections.deque()
        source = iter(submitters)
        try:
            for submit in itertools.islice(source, buffer_size):
                pending.append(submit())
            while pending:
                handle = pending.popleft()
                result = self._collect(handle)
                for submit in itertools.islice(source, 1):
                    pending.append(submit())
                yield result
        finally:
            while pending:
                self._discard(pending.popleft())

    def work_stream(self, task_generator: Iterable[Any], task_buffer_size: int = 20) -> WorkStream:
        """Run tasks (``fn`` or ``(fn, args[, kwargs])``) and yield their results in order."""
        _check_buffer_size("task_buffer_size", task_buffer_size)

        def submitters() -> Iterator[Callable[[], Any]]:
            for task in task_generator:
                fn, args, kwargs = _normalise_task(task)
                yield lambda fn=fn, args=args, kwargs=kwargs: self._submit_call(fn, args, kwargs)

        return WorkStream(self._ordered(submitters(), task_buffer_size))

    def parallel_data_source(self, ds: Any, batch_buffer_size: int = 20) -> ParallelDataSource:
        """A data source whose batches are ``ds``'s batches, computed by this pool's workers."""
        return ParallelDataSource(self, ds, batch_buffer_size)

    def _register_source(self, ds: Any) -> int:
        return id(ds)

    def _unregister_source(self, key: int) -> None:
        return None


class ParallelDataSource:
    """Batches of a random-access source computed in a worker pool; same batches, same order as the source."""

    def __init__(self, pool: _PoolBase, ds: Any, batch_buffer_size: int = 20) -> None:
        if not getattr(ds, "is_random_access", True) or not hasattr(ds, "samples_by_indices_nomapping"):
            raise TypeError(
                f"parallel_data_source needs a random-access data source with samples_by_indices_nomapping, "
                f"not {type(ds).__name__}"
            )
        if not hasattr(ds, "batch_indices_iterator"):
            raise TypeError(f"parallel_data_source needs a source with batch_indices_iterator, not {type(ds).__name__}")
        _check_buffer_size("batch_buffer_size", batch_buffer_size)
        self.pool = pool
        self.source = ds
        self.batch_buffer_size = batch_buffer_size
        self._key = pool._register_source(ds)
        self._finalizer = weakref.finalize(self, pool._unregister_source, self._key)

    @property
    def is_random_access(self) -> bool:
        return False

    def num_samples(self, **kwargs: Any) -> Any:
        return self.source.num_samples(**kwargs)

    def batch_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator[Any]:
        """Yield the batches ``self.source.batch_iterator(batch_size, shuffle=shuffle)`` would give, in order."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        indices_iter = self.source.batch_indices_iterator(batch_size, shuffle=shuffle, **kwargs)

        def submitters() -> Iterator[Callable[[], Any]]:
            # Refers to ``self`` so that the source stays registered with the workers while the iterator lives.
            for indices in indices_iter:
                yield lambda indices=indices: self.pool._submit_batch(self.source, self._key, indices)

        return self.pool._ordered(submitters(), self.batch_buffer_size)


# ----------------------------------------------------------------------------------------------------------------
# Threads


class WorkerThreadPool(_PoolBase):
    """A pool of worker threads (good when the batch work releases the GIL, e.g. NumPy gathers or I/O)."""

    def __init__(self, processes: int | None = 1) -> None:
        n = (os.cpu_count() or 1) if processes is None else processes
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"processes must be an int >= 1 or None, not {processes!r}")
        self.processes = n
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=n, thread_name_prefix="xm-data")

    def _check_open(self) -> None:
        if self._executor is None:
            raise RuntimeError("the worker pool is closed")

    def _submit_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        self._check_open()
        assert self._executor is not None
        return self._executor.submit(fn, *args, **kwargs)

    def _submit_batch(self, ds: Any, key: int, indices: Any) -> Future[Any]:
        return self._submit_call(ds.samples_by_indices_nomapping, (indices,), {})

    def _collect(self, handle: Future[Any]) -> Any:
        return handle.result()

    def _discard(self, handle: Future[Any]) -> None:
        handle.cancel()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> WorkerThreadPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------------------
# Processes


def _pack_batch(batch: Any, tid: int, slot: int, blocks: dict[int, shared_memory.SharedMemory]) -> tuple[Any, ...]:
    """Copy a batch into the worker's shared-memory block for ``slot`` (grown if too small).

    Blocks are reused from batch to batch: the consumer hands a slot back only after copying its contents out.
    """
    is_seq = isinstance(batch, (tuple, list))
    items = list(batch) if is_seq else [batch]
    arrays = [np.asarray(item) for item in items]
    if any(a.dtype.hasobject for a in arrays):
        return ("pickled", tid, pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL), slot)
    layout = []
    offset = 0
    for a in arrays:
        layout.append((a.dtype, a.shape, offset))
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    shm = blocks.get(slot)
    if shm is None or shm.size < offset:
        if shm is not None:
            shm.close()
            shm.unlink()  # the consumer may still map it; the memory goes once it lets go
        shm = shared_memory.SharedMemory(create=True, size=max(offset + offset // 4, _ALIGN))
        blocks[slot] = shm
    for a, (dtype, shape, off) in zip(arrays, layout):
        if a.nbytes:
            view: np.ndarray = np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=off)
            view[...] = a
            del view
    kind = "tuple" if isinstance(batch, tuple) else ("list" if is_seq else "single")
    return ("shm", tid, shm.name, layout, kind, slot)


def _release_blocks(blocks: dict[int, shared_memory.SharedMemory]) -> None:
    for shm in blocks.values():
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
    blocks.clear()


def _error_message(tid: int, exc: BaseException) -> tuple[Any, ...]:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
    except Exception:
        blob = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return ("err", tid, blob, tb)


def _worker_main(task_q: Any, result_q: Any, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sources: dict[int, Any] = {}
    blocks: dict[int, shared_memory.SharedMemory] = {}
    while True:
        try:
            msg = task_q.get(timeout=_PARENT_CHECK_SECONDS)
        except queue.Empty:
            if os.getppid() != parent_pid:
                _release_blocks(blocks)
                return
            continue
        if msg is None:
            _release_blocks(blocks)
            return
        kind = msg[0]
        if kind == "register":
            sources[msg[1]] = pickle.loads(msg[2])
            continue
        if kind == "unregister":
            sources.pop(msg[1], None)
            continue
        tid = msg[1]
        try:
            if kind == "batch":
                reply = _pack_batch(sources[msg[2]].samples_by_indices_nomapping(msg[3]), tid, msg[4], blocks)
            else:
                fn, args, kwargs = pickle.loads(msg[2])
                reply = ("pickled", tid, pickle.dumps(fn(*args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL), None)
        except Exception as exc:
            reply = (*_error_message(tid, exc), msg[4] if kind == "batch" else None)
        result_q.put(reply)


_LIVE_POOLS: weakref.WeakSet[WorkerProcessPool] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    # Registered after multiprocessing's own exit hook, so it runs first: workers are stopped and shared memory is
    # released before multiprocessing terminates daemonic children.
    for pool in list(_LIVE_POOLS):
        pool.close()


class WorkerProcessPool(_PoolBase):
    """A pool of daemonic worker processes; batches come back through shared memory.

    Task ``i`` goes to worker ``i % processes``; each worker has its own task and result queues, so results are
    read back in order. Functions given to :meth:`work_stream` and sources given to :meth:`parallel_data_source`
    must be picklable (each source is pickled once and sent to every worker).
    """

    def __init__(self, processes: int | None = 1, context: str | None = None) -> None:
        n = (os.cpu_count() or 1) if processes is None else processes
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"processes must be an int >= 1 or None, not {processes!r}")
        self.processes = n
        if context is None:
            context = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(context)
        # Start the resource tracker here so forked workers share it with this process; shared-memory blocks
        # created by a worker and unlinked here are then tracked (and untracked) in one place.
        resource_tracker.ensure_running()
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._task_ids = itertools.count()
        self._source_ids = itertools.count()
        self._next_worker = 0
        self._stash: dict[int, tuple[Any, ...]] = {}
        self._slot_ids = itertools.count()
        self._free_slots: list[list[int]] = [[] for _ in range(n)]
        self._attached: dict[tuple[int, int], shared_memory.SharedMemory] = {}
        self._abandoned: set[int] = set()
        self._task_qs = [ctx.Queue() for _ in range(n)]
        self._result_qs = [ctx.Queue() for _ in range(n)]
        self._procs = [
            ctx.Process(
                target=_worker_main,
                args=(self._task_qs[i], self._result_qs[i], os.getpid()),
                name=f"xm-data-worker-{i}",
                daemon=True,
            )
            for i in range(n)
        ]
        for p in self._procs:
            p.start()
        _LIVE_POOLS.add(self)

    # -- plumbing

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the worker pool is closed")

    def _pick_worker(self) -> int:
        self._check_open()
        with self._lock:
            w = self._next_worker
            self._next_worker = (w + 1) % self.processes
        return w

    def _send(self, msg: tuple[Any, ...], w: int | None = None) -> tuple[int, int]:
        if w is None:
            w = self._pick_worker()
        self._task_qs[w].put(msg)
        return w, msg[1]

    def _submit_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int]:
        try:
            blob = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"task {fn!r} cannot be sent to a worker process: {exc}") from exc
        return self._send(("call", next(self._task_ids), blob))

    def _submit_batch(self, ds: Any, key: int, indices: Any) -> tuple[int, int]:
        w = self._pick_worker()
        free = self._free_slots[w]
        slot = free.pop() if free else next(self._slot_ids)
        return self._send(("batch", next(self._task_ids), key, indices, slot), w)

    def _register_source(self, ds: Any) -> int:
        self._check_open()
        try:
            blob = pickle.dumps(ds, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"data source {type(ds).__name__} cannot be sent to a worker process: {exc}") from exc
        key = next(self._source_ids)
        for q in self._task_qs:
            q.put(("register", key, blob))
        return key

    def _unregister_source(self, key: int) -> None:
        if self._closed:
            return
        try:
            for q in self._task_qs:
                q.put(("unregister", key))
        except (OSError, ValueError):
            pass

    def _read(self, w: int) -> tuple[Any, ...]:
        q, proc = self._result_qs[w], self._procs[w]
        while True:
            try:
                return q.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._closed:
                    raise RuntimeError("the worker pool was closed while waiting for a result") from None
                if not proc.is_alive():
                    try:
                        return q.get(timeout=_POLL_SECONDS)
                    except queue.Empty:
                        raise RuntimeError(
                            f"worker process {proc.name} (pid {proc.pid}) died with exit code {proc.exitcode}"
                        ) from None

    def _unpack(self, w: int, msg: tuple[Any, ...]) -> Any:
        _, _, name, layout, kind, slot = msg
        shm = self._attached.get((w, slot))
        if shm is None or shm.name != name:
            if shm is not None:
                shm.close()
            shm = shared_memory.SharedMemory(name=name)
            self._attached[(w, slot)] = shm
        arrays = []
        for dtype, shape, off in layout:
            if int(np.prod(shape)) * dtype.itemsize == 0:
                arrays.append(np.empty(shape, dtype=dtype))
                continue
            view: np.ndarray = np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=off)
            arrays.append(view.copy())
            del view
        if kind == "tuple":
            return tuple(arrays)
        if kind == "list":
            return arrays
        return arrays[0]

    def _release_slot(self, w: int, msg: tuple[Any, ...]) -> None:
        # every reply ends with the slot of its task (None for plain calls)
        if msg[-1] is not None:
            self._free_slots[w].append(msg[-1])

    def _collect(self, handle: tuple[int, int]) -> Any:
        w, tid = handle
        msg = self._stash.pop(tid, None)
        while msg is None:
            got = self._read(w)
            if got[1] == tid:
                msg = got
            elif got[1] in self._abandoned:
                self._abandoned.discard(got[1])
                self._release_slot(w, got)
            else:
                self._stash[got[1]] = got
        try:
            kind = msg[0]
            if kind == "shm":
                return self._unpack(w, msg)
            if kind == "pickled":
                return pickle.loads(msg[2])
            exc = pickle.loads(msg[2])
            raise exc from RemoteTracebackError(msg[3])
        finally:
            self._release_slot(w, msg)

    def _discard(self, handle: tuple[int, int]) -> None:
        w, tid = handle
        msg = self._stash.pop(tid, None)
        if msg is not None:
            self._release_slot(w, msg)
        elif not self._closed:
            self._abandoned.add(tid)

    def _drain(self) -> None:
        for q in self._result_qs:
            while True:
                try:
                    q.get_nowait()
                except (queue.Empty, OSError, ValueError, EOFError):
                    break

    # -- lifecycle

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers (letting each finish its current task), then release undelivered results."""
        if self._closed or os.getpid() != self._owner_pid:  # a forked copy of the pool never closes the original
            return
        self._closed = True
        _LIVE_POOLS.discard(self)
        for q in self._task_qs:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout
        while any(p.is_alive() for p in self._procs) and time.monotonic() < deadline:
            self._drain()  # a worker cannot exit while its result pipe is full
            multiprocessing.connection.wait([p.sentinel for p in self._procs if p.is_alive()], timeout=0.05)
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(timeout=1.0)
            if p.is_alive():
                p.kill()
                p.join()
        self._drain()
        self._stash.clear()
        for shm in self._attached.values():
            shm.close()
        self._attached.clear()
        self._abandoned.clear()
        for q in (*self._task_qs, *self._result_qs):
            q.close()
            q.join_thread()
        for p in self._procs:
            p.close()

    def __enter__(self) -> WorkerProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:
            pass
