"""The VEO contract, run over every backend available: host in-process, host isolated, and veo on a real card.

Golden kernels (kernels/*.c, .cpp, .f90) are built once per session and checked against numpy.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time

import numpy as np
import pytest
from xmanager.executors.vector_engine import veo_api as veo
from xmanager.executors.vector_engine.build import BuildError, build_library

KERNELS = os.path.join(os.path.dirname(__file__), "kernels")
BACKENDS = ["host", "host-isolated", "veo"]

PROTOTYPES = {
    "sum": (("double *", "int"), "double"),
    "scale": (("double *", "int", "double"), "int"),
    "average": (("double *", "long"), "double"),
    "axpy": (("double *", "double *", "int", "double"), "void"),
    "fill": (("double *", "int", "double"), "int"),
    "increment": (("int32_t *", "int"), "int"),
    "fmul": (("float", "float"), "float"),
    "add64": (("long", "long"), "long"),
    "umax": ((), "unsigned int"),
    "offset": (("double *", "long"), "double *"),
    "bump": ((), "int"),
    "append": (("long *", "long"), "int"),
    "slow": (("int",), "int"),
    "hang": ((), "int"),
    "divide": (("int", "int"), "int"),
    "crash": ((), "int"),
    "quit": (("int",), "int"),
}


def _source(name: str) -> str:
    with open(os.path.join(KERNELS, name), encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ve-build"))


def _kernel_path(build_dir: str, backend: str, name: str, language: str) -> str:
    try:
        return build_library(
            {name.split(".")[0]: _source(name)}, language=language, backend=backend, build_dir=build_dir
        )
    except BuildError as error:
        if backend == "veo" and "not found" in str(error):
            pytest.skip(f"cannot build VE kernels here: {error}")
        raise


@pytest.fixture(scope="session")
def veo_unavailable():
    """Why the veo backend cannot run here (None when a card answers); asked once per session."""
    return veo.backends_available()["veo"]


@pytest.fixture(params=BACKENDS)
def backend(request, veo_unavailable):
    if request.param == "veo" and veo_unavailable:
        pytest.skip(f"veo backend unavailable here: {veo_unavailable}")
    return request.param


@pytest.fixture
def proc(backend):
    p = veo.VeoProc(0, backend="veo" if backend == "veo" else "host", isolated=backend == "host-isolated")
    yield p
    p.proc_destroy()


@pytest.fixture
def lib(proc, backend, build_dir):
    path = _kernel_path(build_dir, "veo" if backend == "veo" else "host", "golden.c", "c")
    library = proc.load_library(path)
    for name, (args, ret) in PROTOTYPES.items():
        function = library.find_function(name)
        function.args_type(*args)
        function.ret_type(ret)
    return library


@pytest.fixture
def ctx(proc):
    return proc.open_context()


def _device_array(proc, values: np.ndarray) -> int:
    addr = proc.alloc_mem(values.nbytes)
    proc.write_mem(addr, values, values.nbytes)
    return addr


# ------------------------------------------------------------------ golden kernels
def test_scale_in_place_matches_numpy(proc, lib, ctx):
    data = np.random.default_rng(1).standard_normal(1000)
    addr = _device_array(proc, data)
    assert lib.scale(ctx, addr, data.size, 2.5).wait_result() == data.size
    out = np.empty_like(data)
    proc.read_mem(out, addr, out.nbytes)
    np.testing.assert_array_equal(out, data * 2.5)


def test_sum_returns_a_double_matching_numpy(proc, lib, ctx):
    data = np.random.default_rng(2).random(4096)
    addr = _device_array(proc, data)
    assert lib.sum(ctx, addr, data.size).wait_result() == pytest.approx(np.sum(data), rel=1e-12)


def test_async_write_call_read_run_in_fifo_order(proc, lib, ctx):
    data = np.arange(512, dtype=np.float64)
    addr = proc.alloc_mem(data.nbytes)
    out = np.zeros_like(data)
    write = ctx.async_write_mem(addr, data, data.nbytes)
    call = lib.scale(ctx, addr, data.size, -3.0)
    read = ctx.async_read_mem(out, addr, out.nbytes)
    assert read.wait_result() == 0
    assert write.peek_result() == 0
    assert call.peek_result() == data.size
    np.testing.assert_array_equal(out, data * -3.0)


def test_many_async_calls_keep_submission_order(proc, lib, ctx):
    log = np.zeros(201, dtype=np.int64)
    addr = _device_array(proc, log)
    requests = [lib.append(ctx, addr, value) for value in range(200)]
    assert [r.wait_result() for r in reversed(requests)] == list(range(200, 0, -1))
    proc.read_mem(log, addr, log.nbytes)
    assert log[0] == 200
    np.testing.assert_array_equal(log[1:], np.arange(200))


def test_average_over_onstack_in_leaves_the_callers_buffer_unchanged(proc, lib, ctx):
    data = np.random.default_rng(3).random(128 * 1024)  # 1 MiB, under the 2 MiB stack limit
    before = data.copy()
    result = lib.average(ctx, veo.OnStack(data), data.size).wait_result()
    assert result == pytest.approx(np.mean(data), abs=1e-13)
    np.testing.assert_array_equal(data, before)


def test_onstack_in_copy_is_private(proc, lib, ctx):
    values = np.arange(8, dtype=np.int32)
    assert lib.increment(ctx, veo.OnStack(values, inout=veo.INTENT_IN), values.size).wait_result() == 8
    np.testing.assert_array_equal(values, np.arange(8))


def test_onstack_inout_and_out_are_copied_back(proc, lib, ctx):
    values = np.arange(8, dtype=np.int32)
    lib.increment(ctx, veo.OnStack(values, inout=veo.INTENT_INOUT), values.size).wait_result()
    np.testing.assert_array_equal(values, np.arange(8) + 1)
    out = np.full(16, -1.0)
    assert lib.fill(ctx, veo.OnStack(out, inout=veo.INTENT_OUT), out.size, 4.25).wait_result() == 16
    np.testing.assert_array_equal(out, np.full(16, 4.25))


def test_onstack_size_limits_the_copied_prefix(proc, lib, ctx):
    values = np.zeros(8, dtype=np.int32)
    lib.increment(ctx, veo.OnStack(values, size=4 * 4, inout=veo.INTENT_INOUT), 4).wait_result()
    np.testing.assert_array_equal(values, [1, 1, 1, 1, 0, 0, 0, 0])


def test_in_and_out_buffers_with_a_void_kernel(proc, lib, ctx):
    rng = np.random.default_rng(4)
    x, y = rng.random(300), rng.random(300)
    ax, ay = _device_array(proc, x), _device_array(proc, y)
    assert lib.axpy(ctx, ay, ax, x.size, 0.5).wait_result() is None
    out_x, out_y = np.empty_like(x), np.empty_like(y)
    proc.read_mem(out_x, ax, x.nbytes)
    proc.read_mem(out_y, ay, y.nbytes)
    np.testing.assert_array_equal(out_x, x)
    np.testing.assert_allclose(out_y, y + 0.5 * x, rtol=0, atol=1e-15)


def test_float_long_unsigned_and_pointer_conversions(proc, lib, ctx):
    assert lib.fmul(ctx, 1.5, 2.25).wait_result() == 3.375
    assert lib.fmul(ctx, 0.1, 3).wait_result() == float(np.float32(0.1) * np.float32(3.0))
    assert lib.add64(ctx, 2**40, -(2**41)).wait_result() == 2**40 - 2**41
    assert lib.umax(ctx).wait_result() == 2**32 - 1
    base = proc.alloc_mem(80)
    assert lib.offset(ctx, base, 3).wait_result() == base + 24


def test_numpy_scalars_are_accepted(proc, lib, ctx):
    data = np.ones(4)
    addr = _device_array(proc, data)
    assert lib.scale(ctx, np.uint64(addr), np.int32(4), np.float32(2.0)).wait_result() == 4


def test_peek_result_raises_name_error_until_the_slow_kernel_is_done(proc, lib, ctx):
    request = lib.slow(ctx, 300)
    with pytest.raises(NameError, match="peek_result command unfinished"):
        request.peek_result()
    assert request.wait_result() == 300
    assert request.peek_result() == 300


def test_wait_with_timeout_raises_veo_timeout_error_and_the_command_still_finishes(proc, lib, ctx):
    request = lib.slow(ctx, 400)
    with pytest.raises(veo.VeoTimeoutError) as caught:
        request.wait_result(timeout=0.02)
    assert isinstance(caught.value, TimeoutError)
    with pytest.raises(ValueError, match="timeout must be None or a number"):
        request.wait_result(timeout="soon")
    assert request.wait_result() == 400


def test_context_sync_waits_for_queued_commands(proc, lib, ctx):
    log = np.zeros(11, dtype=np.int64)
    addr = _device_array(proc, log)
    for value in range(10):
        lib.append(ctx, addr, value)
    ctx.context_sync()
    proc.read_mem(log, addr, log.nbytes)
    assert log[0] == 10


def test_contexts_are_independent_queues(proc, lib):
    first, second = proc.open_context(), proc.open_context()
    assert len(proc.context) == 2
    slow = lib.slow(first, 300)
    quick = lib.add64(second, 20, 22)
    assert quick.wait_result() == 42
    assert slow.wait_result() == 300
    proc.close_context(first)
    with pytest.raises(RuntimeError, match="closed"):
        lib.add64(first, 1, 2)


def test_threads_share_a_context_safely(proc, lib, ctx):
    log = np.zeros(1 + 4 * 50, dtype=np.int64)
    addr = _device_array(proc, log)

    def worker(base: int) -> None:
        for value in range(base, base + 50):
            lib.append(ctx, addr, value).wait_result()

    threads = [threading.Thread(target=worker, args=(100 * i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    proc.read_mem(log, addr, log.nbytes)
    assert log[0] == 200
    assert sorted(log[1:]) == sorted(v for i in range(4) for v in range(100 * i, 100 * i + 50))


def test_get_symbol_reads_and_writes_a_global(proc, backend, lib, ctx):
    addr = lib.get_symbol("counter_value")
    assert lib.get_symbol("counter_value") == addr
    value = np.array([41], dtype=np.int64)
    proc.write_mem(addr, value, 8)
    assert lib.bump(ctx).wait_result() == 42
    proc.read_mem(value, addr, 8)
    assert value[0] == 42
    table = np.zeros(4, dtype=np.int32)
    proc.read_mem(table, lib.get_symbol("table_ro"), table.nbytes)
    np.testing.assert_array_equal(table, [1, 2, 3, 4])
    if backend != "veo":  # on a VE, nm may not know the symbol's size and section
        with pytest.raises(RuntimeError, match="read-only"):
            proc.write_mem(lib.get_symbol("table_ro"), table, table.nbytes)


def test_attribute_lookup_finds_and_caches_functions(proc, lib):
    assert lib.scale is lib.find_function("scale")
    assert lib.func[b"scale"] is lib.scale
    assert lib.scale.argtypes == ("double *", "int", "double")
    assert proc.load_library(lib.name) is lib
    assert proc.lib[lib.name.encode()] is lib


def test_cpp_and_fortran_kernels(proc, backend, build_dir, ctx):
    kind = "veo" if backend == "veo" else "host"
    dot = proc.load_library(_kernel_path(build_dir, kind, "dot.cpp", "c++")).dot
    sumsq = proc.load_library(_kernel_path(build_dir, kind, "norm.f90", "fortran")).ftn_sumsq
    dot.args_type("double *", "double *", "int")
    dot.ret_type("double")
    sumsq.args_type("double *", "int")
    sumsq.ret_type("double")
    rng = np.random.default_rng(5)
    a, b = rng.random(1000), rng.random(1000)
    addr_a, addr_b = _device_array(proc, a), _device_array(proc, b)
    assert dot(ctx, addr_a, addr_b, a.size).wait_result() == pytest.approx(np.dot(a, b), rel=1e-12)
    assert sumsq(ctx, addr_a, a.size).wait_result() == pytest.approx(np.sum(a * a), rel=1e-12)


def test_large_transfers_round_trip(proc, lib, ctx):
    data = np.random.default_rng(6).random(300_000)  # 2.4 MB, over the isolated inline limit
    addr = proc.alloc_mem(data.nbytes)
    proc.write_mem(addr, data, data.nbytes)
    lib.scale(ctx, addr, data.size, 2.0)
    out = np.empty_like(data)
    ctx.async_read_mem(out, addr, out.nbytes).wait_result()
    np.testing.assert_array_equal(out, data * 2.0)
    again = np.empty_like(data)
    ctx.async_write_mem(addr, data, data.nbytes).wait_result()
    proc.read_mem(again, addr, again.nbytes)
    np.testing.assert_array_equal(again, data)
    assert not glob.glob(f"/dev/shm/xmveo-{os.getpid()}-*")


def test_empty_transfers_are_no_ops(proc, ctx):
    addr = proc.alloc_mem(8)
    empty = np.zeros(0)
    proc.write_mem(addr, empty, 0)
    proc.read_mem(empty, addr, 0)
    assert ctx.async_write_mem(addr, empty, 0).wait_result() == 0
    assert ctx.async_read_mem(empty, addr, 0).wait_result() == 0


def test_bytes_and_bytearray_buffers(proc):
    addr = proc.alloc_mem(16)
    proc.write_mem(addr, b"0123456789abcdef", 16)
    out = bytearray(16)
    proc.read_mem(out, addr, 16)
    assert bytes(out) == b"0123456789abcdef"


# ------------------------------------------------------------------ bad input
def test_wrong_argument_count_is_a_value_error(lib, ctx):
    with pytest.raises(ValueError, match=r"scale: expected 3 arguments"):
        lib.scale(ctx, 1, 2)


@pytest.mark.parametrize(
    "args, match",
    [
        (("x", 4, 1.0), r"argument 0 \('double \*'\)"),
        ((None, 4, 1.0), r"argument 0"),
        ((0, 4.5, 1.0), r"argument 1 \('int'\): expected an int"),
        ((0, 2**31, 1.0), r"argument 1 \('int'\): out of range"),
        ((0, 4, "2.0"), r"argument 2 \('double'\): expected a float"),
    ],
)
def test_bad_argument_types_are_value_errors(lib, ctx, args, match):
    with pytest.raises(ValueError, match=match):
        lib.scale(ctx, *args)


def test_host_buffers_and_foreign_pointers_are_rejected(proc, lib, ctx):
    data = np.ones(4)
    with pytest.raises(ValueError, match="argument 0"):
        lib.scale(ctx, data, 4, 1.0)
    with pytest.raises(ValueError, match="not inside VE memory allocated by this proc"):
        lib.scale(ctx, data.ctypes.data, 4, 1.0)
    addr = proc.alloc_mem(32)
    proc.free_mem(addr)
    with pytest.raises(ValueError, match="not inside VE memory"):
        lib.scale(ctx, addr, 4, 1.0)


def test_memory_transfers_are_bounds_checked(proc, ctx):
    addr = proc.alloc_mem(64)
    out = np.zeros(16)
    with pytest.raises(RuntimeError, match=r"veo_read_mem failed: address range 0x[0-9a-f]+\+128 is not inside"):
        proc.read_mem(out, addr, 128)
    with pytest.raises(RuntimeError, match="veo_write_mem failed"):
        proc.write_mem(addr + 32, out, 64)
    with pytest.raises(RuntimeError, match="veo_async_read_mem failed"):
        ctx.async_read_mem(out, addr + 8, 64)
    with pytest.raises(ValueError, match="fewer than size=64"):
        proc.read_mem(np.zeros(4), addr, 64)
    with pytest.raises(ValueError, match="read-only"):
        proc.read_mem(b"\0" * 64, addr, 64)
    with pytest.raises(RuntimeError, match="veo_free_mem failed"):
        proc.free_mem(addr + 8)
    with pytest.raises(ValueError, match="alloc_mem: size"):
        proc.alloc_mem(-1)


def test_unknown_symbol_and_type_and_missing_args_type(proc, lib, ctx):
    with pytest.raises(RuntimeError, match="veo_get_sym 'no_such_kernel'"):
        lib.find_function("no_such_kernel")
    with pytest.raises(RuntimeError, match="veo_get_sym"):
        lib.no_such_kernel  # noqa: B018 - attribute lookup is the API under test
    with pytest.raises(RuntimeError, match="veo_get_sym"):
        lib.get_symbol("no_such_global")
    with pytest.raises(ValueError, match="unknown VEO type 'dooble'"):
        lib.sum.args_type("dooble", "int")
    typed = lib.func.pop(b"divide")
    unset = lib.find_function("divide")
    assert unset is not typed and unset.argtypes is None
    with pytest.raises(RuntimeError, match="args_type"):
        unset(ctx, 1, 2)


def test_onstack_over_the_stack_limit_is_refused(backend, build_dir):
    small = veo.VeoProc(
        0, backend="veo" if backend == "veo" else "host", isolated=backend == "host-isolated", stack_limit=1024
    )
    try:
        path = _kernel_path(build_dir, "veo" if backend == "veo" else "host", "golden.c", "c")
        average = small.load_library(path).average
        average.args_type("double *", "long")
        with pytest.raises(ValueError, match="over the stack limit of 1024 bytes"):
            average(small.open_context(), veo.OnStack(np.ones(200)), 200)
    finally:
        small.proc_destroy()


def test_onstack_validates_its_buffer():
    with pytest.raises(ValueError, match="OnStack: inout"):
        veo.OnStack(np.ones(2), inout=7)
    with pytest.raises(ValueError, match="fewer than size=64"):
        veo.OnStack(np.ones(2), size=64)
    with pytest.raises(ValueError, match="read-only"):
        veo.OnStack(b"abcd", inout=veo.INTENT_OUT)
    with pytest.raises(ValueError, match="C-contiguous"):
        veo.OnStack(np.ones((4, 4))[:, 1])
    with pytest.raises(ValueError, match="C-contiguous"):
        veo.OnStack(np.ones((4, 4), order="F"))
    assert veo.OnStack(np.ones((4, 4))).size() == 128
    assert veo.OnStack(np.ones(2), inout=veo.INTENT_OUT).scope() == veo.INTENT_OUT


def test_library_paths_are_checked(proc, tmp_path):
    with pytest.raises(ValueError, match="absolute"):
        proc.load_library("libk.so")
    with pytest.raises(RuntimeError, match="veo_load_library .* failed"):
        proc.load_library(str(tmp_path / "missing.so"))
    junk = tmp_path / "junk.so"
    junk.write_text("not a library")
    with pytest.raises(RuntimeError, match="veo_load_library .* failed"):
        proc.load_library(str(junk))


def test_destroyed_proc_refuses_work(backend, lib, proc, ctx):
    proc.proc_destroy()
    with pytest.raises(RuntimeError, match="destroyed"):
        proc.alloc_mem(8)
    with pytest.raises(RuntimeError, match="context is closed"):
        lib.add64(ctx, 1, 2)
    with pytest.raises(ValueError, match="ctx must be a context of the proc"):
        lib.add64("ctx", 1, 2)
    proc.proc_destroy()  # idempotent


# ------------------------------------------------------------------ hooks and backend choice
def test_proc_init_hooks_run_for_every_new_proc():
    seen = []

    def hook(p):
        seen.append(p)

    veo.set_proc_init_hook(hook)
    try:
        with veo.VeoProc(0, backend="host") as p:
            assert seen == [p]
    finally:
        veo.del_proc_init_hook(hook)
    with veo.VeoProc(0, backend="host"):
        assert len(seen) == 1
    with pytest.raises(ValueError, match="not a registered init hook"):
        veo.del_proc_init_hook(hook)
    with pytest.raises(TypeError):
        veo.set_proc_init_hook("not callable")


def test_auto_picks_host_without_a_card_and_says_why(caplog, veo_unavailable):
    why = veo_unavailable
    if why is None:
        pytest.skip("a VE card answers here; auto picks veo")
    with caplog.at_level(logging.INFO, logger="xmanager.executors.vector_engine.veo_api"):
        with veo.VeoProc(0) as p:
            assert p.backend == "host"
            assert p.backend_reason == why
    assert any("backend auto -> host" in record.getMessage() for record in caplog.records)


def test_veo_backend_without_py_veo_or_card_fails_clearly(veo_unavailable):
    if veo_unavailable is None:
        pytest.skip("a VE card answers here")
    with pytest.raises(RuntimeError, match=r"py-veo is not importable|veo_proc_create|VeoProc"):
        veo.VeoProc(0, backend="veo")


def test_bad_proc_arguments():
    with pytest.raises(ValueError, match="backend must be one of"):
        veo.VeoProc(0, backend="gpu")
    with pytest.raises(ValueError, match="node must be"):
        veo.VeoProc(-1, backend="host")
    with pytest.raises(ValueError, match="isolated=True applies to the host backend only"):
        veo.VeoProc(0, backend="veo", isolated=True)


# ------------------------------------------------------------------ isolated mode only
@pytest.fixture
def isolated(build_dir):
    p = veo.VeoProc(0, backend="host", isolated=True)
    library = p.load_library(_kernel_path(build_dir, "host", "golden.c", "c"))
    for name, (args, ret) in PROTOTYPES.items():
        library.find_function(name).args_type(*args)
        library.find_function(name).ret_type(ret)
    yield p, library, p.open_context()
    p.proc_destroy()


def test_isolated_sigfpe_is_an_arithmetic_error_and_the_caller_survives(isolated):
    proc, lib, ctx = isolated
    assert lib.divide(ctx, 7, 2).wait_result() == 3
    with pytest.raises(ArithmeticError, match="SIGFPE"):
        lib.divide(ctx, 1, 0).wait_result()
    with pytest.raises(RuntimeError, match="isolated worker process is gone"):
        proc.alloc_mem(8)


def test_isolated_segfault_is_a_kernel_crash_error_naming_the_signal(isolated):
    proc, lib, ctx = isolated
    queued = lib.slow(ctx, 200)  # holds the crash back until everything is queued
    crash = lib.crash(ctx)
    behind = lib.add64(ctx, 3, 4)
    assert queued.wait_result() == 200
    with pytest.raises(veo.KernelCrashError, match="SIGSEGV") as caught:
        crash.wait_result()
    assert caught.value.signal_name == "SIGSEGV"
    with pytest.raises(veo.KernelCrashError):
        behind.wait_result()


def test_isolated_worker_exiting_is_a_runtime_error(isolated):
    proc, lib, ctx = isolated
    with pytest.raises(RuntimeError, match="worker process exited unexpectedly with status 3"):
        lib.quit(ctx, 3).wait_result()
    with pytest.raises(RuntimeError, match="isolated worker process is gone"):
        lib.add64(ctx, 1, 2)


def test_isolated_allocations_are_aligned_and_zeroed(isolated):
    proc, _, _ = isolated
    addr = proc.alloc_mem(100)
    assert addr % 64 == 0
    out = np.ones(100, dtype=np.uint8)
    proc.read_mem(out, addr, 100)
    assert not out.any()


def test_isolated_hung_kernel_times_out_and_destroy_kills_the_worker(isolated):
    proc, lib, ctx = isolated
    pid = proc._impl.pid
    request = lib.hang(ctx)
    with pytest.raises(veo.VeoTimeoutError):
        request.wait_result(timeout=0.05)
    proc.proc_destroy()
    with pytest.raises(RuntimeError, match="destroyed"):
        request.wait_result(timeout=5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_isolated_addresses_are_not_dereferenced_in_the_caller(isolated):
    proc, lib, ctx = isolated
    addr = proc.alloc_mem(8)
    proc.write_mem(addr, np.array([2.0]), 8)
    assert lib.sum(ctx, addr, 1).wait_result() == 2.0


# ------------------------------------------------------------------ in-process host: deferred worker wake-ups
@pytest.fixture
def inproc(build_dir):
    p = veo.VeoProc(0, backend="host")
    library = p.load_library(_kernel_path(build_dir, "host", "golden.c", "c"))
    for name, (args, ret) in PROTOTYPES.items():
        library.find_function(name).args_type(*args)
        library.find_function(name).ret_type(ret)
    yield p, library
    p.proc_destroy()


def _make_deferred(lib, ctx) -> None:
    for _ in range(20):
        assert lib.add64(ctx, 1, 1).wait_result() == 2
    assert ctx._impl._eager is False
    time.sleep(0.05)  # lets the worker absorb wake-ups still in flight from the eager phase


def _poll_until_done(request, limit_s: float = 10.0):
    """Peeks until the command is done, without ever calling wait_result (bounded, not timed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            return request.peek_result()
        except NameError:
            time.sleep(0.005)
    raise AssertionError("the command never finished")


def test_inproc_allocations_are_aligned_zeroed_real_addresses(inproc):
    import ctypes

    proc, _ = inproc
    addr = proc.alloc_mem(100)
    assert addr % 64 == 0
    assert ctypes.string_at(addr, 100) == bytes(100)  # a real host address, as documented


def test_call_wait_streak_defers_wakeups_but_peek_still_runs_commands_async(inproc):
    proc, lib = inproc
    ctx = proc.open_context()
    _make_deferred(lib, ctx)
    request = lib.slow(ctx, 20)
    assert _poll_until_done(request) == 20
    assert ctx._impl._eager is True


def test_a_late_wait_switches_back_to_eager_wakeups(inproc):
    proc, lib = inproc
    ctx = proc.open_context()
    _make_deferred(lib, ctx)
    request = lib.add64(ctx, 2, 3)
    time.sleep(0.01)  # host work overlapping the command
    assert request.wait_result() == 5
    assert ctx._impl._eager is True


def test_waiting_on_one_context_starts_deferred_work_on_the_others(inproc):
    proc, lib = inproc
    first, second = proc.open_context(), proc.open_context()
    _make_deferred(lib, first)
    _make_deferred(lib, second)
    background = lib.slow(second, 30)
    assert lib.slow(first, 200).wait_result() == 200
    assert _poll_until_done(background) == 30


def test_deferred_commands_queued_together_all_run_in_order(inproc):
    proc, lib = inproc
    ctx = proc.open_context()
    _make_deferred(lib, ctx)
    log = np.zeros(4, dtype=np.int64)
    addr = _device_array(proc, log)
    first, second, third = (lib.append(ctx, addr, v) for v in (7, 8, 9))
    assert _poll_until_done(third) == 3
    assert (first.peek_result(), second.peek_result()) == (1, 2)
    proc.read_mem(log, addr, log.nbytes)
    np.testing.assert_array_equal(log, [3, 7, 8, 9])


# ------------------------------------------------------------------ the veo adapter's forwarding, over a recording fake
class _FakeVeo:
    """Stands in for the ``veo`` module (py-veo 1.5.0's names), recording what the adapter forwards."""

    INTENT_IN, INTENT_INOUT, INTENT_OUT = 0, 1, 2

    def __init__(self, fail: bool = False, finish_after: int = 2) -> None:
        self.fail = fail
        self.finish_after = finish_after
        self.log: list[tuple] = []
        fake = self

        class OnStack:
            def __init__(self, buff, size=None, inout=0):
                fake.log.append(("OnStack", size, inout))

        class Request:
            def __init__(self, value, polls):
                self.value, self.polls = value, polls

            def peek_result(self):
                self.polls -= 1
                if self.polls >= 0:
                    raise NameError("peek_result command unfinished")
                return self.value

            def wait_result(self):
                return self.value

        class Function:
            name = "kernel"

            def args_type(self, *types):
                fake.log.append(("args_type", types))

            def ret_type(self, name):
                fake.log.append(("ret_type", name))

            def __call__(self, ctx, *args):
                fake.log.append(("call", args))
                return Request(len(args), fake.finish_after)

        class Library:
            def find_function(self, name):
                return Function() if name == "kernel" else None

        class Proc:
            def __init__(self, node, veorun_bin=None):
                if fake.fail:
                    raise RuntimeError(f"veo_proc_create({node}) failed")
                fake.log.append(("VeoProc", node))

            def load_library(self, path):
                return Library()

            def alloc_mem(self, size):
                return 0x600000000000

            def open_context(self):
                return object()

            def proc_destroy(self):
                fake.log.append(("proc_destroy",))

        self.OnStack, self.VeoProc = OnStack, Proc


@pytest.fixture
def fake_veo(monkeypatch, tmp_path):
    import sys

    from xmanager.executors.vector_engine import veo_adapter

    def install(**kwargs):
        fake = _FakeVeo(**kwargs)
        monkeypatch.setitem(sys.modules, "veo", fake)
        monkeypatch.setattr(veo, "card_present", lambda node: True)
        veo_adapter.import_problem.cache_clear()
        return fake

    library = tmp_path / "libk.so"
    library.write_bytes(b"")
    yield install, str(library)
    veo_adapter.import_problem.cache_clear()


def test_adapter_forwards_types_onstack_and_polls_for_a_timeout(fake_veo):
    install, library = fake_veo
    fake = install(finish_after=3)
    with veo.VeoProc(0) as proc:
        assert (proc.backend, proc.backend_reason) == ("veo", "a VE card answered")
        kernel = proc.load_library(library).kernel
        kernel.args_type("double *", "long long", "uint8_t", "float")
        kernel.ret_type("size_t")
        assert ("args_type", ("void *", "long", "unsigned char", "float")) in fake.log
        assert ("ret_type", "unsigned long") in fake.log
        addr = proc.alloc_mem(64)
        ctx = proc.open_context()
        stack = np.zeros(4)
        request = kernel(ctx, veo.OnStack(stack, inout=veo.INTENT_OUT), 1, 2, 0.5)
        assert ("OnStack", 32, veo.INTENT_OUT) in fake.log
        assert request.wait_result(timeout=5) == 4
        fake.finish_after = 10**9
        with pytest.raises(veo.VeoTimeoutError):
            kernel(ctx, addr, 1, 2, 0.5).wait_result(timeout=0.05)
        with pytest.raises(RuntimeError, match="veo_get_sym 'other' failed"):
            proc.load_library(library).find_function("other")
    assert ("proc_destroy",) in fake.log


def test_auto_falls_back_to_host_when_the_card_does_not_answer(fake_veo, caplog):
    install, _ = fake_veo
    install(fail=True)
    with caplog.at_level(logging.INFO, logger="xmanager.executors.vector_engine.veo_api"):
        with veo.VeoProc(0) as proc:
            assert proc.backend == "host"
            assert proc.backend_reason == "VeoProc(0) failed: veo_proc_create(0) failed"
    assert veo.backends_available()["veo"] == "VeoProc(0) failed: veo_proc_create(0) failed"
    with pytest.raises(RuntimeError, match=r"veo_proc_create\(0\) failed"):
        veo.VeoProc(0, backend="veo")


def test_symbols_of_unknown_size_are_reachable_only_at_their_address(inproc, monkeypatch):
    from xmanager.executors.vector_engine import host

    proc, _ = inproc
    monkeypatch.setattr(host, "symbol_table", lambda path: {})  # as without binutils' nm
    lib = proc.load_library(next(iter(proc.lib.values())).name)
    lib.symbol.clear()
    addr = lib.get_symbol("table_ro")
    table = np.zeros(4, dtype=np.int32)
    proc.read_mem(table, addr, table.nbytes)
    np.testing.assert_array_equal(table, [1, 2, 3, 4])
    with pytest.raises(RuntimeError, match="not inside"):
        proc.read_mem(table, addr + 4, 4)


def test_code_symbols_are_read_only(inproc):
    proc, lib = inproc
    code = lib.get_symbol("scale")
    with pytest.raises(RuntimeError, match="read-only"):
        proc.write_mem(code, b"\0" * 4, 4)


def test_a_failing_init_hook_fails_the_proc():
    def broken(proc):
        raise LookupError("hook failed")

    veo.set_proc_init_hook(broken)
    try:
        with pytest.raises(LookupError, match="hook failed"):
            veo.VeoProc(0, backend="host", isolated=True)
    finally:
        veo.del_proc_init_hook(broken)
