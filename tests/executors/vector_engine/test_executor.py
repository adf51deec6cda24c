"""The VectorEngine executor on the real host backend: gcc-built kernels run through the VEO API.

Every test compiles real C kernels (cached per test in a private build folder) and runs
them through experiments, reading what the store recorded.
"""

import contextlib
import os
import shutil

import numpy as np
import pytest
from xmanager import xm, xm_local
from xmanager.xm.status import Status

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the host backend compiles kernels with gcc")

KERNELS = r"""
#include <stdint.h>
#include <unistd.h>
#include <pthread.h>
#include <stddef.h>

int scale(double *x, int n, double alpha) { for (int i = 0; i < n; i++) x[i] *= alpha; return n; }

double axpy(const double *x, double *y, int n, double a) {
    double s = 0; for (int i = 0; i < n; i++) { y[i] = a * x[i]; s += y[i]; } return s;
}

double stack_sum(const double *x, int n) { double s = 0; for (int i = 0; i < n; i++) s += x[i]; return s; }

void stack_square(float *x, int n) { for (int i = 0; i < n; i++) x[i] = x[i] * x[i]; }

long who(int pause_ms) { usleep(pause_ms * 1000); return (long)getpid() * 1000003L + (long)(pthread_self() % 1000003); }

int crash(int how) { if (how) { volatile int *p = NULL; *p = 1; } return 7; }

int divide(int a, int b) { return a / b; }

int spin(int forever) { volatile long i = 0; while (forever) i++; return 1; }

int nap(int ms) { usleep(ms * 1000); return ms; }

void fill(double *y, int n, double v) { for (int i = 0; i < n; i++) y[i] = v; }
"""

SIGNATURES = {
    "scale": (("x: double *", "n: int", "alpha: double"), "int"),
    "axpy": (("x: const double *", "y: double *", "n: int", "a: double"), "double"),
    "stack_sum": (("x: const double *", "n: int"), "double"),
    "stack_square": (("x: float *", "n: int"), "void"),
    "who": (("pause_ms: int",), "long"),
    "crash": (("how: int",), "int"),
    "divide": (("a: int", "b: int"), "int"),
    "spin": (("forever: int",), "int"),
    "nap": (("ms: int",), "int"),
    "fill": (("y: double *", "n: int", "v: double"), "void"),
    "no_such_symbol": (("a: int",), "int"),
}


@pytest.fixture
def spec(tmp_path):
    return xm_local.VectorEngineSpec(backend="host", build_dir=str(tmp_path / "ve-build"))


def kernel(spec, entry, source=KERNELS, **kwargs):
    args, ret = SIGNATURES[entry]
    return xm.ve_kernel(spec, entry, args, {"kernels": source}, ret_type=ret, **kwargs)


def executor(**kwargs):
    return xm_local.VectorEngine(backend="host", **kwargs)


@contextlib.contextmanager
def failing(count):
    """Leaving the experiment's block raises, naming the failed units."""
    with pytest.raises(xm.ExperimentFailedError, match=f"{count} of"):
        yield


def units(experiment):
    return [experiment.work_units[key] for key in sorted(experiment.work_units)]


def units_by_id(experiment):
    frame = experiment.to_dataframe()
    return {int(row["_work_unit_id"]): row for _, row in frame.iterrows()}


def test_sweep_reads_outputs_and_return_values_from_the_dataframe(spec):
    data = np.arange(5.0)
    with xm_local.create_experiment("scale sweep") as experiment:
        [exe] = experiment.package([kernel(spec, "scale")])
        job = xm.Job(exe, executor(), args={"x": xm.VeBuffer(data, intent="inout"), "n": 5})
        experiment.add_sweep(job, [{"alpha": a} for a in (0.5, 2.0, -1.0)])
    frame = experiment.to_dataframe().sort_values("_work_unit_id")
    assert list(frame["_status"]) == ["completed"] * 3
    assert list(frame["return"]) == [5, 5, 5]
    for alpha, values in zip(frame["alpha"], frame["result_x"]):
        assert values == (data * alpha).tolist()
    assert data.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # The caller's array is never written to.


