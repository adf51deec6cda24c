"""Thread and process worker pools that compute batches in the background, delivering results in order.

``pool.work_stream(tasks)`` runs ``(fn, args)`` tasks and yields their results in submission order while keeping a
buffer of pending tasks topped up. ``pool.parallel_data_source(ds)`` wraps a random-access data source: the calling
process draws the batch indices (so shuffling with a given RNG gives exactly the serial batches) and the workers
compute ``ds.samples_by_indices_nomapping(indices)``.

The process pool sends batches back through ``multiprocessing.shared_memory`` blocks, never as a pickle of the
arrays. To keep the per-batch cost low, batch tasks go to a worker in *chunks*: several consecutive batches per
message, as many as make about 10 ms of work by the measured time per batch, but few enough that every worker keeps
two chunks in flight within ``batch_buffer_size``. The answer to a chunk is one small message naming the worker's
reusable block ("slot") that holds all of the chunk's arrays. Replies go down a plain pipe written by the worker's
main thread, so a finished chunk never waits for the GIL behind the next one.

Ownership rule for slots: a slot belongs to the worker from the moment the consumer names it in a chunk until the
consumer has copied the chunk's arrays out; only then does the consumer put it back on the worker's free list. Batches
handed to the caller are therefore private copies: producing later batches never overwrites a batch already yielded,
however long the caller keeps it. Workers unlink their blocks when they exit.

Workers are daemonic, ignore SIGINT, exit on their own when the parent process disappears, and are stopped by
``close()``, by leaving a ``with`` block or at interpreter exit. Abandoning an iterator part-way is safe: results still
in flight are discarded and their slots released.
"""

from __future__ import annotations

import atexit
import collections
import functools
import itertools
import math
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
        """The next result, or None once every task's result has been retrieved (as in batchup).

        A task that returns None is indistinguishable from the end here; iterate the stream to tell them apart.
        """
        return next(self._results, None)

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

    def _batch_stream(self, owner: ParallelDataSource, indices_iter: Iterator[Any], buffer_size: int) -> Iterator[Any]:
        """Batches for ``indices_iter``, in order; ``owner`` is referenced so its source stays registered."""

        def submitters() -> Iterator[Callable[[], Any]]:
            for indices in indices_iter:
                yield functools.partial(self._submit_batch, owner.source, owner._key, indices)

        return self._ordered(submitters(), buffer_size)

    def work_stream(self, task_generator: Iterable[Any], task_buffer_size: int = 20) -> WorkStream:
        """Run tasks (``fn`` or ``(fn, args[, kwargs])``) and yield their results in order."""
        _check_buffer_size("task_buffer_size", task_buffer_size)

        def submitters() -> Iterator[Callable[[], Any]]:
            for task in task_generator:
                fn, args, kwargs = _normalise_task(task)
                yield functools.partial(self._submit_call, fn, args, kwargs)

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
        return self.pool._batch_stream(self, indices_iter, self.batch_buffer_size)


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

# A chunk message should carry about this much batch work (up to the cap set by the buffer), so that the fixed cost of
# a message (two pipe writes, two wake-ups, a pickle each way) stays a small fraction of it.
_TARGET_CHUNK_SECONDS = 0.01
_EMA_WEIGHT = 0.3


