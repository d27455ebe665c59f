"""tools.modelkit.frames: stills folders, clips and DICOM through the runtime's sources."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from tools.modelkit.frames import DEFAULT_SOURCE, read_frames, source_url


def test_bundled_clip_frames_are_bgr_uint8() -> None:
    frames = read_frames(DEFAULT_SOURCE, max_frames=3)
    assert len(frames) == 3
    assert frames[0].dtype == np.uint8 and frames[0].ndim == 3 and frames[0].shape[2] == 3


def test_folder_of_stills_in_name_order(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.full((8, 9), i * 50, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = read_frames(tmp_path)
    assert [int(im[0, 0, 0]) for im in frames] == [0, 50, 100]
    assert read_frames(tmp_path, max_frames=2)[-1][0, 0, 0] == 50


def test_urls_chosen_by_what_the_path_is(tmp_path: Path) -> None:
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"")
    assert source_url(clip) == f"video://{clip.resolve()}?realtime=0"
    assert source_url(tmp_path / "c.mp4").startswith("video://")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.dcm").write_bytes(b"")
    assert source_url(tmp_path / "d") == f"dicom://{(tmp_path / 'd').resolve()}"
    assert source_url("probe+emu://?preset=lung") == "probe+emu://?preset=lung"


def test_missing_or_unreadable_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope: no such file or folder"):
        read_frames(tmp_path / "nope")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(SourceError, match=r"bad\.png: not a readable image"):
        read_frames(bad)
