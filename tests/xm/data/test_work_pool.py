"""Thread and process worker pools: same batches as the serial source, in order, clean shutdown."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from xmanager.xm.data import work_pool

try:
    from xmanager.xm.data.data_source import ArrayDataSource
except ImportError:  # the data_source module is written separately; fall back to a minimal source
    ArrayDataSource = None  # type: ignore[assignment,misc]

REPO = Path(__file__).resolve().parents[3]


class SmallSource:
    """Minimal random-access source with batchup's index-level API."""

    is_random_access = True

    def __init__(self, data: list[np.ndarray]) -> None:
        self.data = data

    def num_samples(self, **kwargs: Any) -> int:
        return len(self.data[0])

    def samples_by_indices_nomapping(self, indices: Any) -> tuple[np.ndarray, ...]:
        return tuple(d[indices] for d in self.data)

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Any:
        n = len(self.data[0])
        if shuffle is None or shuffle is False:
            order = np.arange(n)
        else:
            rng = np.random if shuffle is True else shuffle
            order = rng.permutation(n)
        for i in range(0, n, batch_size):
            yield order[i : i + batch_size]

    def batch_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Any:
        for idx in self.batch_indices_iterator(batch_size, shuffle=shuffle):
            yield self.samples_by_indices_nomapping(idx)


class FailingSource(SmallSource):
    def samples_by_indices_nomapping(self, indices: Any) -> tuple[np.ndarray, ...]:
        if 7 in np.asarray(indices):
            raise ValueError("sample 7 is corrupt")
        return super().samples_by_indices_nomapping(indices)


def make_source(n: int = 103) -> Any:
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = (np.arange(n) % 5).astype(np.int64)
    if ArrayDataSource is not None:
        return ArrayDataSource([x, y])
    return SmallSource([x, y])


def square(v: int) -> int:
    return v * v


def fail_on_three(v: int) -> int:
    if v == 3:
        raise KeyError("task three failed on purpose")
    return v


def child_pids() -> set[int]:
    """PIDs of this process's children, from /proc (no psutil)."""
    me = os.getpid()
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z":
            pids.add(int(entry))
    return pids


def assert_same_batches(got: list[Any], expected: list[Any]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert len(g) == len(e)
        for ga, ea in zip(g, e):
            assert ga.dtype == ea.dtype
            np.testing.assert_array_equal(ga, ea)


@pytest.fixture(params=["thread", "process"])
def pool(request: pytest.FixtureRequest) -> Any:
    cls = work_pool.WorkerThreadPool if request.param == "thread" else work_pool.WorkerProcessPool
    with cls(processes=2) as p:
        yield p


@pytest.mark.parametrize("batch_size", [1, 10, 64, 200])
def test_in_order_batches_match_serial(pool: Any, batch_size: int) -> None:
    ds = make_source()
    expected = list(ds.batch_iterator(batch_size, shuffle=False))
    got = list(pool.parallel_data_source(ds, batch_buffer_size=3).batch_iterator(batch_size, shuffle=False))
    assert_same_batches(got, expected)


def test_shuffled_batches_match_serial_with_same_seed(pool: Any) -> None:
    ds = make_source()
    expected = list(ds.batch_iterator(16, shuffle=np.random.RandomState(1234)))
    pds = pool.parallel_data_source(ds)
    got = list(pds.batch_iterator(16, shuffle=np.random.RandomState(1234)))
    assert_same_batches(got, expected)
    assert pds.num_samples() == 103
    # a second epoch through the same parallel source works too
    again = list(pds.batch_iterator(16, shuffle=np.random.RandomState(1234)))
    assert_same_batches(again, expected)


def test_work_stream_in_order(pool: Any) -> None:
    results = list(pool.work_stream(((square, (i,)) for i in range(50)), task_buffer_size=4))
    assert results == [i * i for i in range(50)]


def test_worker_exception_reraised_with_message(pool: Any) -> None:
    ds = FailingSource([np.arange(20)])
    with pytest.raises(ValueError, match="sample 7 is corrupt"):
        list(pool.parallel_data_source(ds).batch_iterator(4))
    with pytest.raises(KeyError, match="task three failed on purpose"):
        list(pool.work_stream((fail_on_three, (i,)) for i in range(6)))
    # the pool is still usable afterwards
    assert list(pool.work_stream((square, (i,)) for i in range(3))) == [0, 1, 4]


def test_process_pool_reports_remote_traceback() -> None:
    with work_pool.WorkerProcessPool(processes=1) as p:
        with pytest.raises(KeyError) as info:
            list(p.work_stream((fail_on_three, (i,)) for i in range(5)))
    cause = info.value.__cause__
    assert isinstance(cause, work_pool.RemoteTracebackError)
    assert "fail_on_three" in str(cause)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="processes"):
        work_pool.WorkerProcessPool(processes=0)
    with work_pool.WorkerThreadPool() as p:
        with pytest.raises(ValueError, match="batch_buffer_size"):
            p.parallel_data_source(make_source(), batch_buffer_size=0)
        with pytest.raises(ValueError, match="batch_size"):
            next(iter(p.parallel_data_source(make_source()).batch_iterator(0)))
        with pytest.raises(TypeError, match="random-access"):
            p.parallel_data_source(object())
    with pytest.raises(RuntimeError, match="closed"):
        list(p.work_stream([(square, (1,))]))


