"""Structured L1-norm filter pruning to a FLOPs target (Torch-Pruning), for any plain conv network.

Torch-Pruning traces layer dependencies, so a filter removed from one conv also leaves its BatchNorm
and the next conv's input; filters go in order of their L1 norm (Li et al. 2017, "Pruning Filters
for Efficient ConvNets"). Channel counts stay multiples of 8 (what the INT8 kernels of ONNX Runtime
and TensorRT prefer); ``ignored`` layers (a head whose outputs are labels or box channels) stay whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

STEPS = 20
MAX_RATIO = 0.8  # never remove more than this share of any layer's filters


def macs_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def conv_widths(model: nn.Module) -> list[int]:
    return [int(m.out_channels) for m in model.modules() if isinstance(m, nn.Conv2d)]


def prune_filters(
    model: nn.Module,
    example: torch.Tensor,
    ignored: Sequence[nn.Module],
    flops_reduction: float,
    log: Any = print,
) -> dict[str, Any]:
    """Prune ``model`` in place until its MACs fall by ``flops_reduction``; before/after figures."""
    model.eval()
    base_macs, base_params = macs_params(model, example)
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=MAX_RATIO,
        iterative_steps=STEPS,
        ignored_layers=list(ignored),
        round_to=8,
    )
    macs, params = base_macs, base_params
    for step in range(STEPS):
        pruner.step()
        macs, params = macs_params(model, example)
        log(f"prune step {step + 1}: MACs {macs / 1e6:.1f} M ({1 - macs / base_macs:.1%} removed)")
        if 1 - macs / base_macs >= flops_reduction:
            break
    return {
        "method": "L1-norm filter pruning (Torch-Pruning MagnitudePruner, p=1), channels rounded to 8",
        "before": {"macs": base_macs, "params": base_params},
        "after": {"macs": macs, "params": params},
        "flops_removed": 1 - macs / base_macs,
        "params_removed": 1 - params / base_params,
        "conv_widths_after": conv_widths(model),
    }