def test_in_and_out_buffers_and_float_return(spec):
    x = np.linspace(0, 1, 7)
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "axpy")])
        job = xm.Job(exe, executor(), args={"x": xm.VeBuffer(x), "y": xm.VeBuffer(np.empty(7), intent="out"), "n": 7})
        experiment.add(job, args={"a": 3.0})
    [unit] = units(experiment)
    assert unit.get_status().status is Status.COMPLETED
    assert unit.results["y"] == pytest.approx((3.0 * x).tolist())
    assert unit.results["return"] == pytest.approx(3.0 * x.sum())
    assert "x" not in unit.results  # An "in" buffer is not a result.


def test_stack_buffers_in_and_inout_with_a_void_kernel(spec):
    x = np.arange(1.0, 9.0)
    f = np.array([1.5, -2.0, 3.0], dtype=np.float32)
    with xm_local.create_experiment() as experiment:
        exes = experiment.package([kernel(spec, "stack_sum"), kernel(spec, "stack_square")])
        experiment.add(xm.Job(exes[0], executor(), args={"x": xm.VeBuffer(x, placement="stack"), "n": 8}))
        experiment.add(
            xm.Job(exes[1], executor(), args={"x": xm.VeBuffer(f, intent="inout", placement="stack"), "n": 3})
        )
    total, squared = units(experiment)
    assert total.results == {"return": 36.0}
    assert squared.results == {"x": [2.25, 4.0, 9.0]}  # void: no "return".
    assert f.tolist() == [1.5, -2.0, 3.0]


def test_large_outputs_are_saved_as_npy_files_in_the_job_folder(spec):
    data = np.arange(1000.0)
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "scale")])
        job = xm.Job(
            exe, executor(inline_results_bytes=1024),
            args={"x": xm.VeBuffer(data, intent="inout"), "n": 1000, "alpha": 2.0},
        )
        experiment.add(job)
    [unit] = units(experiment)
    path = unit.results["x"]
    assert isinstance(path, str) and path.endswith("x.npy") and os.path.isfile(path)
    assert np.array_equal(np.load(path), data * 2)


def test_packaging_compiles_once_per_kernel_not_per_unit(spec, monkeypatch):
    from xmanager.executors.vector_engine import build

    calls = []
    real = build.build_library

    def counting(**kwargs):
        calls.append(kwargs["sources"])
        return real(**kwargs)

    monkeypatch.setattr(build, "build_library", counting)
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "scale")])
        job = xm.Job(exe, executor(), args={"x": xm.VeBuffer(np.ones(3), intent="inout"), "n": 3})
        experiment.add_sweep(job, [{"alpha": float(a)} for a in range(6)])
    assert len(calls) == 1
    assert experiment.status_counts == {"completed": 6}


