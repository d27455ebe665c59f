"""The stress changes move and clip the truth boxes with the film."""

from __future__ import annotations

import numpy as np

from tools.cxr_lungs.stress import CHANGES, _at_edge

BOXES = np.array([[20, 30, 90, 170], [110, 30, 180, 170]], np.float32)


def test_a_cut_at_the_left_moves_the_boxes_and_clips_the_right_lung() -> None:
    gray = np.zeros((200, 200), np.uint8)
    img, b = CHANGES["cut 30% at the image left"](gray, BOXES)
    assert img.shape == (200, 140)
    assert b[0].tolist() == [0, 30, 30, 170] and b[1].tolist() == [50, 30, 120, 170]
    assert _at_edge(b[0], 140, 200) and not _at_edge(b[1], 140, 200)


def test_exposure_changes_keep_the_boxes() -> None:
    gray = np.full((50, 60), 100, np.uint8)
    img, b = CHANGES["darker (gamma 1.8)"](gray, BOXES)
    assert img.mean() < 100 and (b == BOXES).all()
