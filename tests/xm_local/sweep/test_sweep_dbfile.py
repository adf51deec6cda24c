"""database.pk as a pickle of chunks: appends, a killed append, and readers that know nothing of it."""

import os
import pickle
import struct

import pandas as pd
from xmanager.xm_local.sweep import dbfile


def _frame(start, stop):
    return pd.DataFrame({"a": list(range(start, stop)), "_pset_id": [f"id{i}" for i in range(start, stop)]}, dtype=object)


def _load(path):
    with open(path, "rb") as handle:
        return pickle.load(handle)


def test_written_and_appended_files_load_as_one_frame(tmp_path):
    path = str(tmp_path / "database.pk")
    layout = dbfile.write(path, [dbfile.encode_chunk(_frame(0, 3))])
    assert _load(path).equals(_frame(0, 3))
    layout = dbfile.append(path, layout, dbfile.encode_chunk(_frame(3, 5)))
    layout = dbfile.append(path, layout, dbfile.encode_chunk(_frame(5, 6)))
    loaded = _load(path)
    assert loaded.equals(_frame(0, 6))
    assert isinstance(loaded.index, pd.RangeIndex)
    with open(path, "rb") as handle:
        assert dbfile.layout_of(handle.read()) == layout == dbfile.Layout(chunks=3, end=os.path.getsize(path))


def test_an_append_killed_before_its_commit_leaves_the_old_database(tmp_path):
    path = str(tmp_path / "database.pk")
    layout = dbfile.write(path, [dbfile.encode_chunk(_frame(0, 3))])
    chunk = dbfile.encode_chunk(_frame(3, 5))
    with open(path, "ab") as handle:  # Step 1 of an append, cut short: no commit.
        handle.write(b"cpickle\nloads\n\x8e" + struct.pack("<Q", len(chunk)) + chunk[:10])
    assert _load(path).equals(_frame(0, 3))
    with open(path, "rb") as handle:
        assert dbfile.layout_of(handle.read()) == layout
    layout = dbfile.append(path, layout, chunk)  # The next append cuts the dead bytes off.
    assert _load(path).equals(_frame(0, 5))
    assert os.path.getsize(path) == layout.end


def test_foreign_pickles_have_no_layout(tmp_path):
    assert dbfile.layout_of(pickle.dumps(_frame(0, 2))) is None
    assert dbfile.layout_of(b"") is None


def test_psweep_reads_the_file(tmp_path):
    from peer_venv import import_peer

    psweep = import_peer("psweep", "0.16.0")
    path = str(tmp_path / "database.pk")
    layout = dbfile.write(path, [dbfile.encode_chunk(_frame(0, 2))])
    dbfile.append(path, layout, dbfile.encode_chunk(_frame(2, 4)))
    assert psweep.df_read(path).equals(_frame(0, 4))
