"""File, process and UUID helpers (psweep's misc helpers)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from xmanager.xm_local.sweep import files


def test_system_returns_merged_output_as_bytes_and_prints_nothing(capsys, tmp_path):
    proc = files.system("echo out; echo err >&2; pwd", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == f"out\nerr\n{tmp_path}\n".encode()
    assert capsys.readouterr().out == ""


def test_system_text_mode_on_request():
    assert files.system("echo hi", text=True).stdout == "hi\n"


def test_system_failure_prints_output_then_raises(capsys):
    with pytest.raises(subprocess.CalledProcessError) as info:
        files.system("echo why it failed; exit 3")
    assert info.value.returncode == 3
    assert info.value.output == b"why it failed\n"
    assert capsys.readouterr().out == "why it failed\n\n"


def test_makedirs_nested_and_existing(tmp_path):
    path = tmp_path / "a" / "b" / "c"
    files.makedirs(str(path))
    files.makedirs(str(path))
    assert path.is_dir()


def test_fullpath_expands_home_and_relative(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert files.fullpath("~/x") == str(tmp_path / "home" / "x")
    assert files.fullpath("rel/y") == str(tmp_path / "rel" / "y")


def test_file_write_creates_parents_appends_and_reads_back(tmp_path):
    fn = str(tmp_path / "d1" / "d2" / "f.txt")
    files.file_write(fn, "héllo\n")
    files.file_write(fn, "more\n", mode="a")
    assert files.file_read(fn) == "héllo\nmore\n"
    files.file_write(fn, "new")
    assert files.file_read(fn) == "new"


def test_file_write_replaces_unencodable_characters(tmp_path):
    fn = str(tmp_path / "f.txt")
    files.file_write(fn, "a\udcffb")  # a lone surrogate, as from os.fsdecode of bad bytes
    assert files.file_read(fn) == "a&#56575;b"


def test_pickle_and_json_round_trip_with_parent_dirs(tmp_path):
    obj = {"a": [1, 2.5, "x"], "b": None}
    pk = str(tmp_path / "p" / "obj.pk")
    js = str(tmp_path / "j" / "obj.json")
    files.pickle_write(pk, obj)
    files.json_write(js, obj, indent=2)
    assert files.pickle_read(pk) == obj
    assert files.json_read(js) == obj
    assert files.file_read(js).startswith('{\n  "a"')


def _check_uuid4(text: str) -> None:
    parsed = uuid.UUID(text)
    assert str(parsed) == text
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122


def test_get_many_uuids_are_valid_distinct_and_avoid_existing():
    existing = {str(uuid.uuid4()) for _ in range(100)}
    ids = files.get_many_uuids(5000, existing=existing)
    assert len(ids) == 5000
    assert len(set(ids)) == 5000
    assert not set(ids) & existing
    for text in ids:
        _check_uuid4(text)
    # The random nibble under the variant bits still varies (all of 8, 9, a, b occur).
    assert {text[19] for text in ids} == set("89ab")
    assert files.get_many_uuids(0) == []
    with pytest.raises(ValueError):
        files.get_many_uuids(-1)


def test_get_uuid_accepts_any_iterable_of_existing_ids():
    existing = [str(uuid.uuid4()) for _ in range(10)]
    text = files.get_uuid(existing=existing)
    _check_uuid4(text)
    assert text not in existing


def test_collisions_are_redrawn(monkeypatch):
    fixed = b"\x11" * 16
    draws = iter([fixed * 2, os.urandom(16)])  # two identical ids, then one fresh one
    monkeypatch.setattr(files.os, "urandom", lambda size: next(draws)[:size])
    ids = files.get_many_uuids(2)
    assert len(set(ids)) == 2
    assert ids[0] == str(uuid.UUID(bytes=fixed, version=4))


def test_gives_up_after_retries(monkeypatch):
    calls = []

    def same_bytes(size):
        calls.append(size)
        return b"\x22" * size

    monkeypatch.setattr(files.os, "urandom", same_bytes)
    taken = files.get_uuid()
    with pytest.raises(RuntimeError, match="after 3 retries"):
        files.get_uuid(retry=3, existing=[taken])
    assert len(calls) == 1 + 4  # the first draw, then one try and three retries


def test_get_many_uuids_is_fast():
    start = time.perf_counter()
    ids = files.get_many_uuids(100_000)
    elapsed = time.perf_counter() - start
    assert len(set(ids)) == 100_000
    assert elapsed < 1.0, f"100k ids took {elapsed:.2f} s"
