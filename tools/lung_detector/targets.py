"""Which cells answer for which box, and the losses (anchor-free, one stride).

A cell is positive for a box when its centre lies near the box centre: within a quarter of the
box's size, and never less than 0.75 of a stride, so a thin box (a pleural line 5 px high, a
B-line 8 px wide) still owns a column or a row of cells. Where boxes compete, the smaller wins.
Classification uses the focal loss (most cells are background), boxes a GIoU loss on the decoded
box plus L1 on the log size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tools.lung_detector.model import STRIDE, boxes_from_raw
from tools.modelkit.losses import focal, giou

CENTRE_SHARE = 0.25
MIN_REACH = 0.75 * STRIDE


def assign(
    boxes: np.ndarray, classes: np.ndarray, grid_hw: tuple[int, int], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class targets [C, N], box targets xyxy [N, 4], positive mask [N]) for one image."""
    gh, gw = grid_hw
    n = gh * gw
    cls_t = np.zeros((num_classes, n), np.float32)
    box_t = np.zeros((n, 4), np.float32)
    pos = np.zeros(n, bool)
    if len(boxes) == 0:
        return cls_t, box_t, pos
    gy, gx = np.divmod(np.arange(n), gw)
    cx, cy = (gx + 0.5) * STRIDE, (gy + 0.5) * STRIDE
    area_best = np.full(n, np.inf, np.float32)
    for (x0, y0, x1, y1), c in zip(boxes, classes):
        w, h = x1 - x0, y1 - y0
        bx, by = (x0 + x1) / 2, (y0 + y1) / 2
        near = (np.abs(cx - bx) <= max(CENTRE_SHARE * w, MIN_REACH)) & (
            np.abs(cy - by) <= max(CENTRE_SHARE * h, MIN_REACH)
        )
        take = near & (w * h < area_best)
        area_best[take] = w * h
        box_t[take] = (x0, y0, x1, y1)
        pos |= take
        cls_t[:, take] = 0.0
        cls_t[c, take] = 1.0
    return cls_t, box_t, pos


def batch_targets(
    boxes: Sequence[np.ndarray], classes: Sequence[np.ndarray], grid_hw: tuple[int, int], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    parts = [assign(b, c, grid_hw, num_classes) for b, c in zip(boxes, classes)]
    return (
        torch.from_numpy(np.stack([p[0] for p in parts])),
        torch.from_numpy(np.stack([p[1] for p in parts])),
        torch.from_numpy(np.stack([p[2] for p in parts])),
    )


def giou_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Summed 1 - GIoU of xyxy boxes [K, 4]."""
    return (1 - giou(pred, gt)).sum()


def xyxy(cxcywh: torch.Tensor) -> torch.Tensor:
    """[K, 4] cx, cy, w, h -> x0, y0, x1, y1."""
    c, s = cxcywh[:, :2], cxcywh[:, 2:] / 2
    return torch.cat([c - s, c + s], dim=1)


def detection_loss(
    raw: torch.Tensor, cls_t: torch.Tensor, box_t: torch.Tensor, pos: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss on images with full box labels (the phantom)."""
    b, ch, h, w = raw.shape
    logits = raw[:, 4:].reshape(b, ch - 4, h * w)
    n_pos = max(1.0, float(pos.sum()))
    l_cls = focal(logits, cls_t) / n_pos
    pred = boxes_from_raw(raw).permute(0, 2, 1)[pos]  # [K, 4] cx cy w h
    gt = box_t[pos]
    if len(gt):
        l_box = giou_loss(xyxy(pred), gt) / n_pos
        gt_wh = (gt[:, 2:] - gt[:, :2]).clamp(min=1.0)
        l_wh = F.l1_loss(torch.log(pred[:, 2:].clamp(min=1e-3)), torch.log(gt_wh), reduction="sum") / n_pos
    else:
        l_box = l_wh = raw.sum() * 0.0
    total = l_cls + 2.0 * l_box + 0.5 * l_wh
    return total, {"cls": float(l_cls), "box": float(l_box), "wh": float(l_wh)}
