"""Real frames' boxes: the teacher's B-lines under the clip's label."""

from __future__ import annotations

import numpy as np

from tests.unit.inference.test_blines import PLEURA, _b_line, _lung
from tools.lung_detector.pseudo_labels import frame_boxes

LABELS = ("b_line", "pleural_line", "consolidation", "effusion")


def test_a_b_line_clip_gets_a_box_per_line_from_the_pleura_to_the_bottom() -> None:
    img = _lung(np.random.default_rng(1))
    for c in (30, 80):
        _b_line(img, c)
    got = frame_boxes(img, 1, LABELS)
    assert got is not None
    boxes, classes = got
    lines = boxes[classes == 0]
    assert len(lines) == 2 and (classes == 1).sum() == 1
    assert np.allclose(lines[:, 1], PLEURA, atol=2) and np.allclose(lines[:, 3], img.shape[0])
    assert np.allclose(sorted((b[0] + b[2]) / 2 for b in lines), [31.5, 81.5], atol=1)


def test_a_clip_without_b_lines_gets_none_whatever_the_teacher_sees() -> None:
    img = _lung(np.random.default_rng(2))
    _b_line(img, 60)
    got = frame_boxes(img, 0, LABELS)
    assert got is not None
    assert list(got[1]) == [1]  # the pleural line only


def test_a_b_line_clip_frame_without_teacher_lines_is_left_out() -> None:
    assert frame_boxes(_lung(np.random.default_rng(3)), 1, LABELS) is None


def test_confluent_lines_are_cut_into_boxes_one_line_wide() -> None:
    img = _lung(np.random.default_rng(4))
    img[PLEURA + 2 :, 20:100] = 170
    got = frame_boxes(img, 1, LABELS)
    assert got is not None
    widths = got[0][got[1] == 0][:, 2] - got[0][got[1] == 0][:, 0]
    assert len(widths) >= 6 and widths.max() <= 0.1 * img.shape[1] + 1
