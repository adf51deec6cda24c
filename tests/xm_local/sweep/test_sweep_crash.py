"""Crash safety: a sweep killed with SIGKILL mid-run loses no completed pset."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from xmanager.xm_local import sweep as ps

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from xmanager.xm_local import sweep as ps

    def func(pset):
        with open("calls.log", "a") as log:
            log.write(f"{pset['a']}\\n")
        if pset["a"] >= int(os.environ.get("SLOW_FROM", "1000000")):
            time.sleep(0.2)
        return {"double_": 2 * pset["a"]}

    params = ps.plist("a", range(40))
    df = ps.run(func, params, skip_dups=True)
    print("rows", len(df))
    """
)


def _calls(folder):
    with open(os.path.join(folder, "calls.log")) as log:
        return [int(line) for line in log.read().split()]


def _wait_for_calls(folder, count, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if os.path.exists(os.path.join(folder, "calls.log")) and len(_calls(folder)) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the sweep did not reach {count} calls")


@pytest.fixture
def study(tmp_path, monkeypatch):
    (tmp_path / "sweep.py").write_text(SCRIPT)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_killed_sweep_keeps_completed_psets_and_resume_runs_only_the_rest(study):
    env = {**os.environ, "SLOW_FROM": "10"}
    process = subprocess.Popen([sys.executable, "sweep.py"], cwd=study, env=env)
    _wait_for_calls(study, 12, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(study / "calc" / "database.pk")  # Killed before the end of the run.
    journals = os.listdir(study / "calc" / ".xm_journal")
    assert len(journals) == 1
    called_before = _calls(study)

    result = subprocess.run(
        [sys.executable, "sweep.py"], cwd=study, env={**os.environ}, capture_output=True, text=True, check=True
    )
    assert "recovered" in result.stderr and "completed pset(s)" in result.stderr
    assert "rows 40" in result.stdout
    df = ps.df_read(str(study / "calc" / "database.pk"))
    assert sorted(df["a"]) == list(range(40))
    assert df["_pset_seq"].tolist() == list(range(40)) == list(df.index)
    assert len(set(df["_pset_hash"])) == 40
    assert (df["double_"] == 2 * df["a"]).all()
    # Every pset that completed before the kill was recovered, not run again.
    called_after = _calls(study)[len(called_before) :]
    completed_before = set(called_before) - {called_before[-1]}  # The last one may have been mid-call.
    assert completed_before.isdisjoint(called_after)
    assert sorted(set(called_before) | set(called_after)) == list(range(40))
    assert not os.path.exists(study / "calc" / ".xm_journal")
    # The two runs are one experiment in the store, with every pset once.
    from xmanager import xm_local
    from xmanager.xm_local.sweep.record import study_tag

    [experiment] = xm_local.list_experiments(tag=study_tag("calc"))
    frame = experiment.to_dataframe()
    assert sorted(frame["a"]) == list(range(40))
    assert set(frame["_pset_id"]) == set(df["_pset_id"])
    assert set(frame["_status"]) == {"completed"}


def test_run_interrupted_by_an_exception_saves_what_completed(study):
    def func(pset):
        if pset["a"] == 5:
            raise RuntimeError("boom at 5")
        return {"double_": 2 * pset["a"]}

    with pytest.raises(RuntimeError, match="boom at 5") as failure:
        ps.run(func, ps.plist("a", range(10)))
    assert any("skip_dups=True" in note for note in getattr(failure.value, "__notes__", []))
    df = ps.df_read("calc/database.pk")
    assert df["a"].tolist() == [0, 1, 2, 3, 4]

    df = ps.run(lambda pset: {"double_": 2 * pset["a"]}, ps.plist("a", range(10)), skip_dups=True)
    assert df["a"].tolist() == list(range(10))
    assert df["_run_seq"].tolist() == [0] * 5 + [1] * 5


def test_a_live_runs_journal_is_not_taken_for_a_leftover(study):
    from xmanager.xm_local.sweep import journal

    live = journal.Journal(str(study / "calc"), "11111111-1111-4111-8111-111111111111")
    live.append({"a": 1})
    try:
        assert list(journal.leftovers(str(study / "calc"))) == []
    finally:
        live.close()
    assert [os.path.basename(path) for path in journal.leftovers(str(study / "calc"))] == [
        "11111111-1111-4111-8111-111111111111.pk"
    ]


def test_a_record_cut_short_is_dropped(tmp_path):
    from xmanager.xm_local.sweep import journal

    log = journal.Journal(str(tmp_path), "run")
    log.append({"a": 1, "b": "x"})
    log.append({"a": 2, "b": "y"})  # Same keys: stored as a tuple of values.
    log.close()
    end = os.path.getsize(log.path)
    with open(log.path, "ab") as handle:  # A third record cut short: its length says more than is there.
        handle.write((200).to_bytes(4, "little") + b"\x80\x05\x95 partial pickle")
    assert journal.read(log.path) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    with open(log.path, "r+b") as handle:  # A damaged record in the middle ends the journal there.
        handle.truncate(end)
        handle.seek(end)
        handle.write((3).to_bytes(4, "little") + b"xyz")
    assert journal.read(log.path) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_a_journal_with_epoch_seconds_is_recovered_as_timestamps(study):
    # Journals written before _time_utc became a Timestamp inside func hold epoch seconds.
    import pandas as pd
    from xmanager.xm_local.sweep import journal

    run_id = "22222222-2222-4222-8222-222222222222"
    old = journal.Journal(str(study / "calc"), run_id)
    row = {
        "a": 1, "_pset_hash": ps.pset_hash({"a": 1}), "_pset_id": "33333333-3333-4333-8333-333333333333",
        "_run_seq": 0, "_pset_seq": 0, "_run_id": run_id, "_calc_dir": "calc", "_time_utc": 1700000000.5,
        "_exec_host": "h", "_pset_runtime": 0.1,
    }
    old.append(row)
    old.close()
    df = ps.run(lambda pset: {}, ps.plist("a", [2]))
    assert df["a"].tolist() == [1, 2]
    assert df.loc[0, "_time_utc"] == pd.Timestamp(1700000000.5, unit="s")
    assert all(isinstance(value, pd.Timestamp) for value in df["_time_utc"])


def test_journal_round_trips_timestamps_and_rows_whose_keys_change_order(tmp_path):
    import pandas as pd
    from xmanager.xm_local.sweep import journal

    when = pd.Timestamp("2024-05-06 07:08:09.123456789")
    rows = [
        {"a": 1, "_time_utc": when, "x_": 1, "y_": 2},
        {"a": 2, "_time_utc": when, "x_": 3, "y_": 4},
        {"a": 3, "_time_utc": when, "y_": 5, "x_": 6},  # func returned its results in another order
        {"a": 4, "_time_utc": when, "y_": 7, "x_": 8},
    ]
    log = journal.Journal(str(tmp_path), "run")
    for row in rows:
        log.append(row)
    log.close()
    back = journal.read(log.path)
    assert back == rows
    assert [list(row) for row in back] == [list(row) for row in rows]
    assert all(type(row["_time_utc"]) is pd.Timestamp and row["_time_utc"] == when for row in back)
    assert rows[0]["_time_utc"] is when  # the caller's row is not changed
