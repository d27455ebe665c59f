"""The shared pieces of the sources: query checks with named ranges, the readability check that runs
before any decoder sees a path, and the file identity that content ids are built on."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import CorruptInputError, SourceError
from edge.frames import Frame
from edge.sources._common import (
    check_readable,
    file_identity,
    positive_number,
    read_fresh,
    unreadable,
    whole_number,
)
from edge.sources.registry import parse_source_url


# -- query values -----------------------------------------------------------------------------------------
def test_whole_number_names_the_parameter_and_the_range() -> None:
    url = parse_source_url("video:///x.mp4?threads=7")
    assert whole_number(url, "threads", 1, 0, 32) == 7
    assert whole_number(parse_source_url("video:///x.mp4"), "threads", 1, 0, 32) == 1
    for bad in ("33", "-1", "2.5", "inf", "nan", "1e9"):
        url = parse_source_url(f"video:///x.mp4?threads={bad}")
        expected = rf"threads='{bad}' must be a whole number from 0 to 32 \(why\)"
        with pytest.raises(SourceError, match=expected):
            whole_number(url, "threads", 1, 0, 32, "why")
    with pytest.raises(SourceError, match="is not a number"):
        whole_number(parse_source_url("video:///x.mp4?threads=many"), "threads", 1, 0, 32)


def test_positive_number_with_an_upper_bound() -> None:
    assert positive_number(parse_source_url("video:///x.png?fps=0.5"), "fps", 1000) == 0.5
    assert positive_number(parse_source_url("video:///x.png"), "fps", 1000) is None
    with pytest.raises(SourceError, match=r"fps='5000' must be a number > 0 and <= 1000"):
        positive_number(parse_source_url("video:///x.png?fps=5000"), "fps", 1000)
    with pytest.raises(SourceError, match=r"fps='0' must be a number > 0$"):
        positive_number(parse_source_url("video:///x.png?fps=0"), "fps")


# -- readability -------------------------------------------------------------------------------------------
def test_a_readable_file_and_folder_pass(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x")
    assert unreadable(path) is None
    assert check_readable(path).st_size == 1
    assert unreadable(tmp_path) is None  # a folder is the caller's to judge
    assert unreadable(tmp_path, folders=True) is None


def test_missing_and_dangling(tmp_path: Path) -> None:
    assert str(unreadable(tmp_path / "no.mp4")) == f"{tmp_path / 'no.mp4'}: no such file"
    assert str(unreadable(tmp_path / "no", folders=True)).endswith("no: no such file or folder")
    link = tmp_path / "link.mp4"
    link.symlink_to(tmp_path / "target.mp4")
    problem = unreadable(link)
    assert isinstance(problem, SourceError)
    target = tmp_path / "target.mp4"
    assert str(problem) == f"{link}: dangling symbolic link (to {target}, which does not exist)"


def test_special_files_are_refused_without_opening_them(tmp_path: Path) -> None:
    fifo = tmp_path / "feed.mp4"
    os.mkfifo(fifo)
    found: list[SourceError | None] = []
    worker = threading.Thread(target=lambda: found.append(unreadable(fifo)), daemon=True)
    worker.start()
    worker.join(5.0)
    assert found, "opening a FIFO would block until a writer comes"
    assert "not a regular file but a named pipe (FIFO)" in str(found[0])
    assert "not a regular file but a character device" in str(unreadable(Path("/dev/null")))


def test_empty_file_is_corrupt_input_saying_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    problem = unreadable(path)
    assert isinstance(problem, CorruptInputError) and str(problem) == f"{path}: empty file (0 bytes)"
    with pytest.raises(CorruptInputError):
        check_readable(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; the fault suite drops to nobody for this")
def test_permission_denied_names_mode_owner_and_user(tmp_path: Path) -> None:
    path = tmp_path / "locked.mp4"
    path.write_bytes(b"data")
    path.chmod(0)
    try:
        problem = str(unreadable(path))
    finally:
        path.chmod(0o600)
    assert problem.startswith(f"{path}: permission denied (cannot open it for reading: mode ----------")


# -- identity ----------------------------------------------------------------------------------------------
def test_file_identity_is_stable_and_follows_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"one")
    first = file_identity(path)
    assert first == file_identity(path) and len(first) == 16
    path.write_bytes(b"other content")
    assert file_identity(path) != first
    assert file_identity(tmp_path / "missing") == file_identity(tmp_path / "missing")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_an_input_output_error_is_named_as_such() -> None:
    """/proc/self/mem is a regular file whose first page is unmapped: reading it is EIO."""
    assert str(unreadable(Path("/proc/self/mem"))) == "/proc/self/mem: cannot read: Input/output error"


class _Waiting:
    """A live source's buffer: frames captured at the given ages (ms), all waiting already."""

    def __init__(self, ages_ms: list[float]) -> None:
        now = time.monotonic_ns()
        self.frames = [
            Frame(image=np.zeros((4, 4), np.uint8), seq=i, t_acquired_ns=now - int(a * 1e6), source_id="t")
            for i, a in enumerate(ages_ms)
        ]

    def read(self, timeout: float | None = None) -> Frame | None:
        return self.frames.pop(0) if self.frames else None


def test_read_fresh_drops_stale_frames_that_have_a_newer_one_behind_them() -> None:
    src = _Waiting([300, 250, 200, 10, 5])
    frame, dropped = read_fresh(src, 0.1, 50_000_000)
    assert frame is not None and frame.seq == 3 and dropped == 3
    frame, dropped = read_fresh(src, 0.1, 50_000_000)
    assert frame is not None and frame.seq == 4 and dropped == 0


def test_read_fresh_keeps_the_newest_frame_however_old() -> None:
    frame, dropped = read_fresh(_Waiting([400, 300]), 0.1, 50_000_000)
    assert frame is not None and frame.seq == 1 and dropped == 1
    assert read_fresh(_Waiting([]), 0.0, 50_000_000) == (None, 0)


def test_read_fresh_without_a_budget_hands_on_every_frame() -> None:
    src = _Waiting([300, 250])
    assert [read_fresh(src, 0.1, 0)[0].seq for _ in range(2)] == [0, 1]  # type: ignore[union-attr]


def test_read_fresh_never_drops_a_still() -> None:
    src = _Waiting([300, 250, 5])
    for f in src.frames:
        f.meta["still"] = True  # X-rays of a burst: each an image of its own
    films = list(src.frames)
    assert [read_fresh(src, 0.1, 50_000_000) for _ in range(3)] == [(f, 0) for f in films]
    mixed = _Waiting([300, 250, 200, 5])
    film = mixed.frames[1]
    film.meta["still"] = True  # a film behind a stale stream frame, more waiting behind it
    assert read_fresh(mixed, 0.1, 50_000_000) == (film, 1)