def test_abandoned_iterator_then_close_leaves_no_workers() -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    ds = make_source(2000)
    p = work_pool.WorkerProcessPool(processes=2)
    pids = {proc.pid for proc in p._procs}
    assert pids <= child_pids()
    it = p.parallel_data_source(ds, batch_buffer_size=8).batch_iterator(10, shuffle=np.random.RandomState(0))
    first = next(it)
    assert len(first[0]) == 10
    it.close()  # consumer stops mid-epoch
    # the pool still serves a fresh, correct epoch after an abandoned one
    got = list(p.parallel_data_source(ds).batch_iterator(500))
    assert_same_batches(got, list(ds.batch_iterator(500)))
    p.close()
    p.close()  # idempotent
    assert not pids & {c.pid for c in multiprocessing.active_children()}
    assert {c.pid for c in multiprocessing.active_children()} <= before
    assert not pids & child_pids()
    leftovers = [f for f in os.listdir("/dev/shm") if f.startswith("psm_")] if os.path.isdir("/dev/shm") else []
    assert not [f for f in leftovers if _created_recently(f)]


def _created_recently(name: str) -> bool:
    try:
        return time.time() - os.stat(f"/dev/shm/{name}").st_mtime < 60 and os.stat(f"/dev/shm/{name}").st_uid == (
            os.getuid()
        )
    except OSError:
        return False


def _run_script(body: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(REPO),
    )


@pytest.mark.integration
def test_subprocess_takes_one_batch_and_exits_cleanly() -> None:
    script = """
        import numpy as np
        from xmanager.xm.data import work_pool

        class Src:
            is_random_access = True
            def __init__(self):
                self.x = np.arange(10000 * 8, dtype=np.float64).reshape(10000, 8)
            def samples_by_indices_nomapping(self, idx):
                return (self.x[idx],)
            def batch_indices_iterator(self, batch_size, shuffle=None):
                for i in range(0, len(self.x), batch_size):
                    yield np.arange(i, min(i + batch_size, len(self.x)))

        pool = work_pool.WorkerProcessPool(processes=2)
        it = pool.parallel_data_source(Src(), batch_buffer_size=10).batch_iterator(64)
        (xb,) = next(it)
        assert xb.shape == (64, 8)
        print("ok")
    """
    result = _run_script(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""


@pytest.mark.integration
def test_workers_exit_when_parent_is_killed() -> None:
    script = """
        import os, sys, time
        from xmanager.xm.data import work_pool
        pool = work_pool.WorkerProcessPool(processes=2)
        print(" ".join(str(p.pid) for p in pool._procs), flush=True)
        os.kill(os.getpid(), 9)
    """
    result = _run_script(script)
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if _pid_running(p)]
        time.sleep(0.1)
    assert not alive


def _pid_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class MixedSource(SmallSource):
    """Batches of varied kinds: a plain array for even-numbered batches, an object array otherwise."""

    def samples_by_indices_nomapping(self, indices: Any) -> Any:
        idx = np.asarray(indices)
        if idx[0] % 2 == 0:
            return self.data[0][idx]
        return (np.array([f"s{i}" for i in idx], dtype=object), self.data[0][idx])


def test_process_pool_batch_kinds_and_growing_blocks() -> None:
    ds = MixedSource([np.arange(40, dtype=np.int16)])
    with work_pool.WorkerProcessPool(processes=2) as p:
        pds = p.parallel_data_source(ds, batch_buffer_size=2)
        for batch_size in (1, 3, 40):  # the per-slot shared blocks have to grow
            expected = list(ds.batch_iterator(batch_size))
            got = list(pds.batch_iterator(batch_size))
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                if isinstance(e, tuple):
                    assert list(g[0]) == list(e[0])
                    np.testing.assert_array_equal(g[1], e[1])
                else:
                    assert isinstance(g, np.ndarray) and g.dtype == np.int16
                    np.testing.assert_array_equal(g, e)


# ---- process pool: chunked batches, slot reuse and the ownership rule ----------------------------------------


def test_chunk_size_follows_measured_batch_time() -> None:
    assert work_pool._chunk_size(None, 5) == 1  # nothing measured yet: one batch per message
    assert work_pool._chunk_size(1e-6, 5) == 5  # fast batches: as many as the cap allows
    assert work_pool._chunk_size(1e-6, 1) == 1
    assert work_pool._chunk_size(10.0, 5) == 1  # slow batches: one per message
    assert work_pool._chunk_size(work_pool._TARGET_CHUNK_SECONDS / 2, 5) == 2
    assert work_pool._chunk_size(0.0, 3) == 3


