"""run(dask_client=...) with a real dask.distributed client (threads, in this process's cluster)."""

import pytest
from xmanager.xm_local import sweep as ps

distributed = pytest.importorskip("distributed", reason="dask[distributed] is installed by setup_scripts/test.sh")


def _square(pset):
    return {"square_": pset["a"] ** 2}


def test_run_with_a_dask_client(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        df = ps.run(_square, ps.plist("a", range(8)), dask_client=client)
    assert df["square_"].tolist() == [a * a for a in range(8)]
    assert df["_pset_seq"].tolist() == list(range(8))
    assert ps.df_read("calc/database.pk").equals(df)


def test_dask_client_and_poolsize_together_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="poolsize or dask_client"):
        ps.run(_square, ps.plist("a", [1]), poolsize=2, dask_client=object())
    assert not (tmp_path / "calc").exists()
