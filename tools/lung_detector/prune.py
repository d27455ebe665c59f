"""Step 3, ``prune``: structured L1-norm filter pruning to a FLOPs target, then fine-tuning.

Torch-Pruning (``torch-pruning`` on PyPI, VainF/Torch-Pruning) traces the layer dependencies, so
a filter removed from one conv also leaves its BatchNorm and the next conv's input; filters go in
order of their L1 norm (Li et al. 2017, "Pruning Filters for Efficient ConvNets"). Channel counts
are kept to multiples of 8, which the INT8 kernels of ONNX Runtime and TensorRT prefer. The head
is left whole: its outputs are the box and class channels. Pruning steps continue until at least
the recipe's share of FLOPs is gone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp

from tools.lung_detector.model import Arch, Detector

PRUNE_STEPS = 20
MAX_RATIO = 0.8  # never remove more than this share of any layer's filters


def flops_params(model: torch.nn.Module, size: int) -> tuple[int, int]:
    """(multiply-accumulates, parameters) for one 1x1xSxS input, as Torch-Pruning counts them."""
    macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, 1, size, size))
    return int(macs), int(params)


def widths(model: Detector) -> tuple[int, ...]:
    return tuple(int(block[0].out_channels) for block in model.body)  # type: ignore[index]


def prune_to(model: Detector, size: int, flops_reduction: float, log: Any = print) -> dict[str, Any]:
    """Prune ``model`` in place until FLOPs fall by ``flops_reduction``; returns before/after figures."""
    example = torch.zeros(1, 1, size, size)
    base_macs, base_params = flops_params(model, size)
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),  # L1 norm of each filter
        pruning_ratio=MAX_RATIO,
        iterative_steps=PRUNE_STEPS,
        ignored_layers=[model.head],
        round_to=8,
    )
    macs, params = base_macs, base_params
    for step in range(PRUNE_STEPS):
        pruner.step()
        macs, params = flops_params(model, size)
        log(
            f"prune step {step + 1}: widths {widths(model)} MACs {macs / 1e6:.1f} M "
            f"({1 - macs / base_macs:.1%} removed)"
        )
        if 1 - macs / base_macs >= flops_reduction:
            break
    return {
        "method": "L1-norm filter pruning (Torch-Pruning MagnitudePruner, p=1), channels rounded to 8",
        "before": {"macs": base_macs, "params": base_params},
        "after": {"macs": macs, "params": params},
        "flops_removed": 1 - macs / base_macs,
        "params_removed": 1 - params / base_params,
        "widths_after": list(widths(model)),
    }


def rebuild(state: dict[str, torch.Tensor], num_classes: int, chain_widths: tuple[int, ...]) -> Detector:
    """A pruned model from its state dict: the same chain with the pruned widths."""
    model = Detector(num_classes, Arch(widths=chain_widths))
    model.load_state_dict(state)
    return model.eval()
