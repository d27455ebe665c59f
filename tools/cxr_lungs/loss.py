"""Which cells answer for which lung field, and the loss.

A cell is positive for a field when its centre lies within a quarter of the field's size of the
field's centre (at least 0.75 of a stride), so a field owns a few cells. Classes: sigmoid focal
loss (most cells are background); boxes: GIoU on the decoded box plus L1 on the log size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tools.cxr_lungs.model import STRIDE, boxes_from_raw
from tools.modelkit.losses import focal, giou

CENTRE_SHARE = 0.25
MIN_REACH = 0.75 * STRIDE


def assign(
    boxes: np.ndarray, present: np.ndarray, grid: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class targets [C, N], box targets xyxy [N, 4], positive mask [N]); box row i is class i."""
    n = grid * grid
    cls_t = np.zeros((num_classes, n), np.float32)
    box_t = np.zeros((n, 4), np.float32)
    pos = np.zeros(n, bool)
    gy, gx = np.divmod(np.arange(n), grid)
    cx, cy = (gx + 0.5) * STRIDE, (gy + 0.5) * STRIDE
    for c, ((x0, y0, x1, y1), ok) in enumerate(zip(boxes, present)):
        if not ok:
            continue
        w, h = x1 - x0, y1 - y0
        bx, by = (x0 + x1) / 2, (y0 + y1) / 2
        near = (np.abs(cx - bx) <= max(CENTRE_SHARE * w, MIN_REACH)) & (
            np.abs(cy - by) <= max(CENTRE_SHARE * h, MIN_REACH)
        )
        take = near & ~pos  # the two fields never share a cell: the first keeps it
        box_t[take] = (x0, y0, x1, y1)
        cls_t[c, take] = 1.0
        pos |= take
    return cls_t, box_t, pos


def loss(raw: torch.Tensor, cls_t: torch.Tensor, box_t: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    b, ch, h, w = raw.shape
    n_pos = max(1.0, float(pos.sum()))
    l_cls = focal(raw[:, 4:].reshape(b, ch - 4, h * w), cls_t) / n_pos
    pred = boxes_from_raw(raw).permute(0, 2, 1)[pos]
    gt = box_t[pos]
    if not len(gt):
        return l_cls + raw.sum() * 0.0
    c, s = pred[:, :2], pred[:, 2:] / 2
    l_box = (1 - giou(torch.cat([c - s, c + s], dim=1), gt)).sum() / n_pos
    gt_wh = (gt[:, 2:] - gt[:, :2]).clamp(min=1.0)
    l_wh = F.l1_loss(torch.log(pred[:, 2:].clamp(min=1e-3)), torch.log(gt_wh), reduction="sum") / n_pos
    return l_cls + 2.0 * l_box + 0.5 * l_wh
