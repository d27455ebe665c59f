"""Detection losses the recipes share: sigmoid focal loss and generalised IoU."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Summed sigmoid focal loss (Lin et al. 2017)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * ce * (1 - p_t) ** gamma).sum()


def giou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """GIoU of xyxy boxes [K, 4], per box (Rezatofighi et al. 2019)."""
    ix0, iy0 = torch.maximum(pred[:, 0], gt[:, 0]), torch.maximum(pred[:, 1], gt[:, 1])
    ix1, iy1 = torch.minimum(pred[:, 2], gt[:, 2]), torch.minimum(pred[:, 3], gt[:, 3])
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_g = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    union = area_p + area_g - inter + 1e-6
    ex0, ey0 = torch.minimum(pred[:, 0], gt[:, 0]), torch.minimum(pred[:, 1], gt[:, 1])
    ex1, ey1 = torch.maximum(pred[:, 2], gt[:, 2]), torch.maximum(pred[:, 3], gt[:, 3])
    enclose = (ex1 - ex0) * (ey1 - ey0) + 1e-6
    return inter / union - (enclose - union) / enclose
