"""Tiny real models for the toolchain tests, built here once instead of in each test module.

``conv_classifier`` is an ONNX classifier built with onnx.helper (no torch needed);
``torch_classifier`` is its torch counterpart for the training helpers' tests (imports torch
when called, so modules that only need the ONNX one run without the tools extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from torch import nn


def conv_classifier(size: int = 32, channels: int = 1, classes: int = 3, seed: int = 0) -> onnx.ModelProto:
    """Image [1,C,size,size] -> Conv 3x3 (8) -> Relu -> GlobalAveragePool -> Gemm -> logits [1,classes].

    The input height and width are symbolic, as in many exported models.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (8, channels, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 8).astype(np.float32)
    fc = rng.normal(0, 1.0, (classes, 8)).astype(np.float32)
    fcb = np.zeros(classes, np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv0"),
        helper.make_node("Relu", ["c"], ["r"], name="relu0"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1, name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_conv_cls",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fc, "fc"), (fcb, "fcb"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def torch_classifier(classes: int = 3, channels: int = 1) -> nn.Module:
    """Conv 3x3 (8) with BatchNorm and ReLU, global average pool, linear: the recipes' shape, tiny.

    Weights come from torch's global generator: seed it first for a repeatable model.
    """
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )
