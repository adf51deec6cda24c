"""batchup's helpers for declaring your own dataset (datasets.dataset), beyond what batchup's own tests pin."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from xmanager.xm.data import config
from xmanager.xm.data.datasets import dataset

HELLO_SHA = hashlib.sha256(b"hello").hexdigest()


def test_files_go_under_the_data_directory(ds_dir: Path) -> None:
    source = dataset.DownloadSourceFile("a.bin", base_url="http://host/files/")
    assert source.url == "http://host/files/a.bin"
    assert source.path == str(ds_dir / "data" / "temp" / "a.bin")
    assert config.get_data_dir() == str(ds_dir / "data")


def test_fetch_copies_converts_and_cleans_up(ds_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"hello")
    copy = dataset.CopySourceFile("raw.txt", arg_name="raw_path", sha256=HELLO_SHA)
    converted = []

    @dataset.fetch_and_convert_dataset([copy], "nested/out.txt")
    def fetch_thing(source_paths: list[str], target_path: str) -> str:
        converted.append(source_paths)
        Path(target_path).write_text(Path(source_paths[0]).read_text().upper())  # its folder exists already
        return target_path

    assert fetch_thing.__name__ == "fetch_thing"
    out = fetch_thing(raw_path=raw)  # a PathLike is fine
    assert out == str(ds_dir / "data" / "nested" / "out.txt") and Path(out).read_text() == "HELLO"
    assert not os.path.exists(copy.path)  # staged source removed
    assert fetch_thing(raw_path=raw) == out and len(converted) == 1  # converted once
    dataset.delete_dataset_cache("nested/out.txt", lambda: "missing.txt")
    assert not os.path.exists(out)
    with pytest.raises(TypeError, match="raw_path"):
        fetch_thing()


def test_a_copy_that_does_not_verify_fails_the_fetch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"not hello")

    @dataset.fetch_and_convert_dataset(
        [dataset.CopySourceFile("raw.txt", source_path=str(raw), sha256=HELLO_SHA)], "out.txt"
    )
    def fetch_thing(source_paths: list[str], target_path: str) -> str:
        raise AssertionError("not reached")

    assert fetch_thing() is None
    out = capsys.readouterr().out
    assert f"SHA verification of file {raw} failed" in out and "Failed to acquire file raw.txt" in out


def test_existing_source_with_a_path_function(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"hello")
    source = dataset.ExistingSourceFile(lambda: str(raw), sha256=HELLO_SHA)
    assert source.acquire() == str(raw) and str(source) == f"file at {raw}"
    assert dataset.ExistingSourceFile(str(raw), sha256="0" * 64).acquire() is None
    source.clean_up()
    assert raw.exists()


def test_classnames_from_h5() -> None:
    assert dataset.classnames_from_h5([b"caf\xe9", "dog"]) == ["café", "dog"]
