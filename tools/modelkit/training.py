"""The torch side every recipe's training shares: one seeding, one export, one parity check.

``set_determinism`` makes a run repeat bit for bit for a seed and a thread count. Every trained
model is exported the same way (``export_static``) and checked the same way (``export_checked``):
the exported graph run by ONNX Runtime on the CPU against the torch model on the same inputs, the
largest absolute difference returned so the training log can quote it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tools.modelkit.sessions import cpu_session

OPSET = 17


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch and numpy's global state, fix the thread count and refuse nondeterministic kernels.

    The recipes draw their own randomness from seeded ``numpy.random.Generator`` objects; the global
    numpy seed only covers libraries that use the global state. The thread count is part of the
    result: a float sum split over other threads rounds differently.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


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


def export_checked(
    model: nn.Module,
    path: Path,
    shape: tuple[int, ...],
    input_name: str,
    output_name: str,
    check: Iterable[np.ndarray],
) -> float:
    """``export_static``, then the max |ONNX Runtime - torch| over the float32 tensors ``check``
    (each of ``shape``). An output of another shape than torch's fails at once."""
    export_static(model, path, shape, input_name, output_name)
    sess = cpu_session(path)
    diff = 0.0
    with torch.no_grad():
        for x in check:
            want = model(torch.from_numpy(x)).numpy()
            got = sess.run([output_name], {input_name: x})[0]
            if got.shape != want.shape:
                raise ValueError(f"{path}: ONNX output {list(got.shape)}, torch {list(want.shape)}")
            diff = max(diff, float(np.abs(got - want).max()))
    return diff
