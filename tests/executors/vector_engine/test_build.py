"""The kernel builder: per-backend compilers, content-hash caching, clear compile errors."""

from __future__ import annotations

import ctypes
import os
import shutil
import threading

import pytest
from xmanager.executors.vector_engine import build
from xmanager.executors.vector_engine.build import BuildError, VeBuild, build_library

ADD = "int add_one(int x)\n{\n    return x + 1;\n}\n"


def _call_int(path: str, name: str, *args: int) -> int:
    function = ctypes.CDLL(path)[name]
    function.restype = ctypes.c_int
    return function(*args)


def test_builds_a_c_library_and_caches_it_by_content(tmp_path):
    path = build_library({"adder": ADD}, build_dir=str(tmp_path))
    assert os.path.isabs(path) and path.endswith("/adder.so")
    assert _call_int(path, "add_one", 41) == 42
    inode = os.stat(path).st_ino
    assert build_library({"adder": ADD}, build_dir=str(tmp_path)) == path
    assert os.stat(path).st_ino == inode
    assert not [name for name in os.listdir(path.rsplit("/", 2)[0]) if name.startswith(".build-")]


def test_changed_source_flags_or_libs_give_a_new_library(tmp_path):
    base = build_library({"adder": ADD}, build_dir=str(tmp_path))
    other_source = build_library({"adder": ADD.replace("x + 1", "x + 2")}, build_dir=str(tmp_path))
    other_flags = build_library({"adder": ADD}, flags="-O0 -fPIC", build_dir=str(tmp_path))
    other_libs = build_library({"adder": ADD}, libs=["-lm"], build_dir=str(tmp_path))
    assert len({base, other_source, other_flags, other_libs}) == 4
    assert _call_int(other_source, "add_one", 1) == 3


def test_host_ignores_nec_pragmas(tmp_path):
    source = "int twice(int x)\n{\n#pragma _NEC vector\n    return 2 * x;\n}\n"
    assert _call_int(build_library({"prag": source}, build_dir=str(tmp_path)), "twice", 4) == 8


def test_cpp_and_fortran(tmp_path):
    cpp = 'extern "C" int count_vec(int n) { return (int)std::vector<int>(n).size(); }\n'
    path = build_library({"vec": "#include <vector>\n" + cpp}, language="c++", build_dir=str(tmp_path))
    assert _call_int(path, "count_vec", 5) == 5
    ftn = (
        "function twice(x) result(y) bind(c, name='ftn_twice')\n"
        "  use iso_c_binding, only: c_int\n"
        "  integer(c_int), value :: x\n"
        "  integer(c_int) :: y\n"
        "  y = 2 * x\n"
        "end function\n"
    )
    assert _call_int(build_library({"tw": ftn}, language="fortran", build_dir=str(tmp_path)), "ftn_twice", 21) == 42


def test_source_can_be_a_file_path(tmp_path):
    source = tmp_path / "adder.c"
    source.write_text(ADD)
    path = build_library({"fromfile": str(source)}, build_dir=str(tmp_path / "out"))
    assert _call_int(path, "add_one", 1) == 2


def test_compile_error_shows_the_compiler_message_and_source_line(tmp_path):
    broken = "int f(int x)\n{\n    return x + ;\n}\n"
    with pytest.raises(BuildError) as caught:
        build_library({"broken": broken}, build_dir=str(tmp_path))
    text = str(caught.value)
    assert "broken.c:3:" in text
    assert "broken.c:3: return x + ;" in text
    assert "error" in caught.value.compiler_output
    assert isinstance(caught.value, RuntimeError)
    assert caught.value.command[0].endswith("gcc")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".build-")]  # the failed build is gone


def test_fortran_compile_error_names_the_line(tmp_path):
    broken = "subroutine s(x)\n  real :: x\n  x = = 1.0\nend subroutine\n"
    with pytest.raises(BuildError, match=r"bad\.f90:3: x = = 1\.0"):
        build_library({"bad": broken}, language="fortran", build_dir=str(tmp_path))