def test_yielded_batches_survive_later_batches() -> None:
    """Ownership rule: a yielded batch is the caller's copy; later batches reuse the slots without touching it."""
    ds = make_source(3000)
    expected = list(ds.batch_iterator(10, shuffle=np.random.RandomState(5)))
    with work_pool.WorkerProcessPool(processes=2) as p:
        it = p.parallel_data_source(ds, batch_buffer_size=4).batch_iterator(10, shuffle=np.random.RandomState(5))
        first = next(it)
        kept = [first]
        for i, batch in enumerate(it):
            if i % 50 == 0:
                kept.append(batch)
        # 300 batches went through at most 4 in flight: the slots were reused many times over
        slots = sum(len(free) for free in p._free_slots)
        assert 1 <= slots <= 4
        assert len(p._attached) <= slots
    assert_same_batches([first], expected[:1])
    assert_same_batches(kept[1:], [expected[1 + i] for i in range(0, len(expected) - 1, 50)])
    for arr in first:
        assert arr.flags.owndata and arr.flags.writeable
        arr[...] = 0  # writable, and writing to it cannot disturb the pool


def test_fast_batches_travel_in_chunks_and_buffer_bounds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # every batch counts as fast, even when a loaded machine stretches a measurement
    monkeypatch.setattr(work_pool, "_TARGET_CHUNK_SECONDS", 1e3)
    ds = make_source(5000)
    n_batches = 500
    with work_pool.WorkerProcessPool(processes=2) as p:
        before = next(p._task_ids)
        got = list(p.parallel_data_source(ds, batch_buffer_size=20).batch_iterator(10))
        messages = next(p._task_ids) - before - 1
        assert_same_batches(got, list(ds.batch_iterator(10)))
        assert messages < n_batches / 2  # most messages carried several batches
        # with a buffer of one batch there is nothing to group: one message per batch
        before = next(p._task_ids)
        got = list(p.parallel_data_source(ds, batch_buffer_size=1).batch_iterator(100))
        assert next(p._task_ids) - before - 1 == 50
        assert_same_batches(got, list(ds.batch_iterator(100)))


class LateFailure(SmallSource):
    def samples_by_indices_nomapping(self, indices: Any) -> tuple[np.ndarray, ...]:
        if 301 in np.asarray(indices):
            raise ValueError("sample 301 is corrupt")
        return super().samples_by_indices_nomapping(indices)


def test_error_mid_chunk_delivers_earlier_batches_first() -> None:
    late = LateFailure([np.arange(400)])
    with work_pool.WorkerProcessPool(processes=2) as p:
        got = []
        with pytest.raises(ValueError, match="sample 301 is corrupt") as info:
            for batch in p.parallel_data_source(late, batch_buffer_size=20).batch_iterator(4):
                got.append(batch)
        assert isinstance(info.value.__cause__, work_pool.RemoteTracebackError)
        # batches 0..74 arrive before the error of batch 75, although they shared chunks with it
        assert_same_batches(got, list(itertools.islice(late.batch_iterator(4), 75)))
        # a new epoch works; the failed stream's slots come back as their replies arrive (a slot is the worker's
        # until then), so the slots stay bounded by the two streams' buffers and stop growing
        ds = make_source(700)
        pds = p.parallel_data_source(ds)
        assert_same_batches(list(pds.batch_iterator(7)), list(ds.batch_iterator(7)))
        slots = sum(len(free) for free in p._free_slots)
        assert slots <= 40
        for _ in range(3):
            assert_same_batches(list(pds.batch_iterator(7)), list(ds.batch_iterator(7)))
        assert sum(len(free) for free in p._free_slots) == slots


def test_killed_worker_raises_instead_of_hanging() -> None:
    ds = SlowSource([np.arange(2000)])
    with work_pool.WorkerProcessPool(processes=2) as p:
        it = p.parallel_data_source(ds, batch_buffer_size=4).batch_iterator(10)
        next(it)
        os.kill(p._procs[0].pid, 9)
        with pytest.raises(RuntimeError, match="died"):
            for _ in it:
                pass


class SlowSource(SmallSource):
    def samples_by_indices_nomapping(self, indices: Any) -> tuple[np.ndarray, ...]:
        time.sleep(0.01)
        return super().samples_by_indices_nomapping(indices)


def _tripled(x: np.ndarray) -> tuple[np.ndarray]:
    return (x * 3,)


def test_composed_sources_in_a_pool_match_serial(pool: Any) -> None:
    """Choice (ChoiceBatch indices), Composite (tuples of indices) and Map sources run in the workers."""
    from xmanager.xm.data import data_source

    a = data_source.ArrayDataSource([np.arange(23)])
    b = data_source.ArrayDataSource([np.arange(11) * 100], repeats=-1)
    sources = [
        data_source.ChoiceDataSource([a, a.map(_tripled)], stratified=True),
        data_source.CompositeDataSource([a, b]),
        a.map(_tripled),
    ]
    for ds in sources:
        expected = list(ds.batch_iterator(4, shuffle=np.random.RandomState(5)))
        got = list(pool.parallel_data_source(ds).batch_iterator(4, shuffle=np.random.RandomState(5)))
        assert_same_batches(got, expected)


def test_retrieve_returns_none_at_the_end(pool: Any) -> None:
    stream = pool.work_stream([(square, (i,)) for i in range(3)])
    assert [stream.retrieve() for _ in range(4)] == [0, 1, 4, None]
