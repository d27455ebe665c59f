"""Tiny real ONNX models built with onnx.helper, and model folders with manifests, for the inference,
runtime and toolchain tests: small enough to build per test, real enough for ONNX Runtime."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def yolo_model(output: np.ndarray, size: int = 64, channels: int = 3) -> onnx.ModelProto:
    """A model whose output is ``output`` (shape [1, 4+C, N]) for any input of [1,channels,size,size].

    The input still flows through the graph (times zero) so the session really reads it.
    """
    const = numpy_helper.from_array(output.astype(np.float32), "const")
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["const", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        [const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def classifier_model(num_classes: int, size: int = 32, bias: np.ndarray | None = None) -> onnx.ModelProto:
    """Gray [1,1,size,size] -> logits [1,C]: mean brightness times a weight, plus a bias."""
    w = np.linspace(-2, 2, num_classes, dtype=np.float32).reshape(1, num_classes)
    b = np.zeros(num_classes, np.float32) if bias is None else bias.astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cls",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_model_folder(folder: Path, model: onnx.ModelProto, manifest: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, path)
    manifest = {
        "schema_version": 1,
        "version": "0.0.1",
        "files": {"fp32": {"path": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}},
        "default_precision": "fp32",
        **manifest,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def classifier_folder(
    folder: Path, labels: tuple[str, ...] = ("ok", "bad"), name: str = "tiny-cls", **extra: Any
) -> Path:
    """A classification model folder (``classifier_model``, gray 32x32 input), first label ok."""
    return write_model_folder(
        folder,
        classifier_model(len(labels)),
        {
            "name": name,
            "task": "classification",
            "input": {"name": "input", "shape": [1, 1, 32, 32], "color": "gray"},
            "outputs": [{"name": "logits", "kind": "logits"}],
            "labels": list(labels),
            "ok_labels": [labels[0]],
            **extra,
        },
    )
