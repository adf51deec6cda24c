"""Type checkers see the public entry points with their real types, and every package is marked typed."""

import ast
import importlib
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TYPECHECK = REPO / "setup_scripts" / "typecheck.py"

LAUNCH_SCRIPT = """\
from xmanager import xm, xm_local

with xm_local.create_experiment(experiment_title="typed", tags=["example"]) as experiment:
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path="/bin/true")])
    experiment.{method}(xm.Job(executable=executable, executor=xm_local.Local()), [{{"seed": 1}}, {{"seed": 2}}])
for unit in experiment.work_units.values():
    print(unit.work_unit_id, unit.get_status().message)
"""


@pytest.fixture(scope="module")
def mypy_on(tmp_path_factory):
    """Runs mypy (through setup_scripts/typecheck.py) on a launch script; returns (exit status, output)."""
    folder = tmp_path_factory.mktemp("typing")

    def run(source: str) -> tuple[int, str]:
        path = folder / "launch.py"
        path.write_text(source)
        # Errors in the script only: the packages it imports are checked in CI on their own.
        args = ["--follow-imports=silent", "--cache-dir", str(folder / "cache"), str(path)]
        done = subprocess.run([sys.executable, str(TYPECHECK), *args], capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr

    return run


def test_a_misspelt_experiment_method_is_a_type_error(mypy_on):
    status, output = mypy_on(LAUNCH_SCRIPT.format(method="add_sweeep"))
    assert status == 1, output
    assert 'launch.py:5: error: "LocalExperiment" has no attribute "add_sweeep"  [attr-defined]' in output, output
    assert "Found 1 error in 1 file" in output, output


def test_a_correct_launch_script_type_checks(mypy_on):
    status, output = mypy_on(LAUNCH_SCRIPT.format(method="add_sweep"))
    assert status == 0, output
    assert "Success: no issues found in 1 source file" in output, output


def _type_checking_names() -> dict[str, tuple[str, str]]:
    """What ``xm_local``'s ``if TYPE_CHECKING:`` block binds: name -> (module, attribute)."""
    tree = ast.parse((REPO / "xm_local" / "__init__.py").read_text())
    [block] = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    imported: dict[str, tuple[str, str]] = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module or "", alias.name)
        elif isinstance(node, ast.Assign):  # Caip = Vertex
            [target] = node.targets
            assert isinstance(target, ast.Name) and isinstance(node.value, ast.Name)
            imported[target.id] = imported[node.value.id]
    return imported


def test_type_checkers_see_what_xm_local_gives_at_run_time():
    from xmanager import xm_local

    seen = _type_checking_names()
    assert sorted(seen) == sorted(xm_local.__all__)  # Every control-plane name and plugin export, no other.
    for name, (module, attribute) in seen.items():
        value = getattr(importlib.import_module(module), attribute, None)
        if value is None:  # A submodule (auth).
            value = importlib.import_module(f"{module}.{attribute}")
        assert getattr(xm_local, name) is value, name


def test_every_package_is_marked_typed():
    roots = runpy.run_path(str(REPO / "setup.py"))["ROOTS"]
    assert not [folder for folder in roots.values() if not (REPO / folder / "py.typed").is_file()]
