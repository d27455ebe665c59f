"""Detection metrics, checked against hand-worked cases (clip figures: tools.modelkit.grouped)."""

from __future__ import annotations

import numpy as np
import pytest

from tools.lung_detector.dataset import BoxSet
from tools.lung_detector.evaluate import Detections, average_precision, iou_matrix, match


def _boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    a = _boxes((0, 0, 10, 10))
    b = _boxes((0, 0, 10, 10), (20, 20, 30, 30), (5, 0, 15, 10))
    assert iou_matrix(a, b)[0].tolist() == pytest.approx([1.0, 0.0, 1 / 3])


def test_average_precision_of_a_perfect_and_a_half_right_ranking() -> None:
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    # Ranked: hit, miss, hit over 2 ground truths -> recall .5 at p 1, recall 1 at p 2/3.
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(
        0.5 * 1.0 + 0.5 * 2 / 3
    )


def test_match_counts_one_hit_per_ground_truth_and_ignores_other_classes() -> None:
    truth = BoxSet(
        images=np.zeros((1, 8, 8), np.uint8),
        boxes=_boxes((0, 0, 10, 10), (50, 50, 60, 60)),
        classes=np.array([0, 1]),
        offsets=np.array([0, 2]),
    )
    dets = [
        Detections(
            _boxes((0, 0, 10, 10), (1, 1, 10, 10), (50, 50, 60, 60)),
            np.array([0.9, 0.8, 0.7], np.float32),
            np.array([0, 0, 0]),
        )
    ]
    scores, tps, n_gt = match(dets, truth, cls=0)
    assert n_gt == 1
    assert tps.tolist() == [True, False, False], "the duplicate is a false positive, so is the wrong place"
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