def test_units_on_one_node_share_a_process_and_use_up_to_contexts_threads(spec):
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "who")])
        job = xm.Job(exe, executor(contexts=2))
        experiment.add_sweep(job, [{"pause_ms": 40} for _ in range(8)])
    tags = [unit.results["return"] for unit in units(experiment)]
    pids = {tag // 1000003 for tag in tags}
    threads = {tag % 1000003 for tag in tags}
    assert len(pids) == 1 and pids != {os.getpid()}  # One isolated worker for the node.
    assert len(threads) == 2


def test_a_prebuilt_library_and_a_source_file(spec, tmp_path):
    from xmanager.executors.vector_engine.build import build_library

    library = build_library(sources={"pre": KERNELS}, language="c", backend="host", build_dir=str(tmp_path / "b"))
    source = tmp_path / "divide.c"
    source.write_text("int divide(int a, int b) { return a / b; }\n")
    with xm_local.create_experiment() as experiment:
        exes = experiment.package([
            xm.ve_kernel(spec, "divide", ("a: int", "b: int"), library=library),
            xm.ve_kernel(spec, "divide", ("a: int", "b: int"), {"divide": str(source)}),
        ])
        for exe in exes:
            experiment.add(xm.Job(exe, executor(), args={"a": 17, "b": 5}))
    assert [unit.results["return"] for unit in units(experiment)] == [3, 3]
    with pytest.raises(FileNotFoundError, match="no file at"):
        xm_local.LocalExperiment.package([xm.ve_kernel(spec, "f", (), library=str(tmp_path / "missing.so"))])
    with pytest.raises(FileNotFoundError, match="sources\\['k'\\]"):
        xm_local.LocalExperiment.package([xm.ve_kernel(spec, "f", (), {"k": str(tmp_path / "missing.c")})])


def test_a_vekernel_is_refused_by_the_local_executor():
    with pytest.raises(TypeError, match="cannot package VeKernel for LocalSpec"):
        xm_local.LocalExperiment.package([xm.ve_kernel(xm_local.Local.Spec(), "f", (), {"k": "int f(){return 0;}"})])


# ---- bad input: a clear error on that unit, recorded in the store; the others go on ----------------
def test_bad_bindings_raise_at_add_and_are_recorded(spec):
    with failing(3), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "scale")])
        buffer = xm.VeBuffer(np.ones(2), intent="inout")
        with pytest.raises(ValueError, match="missing argument 'alpha'"):
            experiment.add(xm.Job(exe, executor(), args={"x": buffer, "n": 2}))
        with pytest.raises(ValueError, match="unexpected argument 'beta'"):
            experiment.add(xm.Job(exe, executor(), args={"x": buffer, "n": 2, "alpha": 1.0, "beta": 1}))
        with pytest.raises(ValueError, match="argument 'x' \\(double \\*\\) is a pointer"):
            experiment.add(xm.Job(exe, executor(), args={"x": 4096, "n": 2, "alpha": 1.0}))
    rows = units_by_id(experiment)
    assert [row["_status"] for row in rows.values()] == ["failed"] * 3
    assert "missing argument 'alpha'" in rows[1]["_message"]
    assert "unexpected argument 'beta'" in rows[2]["_message"]
    assert "bind an xm.VeBuffer" in rows[3]["_message"]
    loaded = xm_local.get_experiment(experiment.experiment_id)
    assert "missing argument 'alpha'" in units(loaded)[0].get_status().message


def test_a_bad_value_in_a_sweep_fails_only_its_unit(spec):
    with failing(1), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "divide")])
        job = xm.Job(exe, executor(), args={"a": 12})
        experiment.add_sweep(job, [{"b": 3}, {"b": "four"}, {"b": 6}])
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in (1, 2, 3)] == ["completed", "failed", "completed"]
    assert "argument 'b' (int) needs an integer, got str 'four'" in rows[2]["_message"]
    assert (rows[1]["return"], rows[3]["return"]) == (4, 2)


def test_an_unknown_symbol_fails_its_units_only(spec):
    with failing(1), xm_local.create_experiment() as experiment:
        missing, good = experiment.package([kernel(spec, "no_such_symbol"), kernel(spec, "divide")])
        experiment.add(xm.Job(missing, executor(), args={"a": 1}))
        experiment.add(xm.Job(good, executor(), args={"a": 9, "b": 3}))
    rows = units_by_id(experiment)
    assert rows[1]["_status"] == "failed"
    assert "no_such_symbol" in rows[1]["_message"]
    assert rows[2]["_status"] == "completed" and rows[2]["return"] == 3


BROKEN = "int broken(int n) {\n    return n +* ;\n}\n"


def test_a_compile_error_shows_the_compiler_message_and_the_source_line(spec):
    from xmanager.executors.vector_engine.build import BuildError

    packageable = xm.ve_kernel(spec, "broken", ("n: int",), {"broken": BROKEN})
    with pytest.raises(BuildError) as info:
        xm_local.LocalExperiment.package([packageable])
    assert "broken.c:2" in str(info.value)
    assert "return n +* ;" in str(info.value)


