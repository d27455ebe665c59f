"""dicom+watch://: a folder a console exports to; images from the real pydicom-data chest CR with new
SOP Instance UIDs, half-copied and bad files written the way a copier or a broken export leaves them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pydicom
import pytest

from edge.errors import SourceError
from edge.frames import Frame
from edge.sources import open_source
from edge.sources.dicom_watch import STATE_NAME, DicomWatchSource
from tests.support.dicom import installed_dicom
from tests.support.dicom_net import renewed, small_cr

FAST = "settle_s=0.2&poll_s=0.1"


def watching(folder: Path, query: str = FAST) -> DicomWatchSource:
    src = open_source(f"dicom+watch://{folder}?{query}")
    assert isinstance(src, DicomWatchSource)
    src.open()
    return src


def frames_until_idle(src: DicomWatchSource, idle_s: float = 1.0, limit: int = 50) -> list[Frame]:
    """Frames until none arrives within ``idle_s`` (well past settle_s + poll_s)."""
    frames: list[Frame] = []
    while len(frames) < limit:
        frame = src.read(idle_s)
        if frame is None:
            break
        frames.append(frame)
    return frames


def export(folder: Path, name: str, size: int = 48) -> tuple[Path, str]:
    """A console's export: a small CR written whole under ``name``; returns it and its UID."""
    ds = small_cr(size)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path, str(ds.SOPInstanceUID)


@pytest.fixture
def share(tmp_path: Path) -> Path:
    folder = tmp_path / "share"
    folder.mkdir()
    return folder


def test_new_files_are_shown_once_each_in_arrival_order(share: Path) -> None:
    _, first = export(share, "a.dcm")
    _, second = export(share, "study/b.dcm")  # subfolders too
    src = watching(share)
    try:
        frames = frames_until_idle(src)
        assert [f.meta["SOPInstanceUID"] for f in frames] == [first, second]
        assert frames_until_idle(src, 0.5) == []  # listed again and again: nothing new
        _, third = export(share, "c.dcm")
        (frame,) = frames_until_idle(src)
    finally:
        src.close()
    assert frame.meta["SOPInstanceUID"] == third and frame.modality == "CR" and frame.meta["still"] is True
    assert frame.meta["file"] == str(share / "c.dcm")
    assert [f.seq for f in frames] == [0, 1] and frame.seq == 2
    assert src.info.extra["shown"] == 3 and "3 shown" in (src.hud_text() or "")


