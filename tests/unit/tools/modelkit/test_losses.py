"""The shared detection losses, against values worked by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (tools extra: scripts/setup.sh --tools)")

from tools.modelkit.losses import focal, giou  # noqa: E402


def test_giou_is_iou_for_nested_boxes_and_goes_negative_for_far_ones() -> None:
    gt = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 1.0, 1.0]])
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [3.0, 0.0, 4.0, 1.0]])
    g = giou(pred, gt)
    assert g[0].item() == pytest.approx(4 / 16, abs=1e-5), "inside: the enclosing box is the union"
    # apart: IoU 0, enclosing 4 x 1, union 2 -> 0 - (4 - 2) / 4
    assert g[1].item() == pytest.approx(-0.5, abs=1e-5)
    assert giou(gt, gt).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)


def test_focal_loss_weighs_down_easy_examples() -> None:
    target = torch.tensor([1.0, 0.0])
    easy = focal(torch.tensor([4.0, -4.0]), target).item()
    hard = focal(torch.tensor([-4.0, 4.0]), target).item()
    p = 1 / (1 + math.exp(-4.0))  # both easy terms: p_t = p, ce = -log p
    want_easy = 0.25 * -math.log(p) * (1 - p) ** 2 + 0.75 * -math.log(p) * (1 - p) ** 2
    assert easy == pytest.approx(want_easy, rel=1e-5)
    assert hard > 1000 * easy