def test_a_compile_error_can_fail_the_units_instead(tmp_path):
    """on_build_error="fail_units": the broken kernel's units fail with gcc's message; the good kernels' units run."""
    spec = xm_local.VectorEngineSpec(backend="host", build_dir=str(tmp_path / "b"), on_build_error="fail_units")
    with failing(4), xm_local.create_experiment() as experiment:
        good, broken, other = experiment.package([
            kernel(spec, "divide"),
            xm.ve_kernel(spec, "broken", ("n: int",), {"broken": BROKEN}),
            kernel(spec, "nap"),
        ])
        experiment.add_sweep(xm.Job(good, executor(), args={"a": 8}), [{"b": 2}, {"b": 4}])
        experiment.add_sweep(xm.Job(broken, executor()), [{"n": n} for n in range(3)])  # Does not raise.
        experiment.add(xm.Job(broken, executor(), args={"n": 9}))
        experiment.add_sweep(xm.Job(other, executor()), [{"ms": 1}, {"ms": 2}])
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in range(1, 9)] == ["completed"] * 2 + ["failed"] * 4 + ["completed"] * 2
    assert (rows[1]["return"], rows[2]["return"], rows[7]["return"], rows[8]["return"]) == (4, 2, 1, 2)
    for i in range(3, 7):
        assert "VeKernel 'broken' did not compile" in rows[i]["_message"]
        assert "broken.c:2" in rows[i]["_message"] and "return n +* ;" in rows[i]["_message"]


def test_a_kernel_that_compiles_for_another_backend_only_fails_its_units_there(tmp_path):
    """fail_units also covers the build made at launch, when the executor's backend is not the one packaged for."""
    spec = xm_local.VectorEngineSpec(backend="host", build_dir=str(tmp_path / "b"), on_build_error="fail_units")
    [good] = xm_local.LocalExperiment.package([kernel(spec, "divide")])
    good.libraries.clear()  # As if packaging had built another backend's library.
    good.sources = {"kernels": BROKEN}
    with failing(2), xm_local.create_experiment() as experiment:
        experiment.add_sweep(xm.Job(good, executor(), args={"a": 8}), [{"b": 2}, {"b": 4}])
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in (1, 2)] == ["failed", "failed"]
    assert "did not compile" in rows[1]["_message"] and "return n +* ;" in rows[1]["_message"]


@pytest.mark.parametrize("contexts", [1, 2])
def test_a_crashing_kernel_fails_its_unit_and_the_others_go_on(spec, contexts):
    with failing(1), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "crash")])
        experiment.add_sweep(xm.Job(exe, executor(contexts=contexts)), [{"how": h} for h in (0, 0, 1, 0, 0)])
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in range(1, 6)] == ["completed", "completed", "failed", "completed", "completed"]
    assert "SIGSEGV" in rows[3]["_message"]
    assert all(rows[i]["return"] == 7 for i in (1, 2, 4, 5))
    with open(os.path.join(units(experiment)[2].launched_jobs[0].logs)) as handle:
        assert "SIGSEGV" in handle.read()


def test_a_kernel_exception_fails_its_unit_and_the_others_go_on(spec):
    with failing(1), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "divide")])
        experiment.add_sweep(xm.Job(exe, executor(), args={"a": 10}), [{"b": 2}, {"b": 0}, {"b": 5}])
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in (1, 2, 3)] == ["completed", "failed", "completed"]
    assert "VE exception" in rows[2]["_message"] and "SIGFPE" in rows[2]["_message"]
    assert (rows[1]["return"], rows[3]["return"]) == (5, 2)


@pytest.mark.parametrize("contexts", [1, 2])
def test_a_kernel_that_never_returns_times_out_and_the_others_go_on(spec, contexts):
    with failing(1), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "spin")])
        job = xm.Job(exe, executor(timeout=1.0, contexts=contexts))
        experiment.add_sweep(job, [{"forever": f} for f in (0, 1, 0, 0)])
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in range(1, 5)] == ["completed", "failed", "completed", "completed"]
    assert "timed out after 1 s" in rows[2]["_message"]


def test_stopping_a_queued_unit_cancels_it_and_the_rest_run(spec):
    with failing(1), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "spin")])
        job = xm.Job(exe, executor(timeout=3.0))  # One context: the spinning unit holds it until its timeout.
        futures = experiment.add_sweep(job, [{"forever": 1}, {"forever": 0}, {"forever": 0}])
        futures[2].result().stop()
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in (1, 2, 3)] == ["failed", "completed", "cancelled"]
    assert "timed out" in rows[1]["_message"]


