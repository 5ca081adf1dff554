"""Files written whole: the new one or the old one, never half, and no temporary file left behind."""

import os

import pytest

from vskip.files import atomic_path, write_atomic


def test_a_file_is_replaced_whole_through_a_temporary_file_of_this_process(tmp_path):
    path = tmp_path / "sub" / "out.json"
    write_atomic(path, "old\n")
    with atomic_path(path) as partial:
        assert partial.name == f"out.json.tmp{os.getpid()}" and partial.parent == path.parent
        partial.write_bytes(b"new\n")
        assert path.read_text() == "old\n"  # not replaced before the block ends
    assert path.read_bytes() == b"new\n" and sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "out.json"
    write_atomic(path, b"old\n")
    with pytest.raises(RuntimeError), atomic_path(path) as partial:
        partial.write_text("half")
        raise RuntimeError("stage failed")
    assert path.read_bytes() == b"old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_failed_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(source, target):
        raise PermissionError("operation not permitted")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_atomic(tmp_path / "out.jsonl", '{"id": "new"}\n')
    assert not any(tmp_path.iterdir())
