"""The lung-field detector: a plain Conv-BN-ReLU chain to stride 16, one anchor-free YOLO-style head.

A lung field fills a third to a half of the film, so each cell must see most of it: four stride-2
layers then a dilated layer give a receptive field (159 px) wider than the 128 px input. A plain
chain (no residual adds) keeps the INT8 graph a chain of fused convolutions and pruning exact.
The exported graph ends in the runtime's YOLO layout ``[1, 4+C, N]`` (cx, cy, w, h in input pixels,
then one sigmoid score per class), which ``edge/inference/tasks/detection.py`` reads.
"""

from __future__ import annotations

import torch
from torch import nn

from tools.modelkit.layers import conv_chain

STRIDE = 16
WIDTHS = (16, 32, 48, 64, 64, 64, 64)
STRIDES = (2, 2, 2, 2, 1, 1, 1)
DILATIONS = (1, 1, 1, 1, 1, 2, 1)


class Detector(nn.Module):
    def __init__(self, num_classes: int = 2, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.body, c = conv_chain(widths, STRIDES, DILATIONS)
        self.head = nn.Conv2d(c, 4 + num_classes, 1)
        bias = self.head.bias
        assert bias is not None
        nn.init.constant_(bias[4:], -3.0)  # few positive cells: start scores near 5 %
        nn.init.zeros_(bias[:4])

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 4+C, H/16, W/16]: tx, ty, log w, log h (in strides) and class logits per cell."""
        return self.head(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return decode(self.raw(x))


def boxes_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """[B, 4, N] cx, cy, w, h in input pixels."""
    b, _, h, w = raw.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    gx, gy = (xs.reshape(-1) + 0.5) * STRIDE, (ys.reshape(-1) + 0.5) * STRIDE
    t = raw[:, :4].reshape(b, 4, h * w)
    cx = gx + t[:, 0] * STRIDE
    cy = gy + t[:, 1] * STRIDE
    wh = torch.exp(torch.clamp(t[:, 2:4], -3.0, 3.0)) * STRIDE
    return torch.cat([cx[:, None], cy[:, None], wh], dim=1)


def decode(raw: torch.Tensor) -> torch.Tensor:
    b, _, h, w = raw.shape
    scores = torch.sigmoid(raw[:, 4:].reshape(b, -1, h * w))
    return torch.cat([boxes_from_raw(raw), scores], dim=1)


def widths_of(model: Detector) -> tuple[int, ...]:
    return tuple(int(block[0].out_channels) for block in model.body)  # type: ignore[index]
