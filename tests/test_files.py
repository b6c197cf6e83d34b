"""Atomic writes: the target is either the old content or the new, never a half file, and no temporary is left behind.
Users' text files: read as UTF-8 with or without a byte-order mark, or refused in one line naming them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pinpoint.errors import InputError
from pinpoint.files import atomic_path, read_user_text, write_bytes, write_text


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_replaces_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "labels.txt"
    target.write_text("old\n")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        assert tmp.name.endswith(".txt")  # the real suffix, for writers that pick a format by it
        assert target.read_text() == "old\n"  # untouched until the block succeeds
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert _names(tmp_path) == ["labels.txt"]


def test_exception_keeps_old_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old weights")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new wei")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old weights"
    assert _names(tmp_path) == ["model.pt"]


def test_interrupt_on_a_new_file_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "fresh.png"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"\x89PNG")
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_temporary_names_do_not_collide(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        first.write_text("1")
        second.write_text("2")
    assert target.read_text() == "1"  # the outer block finishes last
    assert _names(tmp_path) == ["a.txt"]


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "exp1" / "log.txt"
    write_text(target, "epoch 1\n")
    assert target.read_text() == "epoch 1\n"


def test_write_text_is_utf8_with_lf_line_endings(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    write_text(target, "1\nµ 0.5\n")
    assert target.read_bytes() == "1\nµ 0.5\n".encode("utf-8")
    write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_permissions_follow_the_umask_like_open(tmp_path: Path, umask: int, expected: int) -> None:
    previous = os.umask(umask)
    try:
        write_text(tmp_path / "shared.txt", "x")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected


def test_user_text_drops_a_byte_order_mark_and_names_the_file_on_any_problem(tmp_path: Path) -> None:
    split = tmp_path / "train.txt"
    split.write_bytes(b"\xef\xbb\xbfMisc_1\r\nMisc_2\r\n")  # as a Windows editor saves it
    assert read_user_text(split, "split file").splitlines() == ["Misc_1", "Misc_2"]
    (tmp_path / "labels.bin").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    for path, message in ((tmp_path / "absent.txt", "split file not found"),
                          (tmp_path / "labels.bin", "split file is not UTF-8 text"),
                          (tmp_path, "cannot read split file")):  # a folder
        with pytest.raises(InputError) as error:
            read_user_text(path, "split file")
        assert str(error.value).startswith(f"{path}: {message}") and "\n" not in str(error.value)
