"""The lung-finding detector: a plain conv chain to stride 8, one anchor-free YOLO-style head.

Plain Conv-BN-ReLU layers (no residual adds, no concatenations) keep the INT8 graph a chain of
fused QLinearConv nodes in ONNX Runtime and TensorRT, and make channel pruning exact. Dilated
layers at stride 8 give each cell a tall receptive field: a B-line runs from the pleura to the
bottom of the image, and the cell at its centre must see both ends.

The exported graph ends in the runtime's YOLO layout ``[1, 4+C, N]`` (cx, cy, w, h in input
pixels, then one sigmoid score per class), so ``edge/inference/tasks/detection.py`` reads it as it
reads an Ultralytics export.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tools.modelkit.layers import conv_chain

STRIDE = 8
LOG_WH_MAX = 5.0  # w, h <= 8 * e^5 ~ 1187 px: far beyond the 256 px input, only a numerical guard


@dataclass(frozen=True)
class Arch:
    """Channel widths and dilations; the pruned model is the same chain with fewer channels."""

    widths: tuple[int, ...] = (16, 32, 48, 64, 64, 64, 48)
    strides: tuple[int, ...] = (2, 2, 2, 1, 1, 1, 1)
    dilations: tuple[int, ...] = (1, 1, 1, 1, 2, 4, 1)


class Detector(nn.Module):
    def __init__(self, num_classes: int, arch: Arch | None = None) -> None:
        super().__init__()
        arch = arch or Arch()
        self.num_classes = num_classes
        self.body, c = conv_chain(arch.widths, arch.strides, arch.dilations)
        self.head = nn.Conv2d(c, 4 + num_classes, 1)
        # Rare positives: start every class score near 1 %, the usual focal-loss prior.
        bias = self.head.bias
        assert bias is not None
        nn.init.constant_(bias[4:], -4.6)
        nn.init.zeros_(bias[:4])

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 4+C, H/8, W/8]: tx, ty, log w, log h (in strides) and class logits per cell."""
        return self.head(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return decode(self.raw(x))


def grid(h: int, w: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell-centre coordinates in input pixels, each [H*W] in row-major order."""
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device),
        torch.arange(w, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return (xs.reshape(-1) + 0.5) * STRIDE, (ys.reshape(-1) + 0.5) * STRIDE


def boxes_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """[B, 4, N] cx, cy, w, h in input pixels from the first four raw channels."""
    b, _, h, w = raw.shape
    gx, gy = grid(h, w, raw.device)
    t = raw[:, :4].reshape(b, 4, h * w)
    cx = gx + t[:, 0] * STRIDE
    cy = gy + t[:, 1] * STRIDE
    wh = torch.exp(torch.clamp(t[:, 2:4], -4.0, LOG_WH_MAX)) * STRIDE
    return torch.cat([cx[:, None], cy[:, None], wh], dim=1)


def decode(raw: torch.Tensor) -> torch.Tensor:
    """[B, 4+C, N]: the runtime's YOLO layout."""
    b, _, h, w = raw.shape
    scores = torch.sigmoid(raw[:, 4:].reshape(b, -1, h * w))
    return torch.cat([boxes_from_raw(raw), scores], dim=1)
