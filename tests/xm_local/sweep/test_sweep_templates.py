"""File templates (jinja and dollar modes) and machine definitions."""

from __future__ import annotations

import pickle

import jinja2
import pytest
from xmanager.xm_local.sweep.templates import FileTemplate, Machine, gather_calc_templates, gather_machines

PSET = {"a": 1, "b": "x", "_pset_id": "id-1"}


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_jinja_fill_drops_one_trailing_newline_as_psweep_and_is_strict(tmp_path):
    template = FileTemplate(_write(tmp_path / "t.txt", "a={{a}} b={{ b }} id={{_pset_id}}\n"))
    assert template.fill(PSET) == "a=1 b=x id=id-1"
    assert template.fill(PSET, mode="jinja") == "a=1 b=x id=id-1"
    assert FileTemplate(_write(tmp_path / "u.txt", "x\n\n")).fill(PSET) == "x\n"
    with pytest.raises(jinja2.exceptions.UndefinedError, match="'b' is undefined"):
        template.fill({"a": 1, "_pset_id": "i"})


def test_dollar_fill_and_missing_key(tmp_path):
    template = FileTemplate(_write(tmp_path / "t.sh", "echo $a ${b}s $$HOME $_pset_id\n"))
    assert template.fill(PSET, mode="dollar") == "echo 1 xs $HOME id-1\n"
    with pytest.raises(KeyError, match="'b'"):
        template.fill({"a": 1, "_pset_id": "i"}, mode="dollar")


def test_unknown_mode(tmp_path):
    template = FileTemplate(_write(tmp_path / "t", "x"))
    with pytest.raises(ValueError, match="template_mode"):
        template.fill(PSET, mode="mako")


def test_names_and_pickling(tmp_path):
    template = FileTemplate(_write(tmp_path / "m" / "jobscript", "{{a}}"), target_suffix="_cluster")
    assert (template.basename, template.dirname, template.targetname) == (
        "jobscript",
        str(tmp_path / "m"),
        "jobscript_cluster",
    )
    assert template.fill(PSET) == "1"  # compiles and caches a jinja template
    copy = pickle.loads(pickle.dumps(template))
    assert copy.fill({"a": 2}) == "2"


def _machine_dir(tmp_path, name="cluster", info="subcmd: sbatch\nqueue: short\n", jobscript="#SBATCH -J $_pset_id\n"):
    folder = tmp_path / "machines" / name
    _write(folder / "jobscript", jobscript)
    if info is not None:
        _write(folder / "info.yaml", info)
    return str(folder)


def test_machine_reads_info_yaml(tmp_path):
    machine = Machine(_machine_dir(tmp_path))
    assert machine.name == "cluster"
    assert machine.subcmd == "sbatch"
    assert machine.queue == "short"
    assert machine.template.targetname == "jobscript_cluster"
    assert machine.template.fill(PSET, mode="dollar") == "#SBATCH -J id-1\n"


@pytest.mark.parametrize(
    ("info", "error", "message"),
    [
        (None, FileNotFoundError, "info.yaml"),
        ("queue: short\n", ValueError, "missing 'subcmd'"),
        ("subcmd: [sbatch\n", ValueError, "invalid YAML"),
        ("- sbatch\n", ValueError, "expected a YAML mapping"),
        ("", ValueError, "expected a YAML mapping"),
        ("subcmd: sh\ntemplate: x\n", ValueError, "reserved"),
    ],
)
def test_machine_errors_name_the_file(tmp_path, info, error, message):
    folder = _machine_dir(tmp_path, info=info)
    with pytest.raises(error, match=message) as caught:
        Machine(folder)
    assert "info.yaml" in str(caught.value)


def test_machine_without_jobscript(tmp_path):
    folder = tmp_path / "machines" / "local"
    _write(folder / "info.yaml", "subcmd: sh\n")
    with pytest.raises(FileNotFoundError, match="jobscript"):
        Machine(str(folder))


def test_gather_calc_templates_recurses_with_relative_targets(tmp_path):
    root = tmp_path / "calc"
    _write(root / "run.py", "a")
    _write(root / "input" / "params.txt", "b")
    _write(root / "input" / "deep" / "more.txt", "c")
    _write(root / "__pycache__" / "run.cpython-311.pyc", "\x00")
    templates = gather_calc_templates(str(root))
    assert [template.targetname for template in templates] == [
        "run.py",
        "input/params.txt",
        "input/deep/more.txt",
    ]
    assert templates[1].filename == str(root / "input" / "params.txt")
    with pytest.raises(FileNotFoundError, match="no calc template folder"):
        gather_calc_templates(str(tmp_path / "nope"))


def test_gather_machines_sorted_folders_only(tmp_path):
    _machine_dir(tmp_path, "zeta", info="subcmd: sh\n")
    _machine_dir(tmp_path, "alpha")
    _write(tmp_path / "machines" / "README", "not a machine")
    machines = gather_machines(str(tmp_path / "machines"))
    assert [(machine.name, machine.subcmd) for machine in machines] == [("alpha", "sbatch"), ("zeta", "sh")]
