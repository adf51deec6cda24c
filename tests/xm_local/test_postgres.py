"""The whole local data path on a real PostgreSQL server (tests/support/postgres_support.py).

The store's own tests run on PostgreSQL too (tests/xm_local/test_store.py); these go end to end:
a launch through the CLI, a sweep resumed from another process, and reads from a third.
"""

import os
import subprocess
import sys
import textwrap

import pytest
from xmanager import xm, xm_local

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")

JOB = """
import sys
from xmanager import xm
flags = dict(a[2:].split('=') for a in sys.argv[1:])
product = int(flags['a']) * int(flags['b'])
if flags.get('fail_six') == '1' and product == 6:
    sys.exit(4)
xm.report(product=product)
"""


@pytest.fixture
def pg(postgres_url, monkeypatch):
    monkeypatch.setenv("XM_DATABASE_URL", postgres_url)
    return postgres_url


def _run(*argv, cwd=None):
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=os.environ, timeout=120)


def test_launch_sweep_resume_and_read_back_on_postgres(pg, script, tmp_path):
    job = script(JOB)
    launcher = tmp_path / "launcher.py"
    launcher.write_text(
        textwrap.dedent(
            f"""
            from absl import flags
            from xmanager import xm, xm_local
            _FAIL = flags.DEFINE_integer("fail_six", 0, "fail the pset whose product is 6")

            def main(argv):
                params = xm.pgrid(xm.plist("a", [1, 2]), xm.plist("b", [2, 3]))
                with xm_local.create_experiment("pg-sweep", tags=["pg"]) as experiment:
                    print("EXPERIMENT", experiment.experiment_id, flush=True)
                    [exe] = experiment.package([xm.binary(xm_local.Local.Spec(), {job!r})])
                    experiment.add_sweep(xm.Job(exe, xm_local.Local(), args={{"fail_six": _FAIL.value}}), params)
            """
        )
    )
    result = _run(XMANAGER, "launch", str(launcher), "--", "--fail_six=1")
    assert result.returncode == 1, result.stderr
    experiment_id = int(next(line for line in result.stdout.splitlines() if line.startswith("EXPERIMENT")).split()[1])

    listing = _run(XMANAGER, "list")
    assert listing.returncode == 0, listing.stderr
    assert "pg-sweep" in listing.stdout and "3 completed" in listing.stdout and "1 failed" in listing.stdout

    # A second process re-opens the experiment from PostgreSQL and resumes the sweep.
    with xm_local.get_experiment(experiment_id) as experiment:
        [exe] = experiment.package([xm.binary(xm_local.Local.Spec(), job)])
        params = xm.pgrid(xm.plist("a", [1, 2]), xm.plist("b", [2, 3]))
        added = experiment.add_sweep(xm.Job(exe, xm_local.Local(), args={"fail_six": 0}), params, skip_completed=True)
    assert len(added) == 1

    frame = xm_local.get_experiment(experiment_id).to_dataframe().sort_values("_work_unit_id")
    assert frame["_status"].tolist() == ["completed", "completed", "completed", "failed", "completed"]
    assert frame["product"].dropna().astype(int).tolist() == [2, 3, 4, 6]
    assert [e.experiment_id for e in xm_local.list_experiments()] == [experiment_id]

    show = _run(XMANAGER, "show", str(experiment_id))
    assert show.returncode == 0, show.stderr
    assert "failed" in show.stdout and "completed" in show.stdout


def test_unreachable_postgres_is_one_clear_error(monkeypatch, postgres_server):
    url = f"postgresql://xm:secret@127.0.0.1:{postgres_server.port + 1 if postgres_server.port < 65535 else 1}/nope"
    with pytest.raises(xm_local.StoreError) as failure:
        xm_local.create_experiment("x", database_url=url)
    message = str(failure.value)
    assert "cannot open database" in message and "secret" not in message and "***" in message


def test_psweep_style_runs_are_recorded_on_postgres(pg, tmp_path):
    from xmanager.xm_local import sweep as ps

    def func(pset):
        return {"r": pset["a"] * pset["b"]}

    # 600 psets: at 500 and more a forked child records the run while the database file is written.
    big = ps.run(func, ps.pgrid([ps.plist("a", range(6)), ps.plist("b", range(100))]), calc_dir=str(tmp_path / "big"))
    small = ps.run(func, ps.pgrid([ps.plist("a", range(2)), ps.plist("b", range(3))]), calc_dir=str(tmp_path / "small"))
    ps.wait_recorded()
    by_size = {e.work_unit_count: e.experiment_id for e in xm_local.list_experiments()}
    assert sorted(by_size) == [6, 600]
    frame = xm_local.get_experiment(by_size[600]).to_dataframe()
    assert sorted(frame["_pset_hash"]) == sorted(big["_pset_hash"])
    assert sorted(xm_local.get_experiment(by_size[6]).to_dataframe()["r"]) == sorted(small["r"])
