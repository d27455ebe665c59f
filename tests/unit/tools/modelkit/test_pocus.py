"""tools.modelkit.pocus: the pocus_dev records, gray frames with their cache, and the attribution."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tools.modelkit import pocus
from tools.modelkit.pocus import ClipRecord, data_source, load_frames, load_labels, read_gray_frames, to_gray


def test_labels_become_records(pocus_dir: Path) -> None:
    recs = load_labels(pocus_dir)
    assert len(recs) == 11 and all(isinstance(r, ClipRecord) for r in recs)
    demo = next(r for r in recs if r.file == "convex/Reg_Image_182106_crop.mp4")
    assert demo.probe == "convex" and demo.kind == "video" and demo.is_video
    assert demo.licence == "CC BY 4.0" and demo.row["B-lines"] in ("0", "1")


def test_a_patient_is_one_group() -> None:
    def rec(name: str) -> ClipRecord:
        return ClipRecord(f"convex/{name}.mpeg", name, "regular", "convex", "video", "", "", "", "", {})

    assert rec("Reg_pat2Image_5").group == rec("Reg_pat2Image_9").group == "pat2"
    assert rec("Cov_3").group == "convex/Cov_3.mpeg"


def test_to_gray_takes_bgr_as_opencv_does() -> None:
    bgr = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_gray(bgr), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(to_gray(bgr[:, :, :1]), bgr[:, :, 0])
    with pytest.raises(ValueError, match="expected HxW or HxWx3"):
        to_gray(np.zeros((2, 2, 4), np.uint8))


def test_every_step_th_frame_and_large_stills_shrunk(pocus_dir: Path, tmp_path: Path) -> None:
    frames = read_gray_frames(pocus_dir / "convex/Reg_Image_0_crop.mp4", 3)
    assert frames.shape == (4, 160, 160) and frames.dtype == np.uint8  # frames 0, 3, 6, 9 of 10
    still = tmp_path / "figure.png"
    cv2.imwrite(str(still), np.full((1280, 960, 3), 90, np.uint8))
    assert read_gray_frames(still, 3).shape == (1, pocus.MAX_SIDE, 480)


def test_frames_are_decoded_once_then_read_from_the_cache(
    pocus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = next(r for r in load_labels(pocus_dir) if r.file == "linear/Cov_linear_1.mp4")
    cache = tmp_path / "cache"
    first = load_frames(pocus_dir, rec, 3, cache)
    assert len(list(cache.glob("*.npz"))) == 1

    def no_decoding(path: Path, step: int) -> np.ndarray:
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(pocus, "read_gray_frames", no_decoding)
    np.testing.assert_array_equal(load_frames(pocus_dir, rec, 3, cache), first)
    clip = pocus_dir / rec.file
    st = clip.stat()
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # an edited clip is decoded again
    with pytest.raises(AssertionError, match="decoded again"):
        load_frames(pocus_dir, rec, 3, cache)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_data_source_attributes_each_file_used(pocus_dir: Path) -> None:
    used = ["linear/Cov_linear_0.mp4", "convex/Reg_Image_182106_crop.mp4"]
    text = data_source(pocus_dir, used, "my-model")
    assert text.startswith("# Data used to train and evaluate my-model\n")
    assert "# Synthetic clips written by the test" in text, "SOURCE.md is quoted verbatim"
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == sorted(used)
    assert all("CC BY 4.0" in r for r in rows)
    csv_rows = text.split("```csv\n")[1].split("```")[0].splitlines()
    assert csv_rows[0].startswith("file,Filename,") and len(csv_rows) == 1 + len(used)
