"""Tiny real ONNX stand-ins for the X-ray models (models/cxr-lungs, models/cxr-finding), built per test
with onnx.helper and run by ONNX Runtime through LoadedModel, with the manifests the contract names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.results import Finding
from tests.support.onnx_models import write_model_folder, yolo_model

XRAY = ["CR", "DX"]


def lungs_folder(folder: Path, boxes: list[Finding], frame_hw: tuple[int, int], size: int = 64) -> Path:
    """A lung-field detector (labels lung_right, lung_left; gray ``size`` x ``size`` frame input) that
    reports ``boxes`` (frame pixels of a ``frame_hw`` image, mapped into its stretched input)."""
    h, w = frame_hw
    cols = []
    for f in boxes:
        assert f.box is not None
        b = f.box
        sx, sy = size / w, size / h
        scores = [0.92, 0.04] if f.label == "lung_right" else [0.04, 0.92]
        cols.append([(b.x0 + b.x1) / 2 * sx, (b.y0 + b.y1) / 2 * sy, b.width * sx, b.height * sy, *scores])
    output = np.asarray(cols, np.float32).T[None] if cols else np.zeros((1, 6, 1), np.float32)
    manifest = {
        "name": "cxr-lungs",
        "task": "detection",
        "modality": XRAY,
        "input": {"name": "images", "shape": [1, 1, size, size], "color": "gray"},
        "outputs": [{"name": "output0", "kind": "yolo"}],
        "labels": ["lung_right", "lung_left"],
        "thresholds": {"min_confidence": 0.25, "review_below": 0.5},
    }
    return write_model_folder(folder, yolo_model(output, size, channels=1), manifest)


def finding_model(bias: tuple[float, float], maps: int = 2, size: int = 32) -> onnx.ModelProto:
    """Gray [1,1,size,size] -> logits [1,2] and heatmap [1,maps,4,4]: the heatmap is the input's 4x4
    block brightness times -1 (normal) and +1 (pneumonia), the logits its mean plus ``bias``, so the
    pneumonia map is hottest where the film is brightest (a CAM: features x the linear weights)."""
    k = size // 4
    weights = np.array([-1.0, 1.0, 0.5][:maps], np.float32).reshape(maps, 1, 1, 1)
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[k, k], strides=[k, k]),
        helper.make_node("Conv", ["pooled", "w"], ["heatmap"]),
        helper.make_node("GlobalAveragePool", ["heatmap"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Slice", ["f", "starts", "ends", "axes"], ["two"]),
        helper.make_node("Add", ["two", "b"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.asarray(bias, np.float32).reshape(1, 2), "b"),
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([2], np.int64), "ends"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cxr_finding",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, size, size])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, maps, 4, 4]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def finding_folder(folder: Path, bias: tuple[float, float], maps: int = 2, **extra: Any) -> Path:
    """A cxr-finding stand-in: normal / pneumonia with a heatmap output, review below 0.8."""
    manifest = {
        "name": "cxr-finding",
        "task": "classification",
        "modality": XRAY,
        "input": {"name": "input", "shape": [1, 1, 32, 32], "color": "gray"},
        "outputs": [{"name": "logits", "kind": "logits"}, {"name": "heatmap", "kind": "heatmap"}],
        "labels": ["normal", "pneumonia"],
        "ok_labels": ["normal"],
        "thresholds": {"review_below": 0.8},
        **extra,
    }
    return write_model_folder(folder, finding_model(bias, maps), manifest)
