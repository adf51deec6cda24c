"""The VeKernel spec, xm.VeBuffer and how job args bind to a kernel's parameters (no compiler needed)."""

import numpy as np
import pytest
from xmanager import xm
from xmanager.executors.vector_engine.args import BindingError, bind
from xmanager.xm_local import VectorEngine, VectorEngineSpec

SRC = {"k": "int f(double *x, int n) { return n; }"}


def kernel(*args, **kwargs):
    return xm.VeKernel(entry="f", args=args, sources=SRC, **kwargs)


def test_args_parse_names_and_normalise_types():
    k = kernel("x: double*", "n:int", ("alpha", "unsigned   long"), "p: char **")
    assert k.args == (("x", "double *"), ("n", "int"), ("alpha", "unsigned long"), ("p", "char **"))
    assert k.arg_names == ("x", "n", "alpha", "p")
    assert k.name == "f"
    assert xm.VeKernel(entry="f", args="x: double *, n: int", sources=SRC).arg_types == ("double *", "int")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("x double *",), "'name: type'"),
        (("x: complex",), "unknown type 'complex'"),
        (("x: int", "x: long"), "declared twice"),
        (("2x: int",), "not a valid argument name"),
        (("x: void",), "unknown type"),
    ],
)
def test_bad_declarations_name_the_argument(args, message):
    with pytest.raises(ValueError, match=message) as info:
        kernel(*args)
    assert "VeKernel(args[" in str(info.value)


def test_kernel_needs_one_of_sources_or_library_and_a_symbol():
    with pytest.raises(ValueError, match="exactly one of sources"):
        xm.VeKernel(entry="f", args=())
    with pytest.raises(ValueError, match="exactly one of sources"):
        xm.VeKernel(entry="f", args=(), sources=SRC, library="/x.so")
    with pytest.raises(ValueError, match="not a C symbol"):
        xm.VeKernel(entry="f-g", args=(), sources=SRC)
    with pytest.raises(ValueError, match="language='cobol'"):
        kernel(language="cobol")
    with pytest.raises(ValueError, match="ret_type"):
        kernel(ret_type="complex")
    assert kernel(ret_type="void").ret_type == "void"


def test_ve_kernel_factory_makes_a_packageable():
    packageable = xm.ve_kernel(VectorEngineSpec(backend="host"), "f", ("x: double *",), SRC)
    assert isinstance(packageable.executable_spec, xm.VeKernel)
    assert packageable.executable_spec.args == (("x", "double *"),)
    assert isinstance(packageable.executor_spec, VectorEngineSpec)


def test_vebuffer_checks_its_fields_and_never_shares_the_callers_array():
    array = np.arange(3.0)
    buffer = xm.VeBuffer(array, intent="inout")
    copy = buffer.staging_copy()
    copy[:] = 7
    assert array.tolist() == [0.0, 1.0, 2.0]
    assert xm.VeBuffer(array, intent="out").staging_copy().tolist() == [0.0, 0.0, 0.0]
    assert "float64[3]" in str(buffer)
    with pytest.raises(ValueError, match="intent='sideways'"):
        xm.VeBuffer(array, intent="sideways")
    with pytest.raises(ValueError, match="placement='host'"):
        xm.VeBuffer(array, placement="host")
    with pytest.raises(TypeError, match="numpy array is needed"):
        xm.VeBuffer([1, 2, 3])


PARAMS = (("x", "double *"), ("n", "int"), ("alpha", "double"), ("u", "unsigned char"))


def test_bind_orders_and_converts_values():
    buffer = xm.VeBuffer(np.zeros(2))
    values = bind("f", PARAMS, {"alpha": 2, "u": np.uint8(255), "n": np.int64(5), "x": buffer})
    assert values[0] is buffer
    assert values[1:] == [5, 2.0, 255]
    assert isinstance(values[2], float)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 1, "alpha": 1.0, "u": 1}, "missing argument 'x'"),
        ({"x": None, "n": 1, "alpha": 1.0, "u": 1, "beta": 2}, "unexpected argument 'beta'"),
        ({"x": None, "n": "3", "alpha": 1.0, "u": 1}, "argument 'n' \\(int\\) needs an integer, got str"),
        ({"x": None, "n": 2.5, "alpha": 1.0, "u": 1}, "argument 'n' \\(int\\) needs an integer, got float"),
        ({"x": None, "n": 2**31, "alpha": 1.0, "u": 1}, "argument 'n'.*outside the type's range"),
        ({"x": None, "n": 1, "alpha": 1.0, "u": -1}, "argument 'u'.*outside the type's range \\[0, 255\\]"),
        ({"x": None, "n": 1, "alpha": "x", "u": 1}, "argument 'alpha' \\(double\\) needs a number"),
        ({"x": None, "n": True, "alpha": 1.0, "u": 1}, "argument 'n' \\(int\\) needs an integer, got bool"),
        ({"x": 0x1000, "n": 1, "alpha": 1.0, "u": 1}, "argument 'x' \\(double \\*\\) is a pointer; bind an xm"),
        ({"0": 1, "x": None, "n": 1, "alpha": 1.0, "u": 1}, "binds args by name"),
    ],
)
def test_bind_errors_name_the_argument(kwargs, message):
    kwargs = {k: (xm.VeBuffer(np.zeros(1)) if k == "x" and v is None else v) for k, v in kwargs.items()}
    with pytest.raises(BindingError, match=message):
        bind("f", PARAMS, kwargs)


def test_a_buffer_for_a_scalar_is_refused():
    with pytest.raises(BindingError, match="argument 'n' \\(int\\) is a scalar"):
        bind("f", (("n", "int"),), {"n": xm.VeBuffer(np.zeros(1))})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"node": -1}, "node=-1"),
        ({"backend": "gpu"}, "backend='gpu'"),
        ({"contexts": 0}, "contexts=0"),
        ({"timeout": 0}, "timeout=0"),
        ({"inline_results_bytes": 0}, "inline_results_bytes=0"),
    ],
)
def test_executor_fields_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VectorEngine(**kwargs)
    with pytest.raises(ValueError, match="on_build_error='ignore'"):
        VectorEngineSpec(on_build_error="ignore")
