"""The frame-quality CNN: six 3x3 conv layers with BatchNorm and ReLU, global average pool, linear.

Small on purpose (~110k parameters, ~25 MFLOPs at 128x128): quality is a property of the whole
frame's brightness, texture and sector layout, not of fine detail, and it must run on every
frame of a handheld probe on a CPU. Global pooling gives a receptive field over the whole sector.
"""

from __future__ import annotations

import torch
from torch import nn

CHANNELS: tuple[tuple[int, int], ...] = ((16, 2), (24, 2), (32, 1), (48, 2), (64, 2), (96, 2))


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class QualityNet(nn.Module):
    def __init__(self, n_classes: int = 5, dropout: float = 0.2) -> None:
        super().__init__()
        layers, cin = [], 1
        for cout, stride in CHANNELS:
            layers.append(_block(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.drop(x))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