def test_link_error_is_a_build_error(tmp_path):
    with pytest.raises(BuildError, match="no_such_library_xyz"):
        build_library({"adder": ADD}, libs=["-lno_such_library_xyz"], build_dir=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sources": {}}, "non-empty mapping"),
        ({"sources": {"a": ADD}, "language": "rust"}, "language must be one of"),
        ({"sources": {"a": ADD}, "backend": "gpu"}, "backend must be one of"),
        ({"sources": {"../evil": ADD}}, "label '../evil'"),
        ({"sources": {"a": 42}}, r"sources\['a'\]"),
        ({"sources": {"a": "   "}}, "empty"),
        ({"sources": {"a": ADD}, "flags": 3}, "flags"),
        ({"sources": {"a": ADD}, "libs": "-lm"}, "libs"),
    ],
)
def test_bad_input_names_the_argument(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_library(build_dir=str(tmp_path), **kwargs)


def test_veo_backend_needs_the_nec_compiler(tmp_path):
    if shutil.which(build.COMPILERS["veo"]["c"]):
        pytest.skip("the NEC compiler is installed here")
    with pytest.raises(BuildError, match="ncc.*not found.*NEC SDK"):
        build_library({"a": ADD}, backend="veo", build_dir=str(tmp_path))


def test_concurrent_builds_of_one_kernel_agree(tmp_path):
    source = ADD.replace("x + 1", "x + 7")
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(build_library({"same": source}, build_dir=str(tmp_path)))
        except BaseException as error:  # Collected and asserted below.
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert _call_int(results[0], "add_one", 0) == 7
    assert [name for name in os.listdir(tmp_path) if not name.startswith(".")] == [results[0].split("/")[-2]]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".build-")]


def test_vebuild_mixes_languages_into_one_library(tmp_path):
    bld = VeBuild(build_dir=str(tmp_path))
    bld.set_c_src("cpart", "int c_side(int x) { return x * 3; }\n")
    bld.set_ftn_src(
        "fpart",
        "function f_side(x) result(y) bind(c, name='f_side')\n"
        "  use iso_c_binding, only: c_int\n  integer(c_int), value :: x\n  integer(c_int) :: y\n"
        "  y = x - 1\nend function\n",
    )
    path = bld.build_so(label="mixed", libs=["-lm"])
    assert path.endswith("/mixed.so")
    assert _call_int(path, "c_side", 5) == 15
    assert _call_int(path, "f_side", 5) == 4
    bld.realclean()
    assert not os.path.exists(path)
    bld.clear()
    with pytest.raises(ValueError, match="at least one source"):
        bld.build_so()


def test_default_build_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(build.BUILD_DIR_ENV, str(tmp_path / "cache"))
    assert build.default_build_dir() == str(tmp_path / "cache")
    monkeypatch.delenv(build.BUILD_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build.default_build_dir() == str(tmp_path / "xdg" / "xmanager" / "ve-build")


def test_a_label_with_an_extension_keeps_it(tmp_path):
    fixed_form = (
        "      INTEGER FUNCTION IDBL(I) BIND(C, NAME='idbl')\n"
        "      INTEGER, VALUE :: I\n"
        "      IDBL = 2 * I\n"
        "      END\n"
    )
    path = build_library({"legacy.f": fixed_form}, language="fortran", build_dir=str(tmp_path))
    assert path.endswith("/legacy.so")
    assert _call_int(path, "idbl", 8) == 16
    assert os.path.isfile(os.path.join(os.path.dirname(path), "legacy.f"))


def test_vebuild_per_source_flags_and_compiler(tmp_path):
    bld = VeBuild(build_dir=str(tmp_path))
    bld.set_c_src("defs", "int level(void) { return LEVEL; }\n", flags="-O1 -fPIC -DLEVEL=3", compiler="gcc")
    assert _call_int(bld.build_so(), "level") == 3
    bld.set_c_src("defs", "int level(void) { return LEVEL; }\n", flags="-O1 -fPIC -DLEVEL=4")
    assert _call_int(bld.build_so(), "level") == 4
    bld.set_c_src("defs", "int level(void) { return 0; }\n", compiler="no-such-cc")
    with pytest.raises(BuildError, match="'no-such-cc'.*not found"):
        bld.build_so()
