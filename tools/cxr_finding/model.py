"""The finding classifier: a plain Conv-BN-ReLU chain to stride 16 (7x7 cells on the 112 px input),
then the class-activation map as a bias-free 1x1 convolution and the logits as its spatial mean plus
a bias. Logits are therefore exactly the global-average-pooled features times the linear weights
(Zhou et al. 2016, "Learning Deep Features for Discriminative Localization"), and the heatmap output
is the CAM itself: ``[1, C, 7, 7]``, one map per label, before any normalisation, covering the input.
"""

from __future__ import annotations

import torch
from torch import nn

from tools.modelkit.layers import conv_chain

WIDTHS = (16, 32, 48, 64, 96, 96)
STRIDES = (2, 2, 2, 2, 1, 1)
DILATIONS = (1, 1, 1, 1, 2, 1)


class Classifier(nn.Module):
    def __init__(self, num_classes: int = 2, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.body, c = conv_chain(widths, STRIDES, DILATIONS)
        self.cam = nn.Conv2d(c, num_classes, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.drop = nn.Dropout2d(0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, C], heatmap [B, C, h, w])."""
        heatmap = self.cam(self.drop(self.body(x)))
        return heatmap.mean(dim=(2, 3)) + self.bias, heatmap