def test_auto_runs_on_the_host_without_a_vector_engine(tmp_path):
    from xmanager.executors.vector_engine import veo_api

    if veo_api.backends_available()["veo"] is None:
        pytest.skip("a Vector Engine answers here, so auto would pick veo")
    spec = xm_local.VectorEngineSpec(build_dir=str(tmp_path / "b"))  # backend="auto"
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "divide")])
        experiment.add(xm.Job(exe, xm_local.VectorEngine(), args={"a": 9, "b": 2}))
    [unit] = units(experiment)
    assert unit.results == {"return": 4}


def test_the_same_sweep_on_a_real_vector_engine(tmp_path):
    from xmanager.executors.vector_engine import veo_api

    why = veo_api.backends_available()["veo"]
    if why is not None:
        pytest.skip(f"no usable Vector Engine: {why}")
    spec = xm_local.VectorEngineSpec(backend="veo", build_dir=str(tmp_path / "b"))
    data = np.arange(4.0)
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "scale")])
        job = xm.Job(exe, xm_local.VectorEngine(backend="veo"), args={"x": xm.VeBuffer(data, intent="inout"), "n": 4})
        experiment.add_sweep(job, [{"alpha": 2.0}, {"alpha": 3.0}])
    assert [unit.results["x"] for unit in units(experiment)] == [(data * 2).tolist(), (data * 3).tolist()]


def test_in_process_mode_times_out_a_call_and_goes_on_with_a_fresh_context(spec):
    with failing(1), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "nap")])
        job = xm.Job(exe, executor(isolated=False, timeout=0.5))
        experiment.add_sweep(job, [{"ms": 1}, {"ms": 1500}, {"ms": 2}])
    rows = units_by_id(experiment)
    assert [rows[i]["_status"] for i in (1, 2, 3)] == ["completed", "failed", "completed"]
    assert "timed out after 0.5 s; it runs on in the launcher's process" in rows[2]["_message"]
    assert rows[3]["return"] == 2


FORTRAN = """
subroutine saxpy(y, x, n, a) bind(c, name="saxpy")
  use iso_c_binding
  integer(c_int), value :: n
  real(c_double), value :: a
  real(c_double), intent(in) :: x(n)
  real(c_double), intent(inout) :: y(n)
  y = y + a * x
end subroutine saxpy
"""


@pytest.mark.skipif(shutil.which("gfortran") is None, reason="Fortran kernels are compiled with gfortran")
def test_a_fortran_kernel(spec):
    packageable = xm.ve_kernel(
        spec, "saxpy", ("y: double *", "x: double *", "n: int", "a: double"), {"saxpy": FORTRAN},
        language="fortran", ret_type="void",
    )
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([packageable])
        args = {"y": xm.VeBuffer(np.ones(3), intent="inout"), "x": xm.VeBuffer(np.arange(3.0)), "n": 3, "a": 2.0}
        experiment.add(xm.Job(exe, executor(), args=args))
    [unit] = units(experiment)
    assert unit.results == {"y": [1.0, 3.0, 5.0]}


def test_an_out_buffer_starts_zeroed_even_when_its_device_memory_is_reused(spec):
    with xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "fill")])
        job = xm.Job(exe, executor(), args={"y": xm.VeBuffer(np.full(4, 9.0), intent="out")})
        experiment.add_sweep(job, [{"n": 4, "v": 5.0}, {"n": 2, "v": 7.0}, {"n": 0, "v": 1.0}])
    assert [unit.results["y"] for unit in units(experiment)] == [[5.0] * 4, [7.0, 7.0, 0.0, 0.0], [0.0] * 4]


def test_a_stack_buffer_over_the_ve_stack_limit_fails_its_unit(spec):
    big = np.ones(512 * 1024)  # 4 MiB: more than the VE's 2 MiB stack.
    with failing(1), xm_local.create_experiment() as experiment:
        [exe] = experiment.package([kernel(spec, "stack_sum")])
        experiment.add(xm.Job(exe, executor(), args={"x": xm.VeBuffer(big, placement="stack"), "n": big.size}))
        experiment.add(xm.Job(exe, executor(), args={"x": xm.VeBuffer(big[:4], placement="stack"), "n": 4}))
    rows = units_by_id(experiment)
    assert rows[1]["_status"] == "failed" and "stack" in rows[1]["_message"].lower()
    assert rows[2]["return"] == 4.0