def _slot_block(blocks: dict[int, shared_memory.SharedMemory], slot: int, size: int) -> shared_memory.SharedMemory:
    """The worker's block for ``slot``, replaced by a bigger one when it cannot hold ``size`` bytes."""
    shm = blocks.get(slot)
    if shm is None or shm.size < size:
        if shm is not None:
            shm.close()
            shm.unlink()  # the consumer may still map it; the memory goes once it lets go
        shm = shared_memory.SharedMemory(create=True, size=max(size + size // 4, _ALIGN))
        blocks[slot] = shm
    return shm


def _pack_chunk(
    batches: list[Any], slot: int, blocks: dict[int, shared_memory.SharedMemory]
) -> tuple[str | None, list[tuple[Any, ...]]]:
    """Copy the arrays of a chunk's batches into the block for ``slot``.

    Returns the block's name (None when nothing went to shared memory) and one entry per batch: ``("shm", layout,
    kind)`` or, for batches holding Python objects, ``("pickled", blob)``.
    """
    entries: list[tuple[Any, ...]] = []
    plans: list[tuple[list[np.ndarray], list[tuple[Any, tuple[int, ...], int]]]] = []
    offset = 0
    for batch in batches:
        is_seq = isinstance(batch, (tuple, list))
        arrays = [np.asarray(item) for item in (batch if is_seq else (batch,))]
        if any(a.dtype.hasobject for a in arrays):
            entries.append(("pickled", pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)))
            continue
        layout = []
        for a in arrays:
            layout.append((a.dtype, a.shape, offset))
            offset += -(-a.nbytes // _ALIGN) * _ALIGN
        kind = "tuple" if isinstance(batch, tuple) else ("list" if is_seq else "single")
        entries.append(("shm", layout, kind))
        plans.append((arrays, layout))
    if not plans:
        return None, entries
    shm = _slot_block(blocks, slot, offset)
    for arrays, layout in plans:
        for a, (dtype, shape, off) in zip(arrays, layout):
            if a.nbytes:
                np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=off)[...] = a
    return shm.name, entries


def _release_blocks(blocks: dict[int, shared_memory.SharedMemory]) -> None:
    for shm in blocks.values():
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
    blocks.clear()


def _error_payload(exc: BaseException) -> tuple[bytes, str]:
    """(the pickled exception, or a RuntimeError standing in for an unpicklable one; the formatted traceback)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
    except Exception:
        blob = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return blob, tb


def _run_chunk(
    sources: dict[int, Any], msg: tuple[Any, ...], blocks: dict[int, shared_memory.SharedMemory]
) -> tuple[Any, ...]:
    """Compute the batches of a chunk; stops at the first failing batch and reports it after the good ones."""
    _, tid, key, index_blob, slot = msg
    batches: list[Any] = []
    error = None
    start = time.perf_counter()
    try:
        source = sources[key]
        for indices in pickle.loads(index_blob):
            batches.append(source.samples_by_indices_nomapping(indices))
    except Exception as exc:
        error = _error_payload(exc)
    seconds = time.perf_counter() - start
    try:
        name, entries = _pack_chunk(batches, slot, blocks)
    except Exception as exc:
        name, entries, error = None, [], _error_payload(exc)
    return ("chunk", tid, name, entries, slot, seconds, error)


def _run_call(msg: tuple[Any, ...]) -> tuple[Any, ...]:
    tid = msg[1]
    try:
        fn, args, kwargs = pickle.loads(msg[2])
        return ("call", tid, pickle.dumps(fn(*args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL), None)
    except Exception as exc:
        return ("call", tid, None, _error_payload(exc))


def _worker_main(task_q: Any, result_conn: Any, parent_pid: int) -> None:
    """Serve tasks from ``task_q`` until told to stop or orphaned.

    Replies go straight down a pipe (no feeder thread), so a reply never waits for the GIL behind the next task.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sources: dict[int, Any] = {}
    blocks: dict[int, shared_memory.SharedMemory] = {}
    try:
        while True:
            try:
                msg = task_q.get(timeout=_PARENT_CHECK_SECONDS)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    return
                continue
            if msg is None:
                return
            kind = msg[0]
            if kind == "register":
                sources[msg[1]] = pickle.loads(msg[2])
                continue
            if kind == "unregister":
                sources.pop(msg[1], None)
                continue
            reply = _run_chunk(sources, msg, blocks) if kind == "chunk" else _run_call(msg)
            try:
                result_conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:  # the consumer is gone
                return
    finally:
        _release_blocks(blocks)


_LIVE_POOLS: weakref.WeakSet[WorkerProcessPool] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    # Registered after multiprocessing's own exit hook, so it runs first: workers are stopped and shared memory is
    # released before multiprocessing terminates daemonic children.
    for pool in list(_LIVE_POOLS):
        pool.close()


def _chunk_size(per_batch: float | None, max_chunk: int) -> int:
    """Batches per chunk message: enough for ``_TARGET_CHUNK_SECONDS`` of work, at most ``max_chunk``."""
    if per_batch is None:
        return 1
    return max(1, min(max_chunk, int(_TARGET_CHUNK_SECONDS / max(per_batch, 1e-9))))


class WorkerProcessPool(_PoolBase):
    """A pool of daemonic worker processes; batches come back through shared memory.

    Message ``i`` goes to worker ``i % processes``; each worker has its own task queue and result pipe, so results
    are read back in order. Functions given to :meth:`work_stream` and sources given to :meth:`parallel_data_source`
    must be picklable (each source is pickled once and sent to every worker). Batches of a parallel data source travel
    in chunks of consecutive batches (see the module docstring); ``batch_buffer_size`` bounds the batches in flight.
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
        self._batch_seconds: dict[int, float] = {}  # per source: moving average of the workers' seconds per batch
        self._task_qs = [ctx.Queue() for _ in range(n)]
        pipes = [ctx.Pipe(duplex=False) for _ in range(n)]
        self._result_conns = [reader for reader, _ in pipes]
        self._procs = [
            # The ignore: typeshed's get_context(str) returns BaseContext, which lacks the Process that
            # every concrete context (what get_context returns) has.
            ctx.Process(  # type: ignore[attr-defined]
                target=_worker_main,
                args=(self._task_qs[i], pipes[i][1], os.getpid()),
                name=f"xm-data-worker-{i}",
                daemon=True,
            )
            for i in range(n)
        ]
        for p in self._procs:
            p.start()
        for _, writer in pipes:
            writer.close()  # only the worker holds the write end, so its death reads as EOF here
        _LIVE_POOLS.add(self)

    # -- sending

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the worker pool is closed")

    def _pick_worker(self) -> int:
        self._check_open()
        with self._lock:
            w = self._next_worker
            self._next_worker = (w + 1) % self.processes
        return w

    def _submit_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int]:
        try:
            blob = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"task {fn!r} cannot be sent to a worker process: {exc}") from exc
        w = self._pick_worker()
        tid = next(self._task_ids)
        self._task_qs[w].put(("call", tid, blob))
        return w, tid

    def _send_chunk(self, key: int, index_list: list[Any]) -> tuple[int, int, int]:
        """Send consecutive batches' indices to the next worker with a free slot of its own; (worker, tid, count)."""
        try:
            blob = pickle.dumps(index_list, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"batch indices cannot be sent to a worker process: {exc}") from exc
        w = self._pick_worker()
        free = self._free_slots[w]
        slot = free.pop() if free else next(self._slot_ids)
        tid = next(self._task_ids)
        self._task_qs[w].put(("chunk", tid, key, blob, slot))
        return w, tid, len(index_list)

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
        self._batch_seconds.pop(key, None)
        if self._closed:
            return
        try:
            for q in self._task_qs:
                q.put(("unregister", key))
        except (OSError, ValueError):
            pass

    # -- receiving

    def _read(self, w: int) -> tuple[Any, ...]:
        conn, proc = self._result_conns[w], self._procs[w]
        while True:
            if self._closed:
                raise RuntimeError("the worker pool was closed while waiting for a result")
            if conn.poll(_POLL_SECONDS):
                try:
                    return pickle.loads(conn.recv_bytes())
                except EOFError:
                    break
            elif not proc.is_alive() and not conn.poll(0):
                break
        proc.join(timeout=_POLL_SECONDS)
        raise RuntimeError(f"worker process {proc.name} (pid {proc.pid}) died with exit code {proc.exitcode}")

    def _await(self, w: int, tid: int) -> tuple[Any, ...]:
        """The reply to task ``tid`` (sent to worker ``w``), keeping replies that arrive early for later."""
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
        return msg

    def _release_slot(self, w: int, msg: tuple[Any, ...]) -> None:
        if msg[0] == "chunk":
            self._free_slots[w].append(msg[4])

    @staticmethod
    def _raise_remote(error: tuple[bytes, str]) -> None:
        blob, tb = error
        exc = pickle.loads(blob)
        raise exc from RemoteTracebackError(tb)

    def _collect(self, handle: tuple[int, int]) -> Any:
        w, tid = handle
        _, _, blob, error = self._await(w, tid)
        if error is not None:
            self._raise_remote(error)
        return pickle.loads(blob)

    def _discard(self, handle: tuple[int, int]) -> None:
        w, tid = handle
        msg = self._stash.pop(tid, None)
        if msg is not None:
            self._release_slot(w, msg)
        elif not self._closed:
            self._abandoned.add(tid)

    def _unpack_chunk(self, w: int, msg: tuple[Any, ...]) -> list[Any]:
        """Copy a chunk's batches out of the worker's slot, then hand the slot back (see the ownership rule)."""
        _, _, name, entries, slot, _, _ = msg
        try:
            shm = None
            if name is not None:
                shm = self._attached.get((w, slot))
                if shm is None or shm.name != name:
                    if shm is not None:
                        shm.close()
                    shm = shared_memory.SharedMemory(name=name)
                    self._attached[(w, slot)] = shm
            batches = []
            for entry in entries:
                if entry[0] == "pickled":
                    batches.append(pickle.loads(entry[1]))
                    continue
                _, layout, kind = entry
                arrays = []
                for dtype, shape, off in layout:
                    if math.prod(shape) * dtype.itemsize == 0:
                        arrays.append(np.empty(shape, dtype=dtype))
                    else:
                        assert shm is not None
                        arrays.append(np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=off).copy())
                batches.append(tuple(arrays) if kind == "tuple" else (arrays if kind == "list" else arrays[0]))
            return batches
        finally:
            self._free_slots[w].append(slot)

    def _batch_stream(self, owner: ParallelDataSource, indices_iter: Iterator[Any], buffer_size: int) -> Iterator[Any]:
        """In-order batches, computed in chunks of consecutive batches; at most ``buffer_size`` batches in flight.

        Each worker gets at least two chunks in flight (so it never waits for the consumer between chunks); chunk
        sizes follow the workers' measured time per batch.
        """
        self._check_open()
        max_chunk = max(1, buffer_size // (2 * self.processes))
        per_batch = self._batch_seconds.get(owner._key)
        pending: collections.deque[tuple[int, int, int]] = collections.deque()
        in_flight = 0
        source = iter(indices_iter)
        exhausted = False
        try:
            while True:
                while not exhausted:
                    size = _chunk_size(per_batch, max_chunk)
                    if buffer_size - in_flight < size:
                        break
                    index_list = list(itertools.islice(source, size))
                    exhausted = len(index_list) < size
                    if index_list:
                        pending.append(self._send_chunk(owner._key, index_list))
                        in_flight += len(index_list)
                if not pending:
                    return
                w, tid, count = pending[0]
                msg = self._await(w, tid)
                pending.popleft()
                in_flight -= count
                batches = self._unpack_chunk(w, msg)
                seconds, error = msg[5], msg[6]
                if error is not None:
                    yield from batches
                    self._raise_remote(error)
                if batches:
                    per = seconds / len(batches)
                    per_batch = per if per_batch is None else per_batch + _EMA_WEIGHT * (per - per_batch)
                    self._batch_seconds[owner._key] = per_batch
                yield from batches
        finally:
            while pending:
                w, tid, _ = pending.popleft()
                self._discard((w, tid))

    def _drain(self) -> None:
        for conn in self._result_conns:
            try:
                while not conn.closed and conn.poll(0):
                    conn.recv_bytes()
            except (OSError, ValueError, EOFError):
                pass

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
        for q in self._task_qs:
            q.close()
            q.join_thread()
        for conn in self._result_conns:
            conn.close()
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
