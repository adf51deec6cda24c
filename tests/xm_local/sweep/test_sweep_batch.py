"""prep_batch end to end with the example templates (examples/sweep_batch_templates)."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pandas as pd
import pytest
from xmanager.xm_local import sweep as ps
from xmanager.xm_local.sweep.gitops import GitError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sweep_batch_templates"
CALC_FILES = {"run.py", "pset.pk", "jobscript_local", "jobscript_cluster"}


@pytest.fixture
def study(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    shutil.copytree(EXAMPLE / "templates", folder / "templates")
    monkeypatch.chdir(folder)
    return folder


def _params(values):
    return ps.pgrid([ps.plist("a", values), ps.plist("b", ["x"])])


def _script_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _expected_line(row, subcmd: str, machine: str, commented: bool) -> str:
    line = f"cd $here/{row['_pset_id']}; {subcmd} jobscript_{machine}  # run_seq={row['_run_seq']} pset_seq={row['_pset_seq']}"
    return f"# {line}" if commented else line


def _pset_dirs(calc: Path) -> set[str]:
    """The per-pset folders (hidden book-keeping folders such as the run journal left out)."""
    if not calc.exists():
        return set()
    return {entry.name for entry in calc.iterdir() if entry.is_dir() and not entry.name.startswith(".")}


def test_renders_every_pset_and_writes_run_scripts(study):
    df = ps.prep_batch(_params([1, 2]), template_mode="dollar", write_pset=True)
    assert len(df) == 2
    calc = study / "calc"
    assert _pset_dirs(calc) == set(df["_pset_id"])
    for row in df.to_dict("records"):
        folder = calc / row["_pset_id"]
        assert {entry.name for entry in folder.iterdir()} == CALC_FILES
        assert f'a, b = int("{row["a"]}"), "x"' in (folder / "run.py").read_text()
        assert f"#SBATCH --job-name={row['_pset_id']}\n" in (folder / "jobscript_cluster").read_text()
        assert (folder / "jobscript_local").read_text().startswith(f"#!/bin/sh\n# pset {row['_pset_id']} on")
        pset = pickle.loads((folder / "pset.pk").read_bytes())
        assert (pset["a"], pset["b"], pset["_pset_id"], pset["_calc_dir"]) == (row["a"], "x", row["_pset_id"], "calc")
        assert isinstance(pset["_time_utc"], pd.Timestamp)  # as in the database, not run()'s epoch seconds
    rows = df.to_dict("records")
    for machine, subcmd in (("local", "sh"), ("cluster", "sbatch")):
        script = calc / f"run_{machine}.sh"
        assert _script_lines(script) == [
            "#!/bin/sh",
            "here=$(readlink -f $(dirname $0))",
            *(_expected_line(row, subcmd, machine, commented=False) for row in rows),
        ]
        assert os.access(script, os.X_OK)
    assert ps.df_read(str(calc / "database.pk")).equals(df)


def test_second_call_comments_out_earlier_runs(study):
    first = ps.prep_batch(_params([1, 2]), template_mode="dollar", write_pset=True)
    df = ps.prep_batch(_params([3]), template_mode="dollar", write_pset=True)
    assert len(df) == 3
    assert df["_run_seq"].tolist() == [0, 0, 1]
    assert df["_pset_seq"].tolist() == [0, 1, 2]
    assert _pset_dirs(study / "calc") == set(df["_pset_id"])
    assert df["_pset_id"].iloc[:2].tolist() == first["_pset_id"].tolist()
    rows = df.to_dict("records")
    assert _script_lines(study / "calc" / "run_cluster.sh")[2:] == [
        _expected_line(rows[0], "sbatch", "cluster", commented=True),
        _expected_line(rows[1], "sbatch", "cluster", commented=True),
        _expected_line(rows[2], "sbatch", "cluster", commented=False),
    ]
    assert _script_lines(study / "calc" / "run_local.sh")[-1].startswith(f"cd $here/{rows[2]['_pset_id']}; sh ")


def test_nothing_new_with_skip_dups_leaves_every_line_commented(study):
    ps.prep_batch(_params([1, 2]), template_mode="dollar")
    df = ps.prep_batch(_params([1, 2]), template_mode="dollar", skip_dups=True)
    assert len(df) == 2
    lines = _script_lines(study / "calc" / "run_local.sh")[2:]
    assert len(lines) == 2
    assert all(line.startswith("# cd $here/") for line in lines)


def test_run_local_script_runs_the_jobs(study, tmp_path):
    df = ps.prep_batch(_params([1, 2]), template_mode="dollar", write_pset=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"  # pset.pk needs pandas: the jobs use this interpreter (and its venv)
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["sh", "calc/run_local.sh"], check=True, env=env)
    for row in df.to_dict("records"):
        folder = study / "calc" / row["_pset_id"]
        assert (folder / "out.log").read_text() == f"a={row['a']} b=x\n"
        assert ps.json_read(str(folder / "out.json")) == {"result_": row["a"] * 10, "b": "x"}


def test_simulate_renders_only_new_psets_into_simulate_dir(study):
    old = ps.prep_batch(_params([1, 2]), template_mode="dollar", write_pset=True)
    before = (study / "calc" / "run_local.sh").read_text()
    df = ps.prep_batch(_params([3, 4]), template_mode="dollar", write_pset=True, simulate=True)
    assert len(df) == 4
    new_ids = set(df["_pset_id"]) - set(old["_pset_id"])
    assert len(new_ids) == 2
    simulate = study / "calc.simulate"
    assert _pset_dirs(simulate) == new_ids
    for pset_id in new_ids:
        assert {entry.name for entry in (simulate / pset_id).iterdir()} == CALC_FILES
        pset = pickle.loads((simulate / pset_id / "pset.pk").read_bytes())
        assert pset["_calc_dir"] == "calc.simulate"
        assert "_pset_runtime" not in pset
        assert isinstance(pset["_time_utc"], pd.Timestamp)
    lines = _script_lines(simulate / "run_cluster.sh")[2:]
    assert [line.startswith("# ") for line in lines] == [True, True, False, False]
    # The real study is untouched.
    assert _pset_dirs(study / "calc") == set(old["_pset_id"])
    assert (study / "calc" / "run_local.sh").read_text() == before
    assert ps.df_read(str(study / "calc" / "database.pk")).equals(old)


def test_jinja_mode_custom_calc_dir_and_pool(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t" / "calc" / "in").mkdir(parents=True)
    (tmp_path / "t" / "calc" / "in" / "params.txt").write_text("a={{a}} seq={{_pset_seq}}\n")
    (tmp_path / "t" / "machines" / "box").mkdir(parents=True)
    (tmp_path / "t" / "machines" / "box" / "jobscript").write_text("run {{_pset_id}}\n")
    (tmp_path / "t" / "machines" / "box" / "info.yaml").write_text("subcmd: bash\n")
    df = ps.prep_batch(
        ps.plist("a", [1, 2, 3]),
        calc_templ_dir="t/calc",
        machine_templ_dir="t/machines",
        calc_dir="out",
        poolsize=2,
    )
    for row in df.to_dict("records"):
        folder = tmp_path / "out" / row["_pset_id"]
        assert (folder / "in" / "params.txt").read_text() == f"a={row['a']} seq={row['_pset_seq']}"  # jinja drops the last newline
        assert (folder / "jobscript_box").read_text() == f"run {row['_pset_id']}"
        assert not (folder / "pset.pk").exists()
    assert _script_lines(tmp_path / "out" / "run_box.sh")[2].endswith("; bash jobscript_box  # run_seq=0 pset_seq=0")


def test_missing_template_value_raises(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates" / "calc").mkdir(parents=True)
    (tmp_path / "templates" / "calc" / "run.sh").write_text("{{nope}}\n")
    (tmp_path / "templates" / "machines").mkdir()
    with pytest.raises(jinja2.exceptions.UndefinedError) as caught:
        ps.prep_batch(ps.plist("a", [1]))
    assert any("run.sh" in note for note in caught.value.__notes__)
    (tmp_path / "templates" / "calc" / "run.sh").write_text("$nope\n")
    with pytest.raises(KeyError, match="nope"):
        ps.prep_batch(ps.plist("a", [1]), template_mode="dollar")
    with pytest.raises(ValueError, match="template_mode"):
        ps.prep_batch(ps.plist("a", [1]), template_mode="mustache")


def test_target_collision_is_refused_before_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates" / "calc").mkdir(parents=True)
    (tmp_path / "templates" / "calc" / "pset.pk").write_text("x")
    (tmp_path / "templates" / "machines").mkdir()
    with pytest.raises(ValueError, match="pset.pk"):
        ps.prep_batch(ps.plist("a", [1]), write_pset=True)
    assert not (tmp_path / "calc").exists()



def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def test_git_commits_the_prepared_study(study, git_env):
    _git("init", "-q")
    _git("add", "-A")
    _git("commit", "-q", "-m", "templates")
    df = ps.prep_batch(_params([1]), template_mode="dollar", git=True)
    assert _git("log", "-1", "--format=%s").strip() == f"psweep: study: run_id={df['_run_id'].iloc[-1]}"
    assert _git("status", "--porcelain") == ""
    committed = _git("show", "--name-only", "--format=", "HEAD").split()
    assert "calc/run_cluster.sh" in committed
    assert f"calc/{df['_pset_id'].iloc[0]}/run.py" in committed


def test_git_refuses_a_dirty_tree_before_rendering(study, git_env):
    _git("init", "-q")
    _git("add", "-A")
    _git("commit", "-q", "-m", "templates")
    (study / "notes.txt").write_text("uncommitted")
    with pytest.raises(GitError, match="dirty repo"):
        ps.prep_batch(_params([1]), template_mode="dollar", git=True)
    assert not (study / "calc").exists()
