"""The plain Conv-BN-ReLU chain the recipes' networks are built from.

No residual adds: the INT8 graph stays a chain of fused convolutions, and filter pruning stays exact
(each layer's output channels feed only the next layer).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def conv_bn(c_in: int, c_out: int, stride: int, dilation: int) -> nn.Sequential:
    """3x3 convolution (padding keeps the size at stride 1), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def conv_chain(
    widths: Sequence[int], strides: Sequence[int], dilations: Sequence[int], c_in: int = 1
) -> tuple[nn.Sequential, int]:
    """One ``conv_bn`` per width; returns the chain and its output channels."""
    if not len(widths) == len(strides) == len(dilations):
        raise ValueError(f"widths, strides, dilations differ in length: {widths}, {strides}, {dilations}")
    layers: list[nn.Module] = []
    c = c_in
    for w, s, d in zip(widths, strides, dilations):
        layers.append(conv_bn(c, w, s, d))
        c = w
    return nn.Sequential(*layers), c
