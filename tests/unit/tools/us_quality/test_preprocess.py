"""The us-quality input preprocessing that the runtime mirrors, and the split by clip (no data set needed)."""

from __future__ import annotations

import cv2
import numpy as np

from tools.modelkit.pocus import ClipRecord
from tools.us_quality.data import split_by_clip
from tools.us_quality.preprocess import MEAN, SCALE, STD, preprocess


def test_preprocess_shape_dtype_and_normalisation() -> None:
    gray = np.zeros((300, 400), np.uint8)
    gray[:, 200:] = 255
    x = preprocess(gray)
    assert x.shape == (1, 1, 128, 128) and x.dtype == np.float32
    assert x.min() == np.float32((0 * SCALE - MEAN) / STD) == -2.0
    assert x.max() == np.float32((255 * SCALE - MEAN) / STD) == 2.0


def test_preprocess_takes_bgr_as_opencv_gray() -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    # 320 -> 256 and 240 -> 256 bilinear (round(2.5) and round(1.875) are 2), then area by 2
    up = cv2.resize(gray, (256, 256), interpolation=cv2.INTER_LINEAR)
    expected = cv2.resize(up, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32)
    expected = (expected * np.float32(1 / 255) - np.float32(0.5)) / np.float32(0.25)
    np.testing.assert_allclose(preprocess(bgr)[0, 0], expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(preprocess(bgr), preprocess(gray))


def _rec(file: str, label: str = "regular", probe: str = "convex") -> ClipRecord:
    return ClipRecord(file, file.split("/")[-1].rsplit(".", 1)[0], label, probe, "", "", "", "", "", {})


def _records() -> list[ClipRecord]:
    recs = [_rec(f"convex/Reg_pat{p}Image_{i}.mpeg") for p in range(1, 4) for i in range(4)]
    recs += [_rec(f"convex/Cov_{i}.mp4", "COVID-19") for i in range(8)]
    recs += [_rec(f"linear/Vir_{i}.mp4", "Viral pneumonia", "linear") for i in range(5)]
    recs += [_rec("convex/still.png"), _rec("linear/still.jpg", probe="linear")]
    return recs


def test_split_is_by_clip_and_patient_and_deterministic() -> None:
    recs = _records()
    a = split_by_clip(recs, seed=0, pinned_test=("convex/Cov_3.mp4",))
    assert a == split_by_clip(recs, seed=0, pinned_test=("convex/Cov_3.mp4",))
    files = [f for v in a.values() for f in v]
    assert sorted(files) == sorted(r.file for r in recs) and len(files) == len(set(files))
    assert "convex/Cov_3.mp4" in a["test"]
    assert {"convex/still.png", "linear/still.jpg"} <= set(a["train"])
    for p in range(1, 4):  # a patient's clips never straddle two splits
        homes = {k for k, v in a.items() for f in v if f"pat{p}Image" in f}
        assert len(homes) == 1
    videos = [r for r in recs if not r.file.endswith((".png", ".jpg"))]
    assert 0.15 <= len(a["test"]) / len(videos) <= 0.35
    assert a["val"] and any(f.startswith("linear/") for f in a["test"])
