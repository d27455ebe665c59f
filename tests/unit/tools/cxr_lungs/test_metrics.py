"""AP50 and best-box IoU on hand-made predictions."""

from __future__ import annotations

import numpy as np

from tools.cxr_lungs.metrics import Prediction, average_precision, best_iou, iou

TRUTH = [np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)] * 2


def pred(boxes: list[list[list[float]]], scores: list[list[float]]) -> Prediction:
    return Prediction(
        [np.array(b, np.float32).reshape(-1, 4) for b in boxes], [np.array(s, np.float32) for s in scores]
    )


def test_perfect_boxes_give_ap_one_and_iou_one() -> None:
    p = [pred([[[0, 0, 10, 10]], [[20, 0, 30, 10]]], [[0.9], [0.8]])] * 2
    assert average_precision(p, TRUTH, 0) == 1.0
    assert np.allclose(best_iou(p, TRUTH, 1), 1.0)


def test_a_confident_wrong_box_costs_precision_and_a_missing_box_iou() -> None:
    wrong_first = pred([[[50, 50, 60, 60], [0, 0, 10, 10]], []], [[0.9, 0.5], []])
    good = pred([[[0, 0, 10, 10]], [[20, 0, 30, 10]]], [[0.3], [0.8]])
    ap = average_precision([wrong_first, good], TRUTH, 0)
    assert 0.5 < ap < 1.0
    assert best_iou([wrong_first, good], TRUTH, 1).tolist() == [0.0, 1.0]
    assert iou(np.array([[0, 0, 10, 10]], np.float32), np.array([5, 0, 15, 10], np.float32))[0] == 1 / 3
