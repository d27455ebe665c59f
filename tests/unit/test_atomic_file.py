"""Atomic writes: the target holds the old or the new content, never a part, and no temp is left."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from edge.atomic_file import atomic_write


def test_bytes_and_writer_replace_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.engine"
    atomic_write(target, b"abc")
    atomic_write(target, lambda fh: fh.write(b"defg"))
    assert target.read_bytes() == b"defg"
    assert [p.name for p in target.parent.iterdir()] == ["x.engine"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.dcm"
    atomic_write(target, b"old")

    def broken(fh: BinaryIO) -> None:
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]
