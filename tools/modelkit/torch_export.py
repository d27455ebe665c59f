"""ONNX export of a trained torch model, the one way every training tool here does it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

OPSET = 17


def export_static(
    model: nn.Module, path: Path, shape: tuple[int, ...], input_name: str, output_name: str
) -> None:
    """Export ``model`` in eval mode with a static input ``shape`` (batch 1, as the runtime feeds it).

    The TorchScript exporter (``dynamo=False``) needs no onnxscript and folds BatchNorm into the
    convolutions, so the graph holds only what runs.
    """
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.zeros(*shape),),
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=[input_name],
        output_names=[output_name],
        do_constant_folding=True,
    )