def test_a_half_copied_file_is_not_read_until_complete(share: Path, tmp_path: Path) -> None:
    whole, uid = export(tmp_path, "whole.dcm")
    data = whole.read_bytes()
    target = share / "x.dcm"
    src = watching(share, "settle_s=2&poll_s=0.1")
    try:
        target.write_bytes(data[: len(data) // 2])  # the copier is half-way
        assert src.read(0.5) is None  # it has not been still for settle_s: not touched
        with target.open("ab") as fh:  # the copy goes on and completes
            fh.write(data[len(data) // 2 :])
        frames = frames_until_idle(src, 4.0)
    finally:
        src.close()
    assert [f.meta["SOPInstanceUID"] for f in frames] == [uid]
    assert src.info.extra["bad"] == 0


def test_a_copier_temporary_name_is_ignored_until_renamed(share: Path) -> None:
    path, uid = export(share, "incoming.dcm.part")
    src = watching(share)
    try:
        assert frames_until_idle(src, 0.6) == []
        path.rename(share / "incoming.dcm")
        (frame,) = frames_until_idle(src)
    finally:
        src.close()
    assert frame.meta["SOPInstanceUID"] == uid


def test_bad_files_are_reported_by_name_skipped_and_not_read_again(
    share: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (share / "garbage.dcm").write_bytes(b"\x00\x01garbage" * 300)
    good, uid = export(share, "good.dcm")
    data = good.read_bytes()
    (share / "cut.dcm").write_bytes(data[: len(data) - 1000])  # truncated export; a renamed copy of good
    ds = small_cr(32)
    del ds.PixelData
    ds.save_as(share / "report.dcm", enforce_file_format=True)
    with caplog.at_level(logging.WARNING, logger="edge.sources.dicom_watch"):
        src = watching(share)
        try:
            frames = frames_until_idle(src)
        finally:
            src.close()
    assert [f.meta["SOPInstanceUID"] for f in frames] == [uid]
    assert "garbage.dcm: bad DICOM file, skipped: not a DICOM file" in caplog.text
    assert "cut.dcm: bad DICOM file, skipped: truncated" in caplog.text
    assert "report.dcm: bad DICOM file, skipped: no Pixel Data" in caplog.text
    assert src.info.extra["bad"] == 3 and "3 bad" in (src.hud_text() or "")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge.sources.dicom_watch"):
        again = watching(share)  # a restart: nothing re-read, nothing re-reported
        try:
            assert frames_until_idle(again, 0.6) == []
        finally:
            again.close()
    assert "bad DICOM file" not in caplog.text


def test_files_are_remembered_across_restarts_and_new_ones_taken(share: Path) -> None:
    _, first = export(share, "a.dcm")
    src = watching(share)
    try:
        assert [f.meta["SOPInstanceUID"] for f in frames_until_idle(src)] == [first]
    finally:
        src.close()
    _, second = export(share, "b.dcm")  # arrived while the runtime was off
    src = watching(share)
    try:
        assert [f.meta["SOPInstanceUID"] for f in frames_until_idle(src)] == [second]
    finally:
        src.close()
    lines = [json.loads(line) for line in (share / STATE_NAME).read_text().splitlines()]
    assert [(r["file"], r["status"], r["uid"]) for r in lines] == [
        ("a.dcm", "shown", first),
        ("b.dcm", "shown", second),
    ]


def test_the_same_sop_instance_in_two_files_is_shown_once(share: Path) -> None:
    path, uid = export(share, "a.dcm")
    (share / "copy_of_a.dcm").write_bytes(path.read_bytes())
    src = watching(share)
    try:
        frames = frames_until_idle(src)
    finally:
        src.close()
    assert [f.meta["SOPInstanceUID"] for f in frames] == [uid]
    assert src.info.extra["duplicates"] == 1


def test_a_file_replaced_under_the_same_name_is_read_again(share: Path) -> None:
    path, first = export(share, "latest.dcm")
    src = watching(share)
    try:
        assert [f.meta["SOPInstanceUID"] for f in frames_until_idle(src)] == [first]
        _, second = export(share, "latest.dcm")  # the console overwrites its export with the next image
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
        assert [f.meta["SOPInstanceUID"] for f in frames_until_idle(src)] == [second]
    finally:
        src.close()


def test_state_elsewhere_and_a_torn_last_line(share: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "watch.jsonl"
    state.parent.mkdir()
    _, uid = export(share, "a.dcm")
    src = watching(share, f"{FAST}&state={state}")
    try:
        assert len(frames_until_idle(src)) == 1
    finally:
        src.close()
    assert not (share / STATE_NAME).exists()  # the share is not written to
    with state.open("a") as fh:
        fh.write('{"file": "b.dcm", "si')  # a crash mid-line
    src = watching(share, f"{FAST}&state={state}")
    try:
        assert frames_until_idle(src, 0.6) == []
    finally:
        src.close()
    assert json.loads(state.read_text().splitlines()[-1])["uid"] == uid  # rewritten without the torn line


def test_an_ultrasound_cine_is_played_frame_by_frame(share: Path) -> None:
    ds = renewed(pydicom.dcmread(installed_dicom("OBXXXX1A_2frame.dcm")))
    ds.save_as(share / "cine.dcm")
    src = watching(share)
    try:
        frames = frames_until_idle(src)
    finally:
        src.close()
    assert [(f.modality, f.meta["frame_index"]) for f in frames] == [("US", 0), ("US", 1)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("settle_s=0.01", "settle_s.*from 0.2"),
        ("poll=1", "unknown query parameter"),
        ("poll_s=x", "not a number"),
    ],
)
def test_bad_urls(share: Path, query: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(f"dicom+watch://{share}?{query}")


def test_a_missing_folder_or_a_file_is_refused(share: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        watching(share / "nowhere")
    export(share, "a.dcm")
    with pytest.raises(SourceError, match="not a folder"):
        watching(share / "a.dcm")
