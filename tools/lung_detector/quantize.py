"""Step 4, ``quantize``: INT8 with explicit Q/DQ nodes through ONNX Runtime static quantization.

Weights are per-channel symmetric int8, activations uint8 with MinMax calibration on frames from
the training split only (phantom and real, half each). Only convolutions are quantized: the decode
at the end of the graph (exp, sigmoid, the grid) stays float, as it is cheap and its outputs are
pixel coordinates. If INT8 loses more than the recipe allows on the phantom *validation* set,
the first convolution (it sees raw grey levels) and then the head are kept in float, in turn; the
choice is recorded. Q/DQ is what TensorRT builds INT8 engines from, so one file serves both.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from tools.lung_detector.dataset import Dataset


class _Frames(CalibrationDataReader):
    def __init__(self, images: np.ndarray, name: str) -> None:
        self._it = iter([{name: ((im.astype(np.float32) / 255.0 - 0.5) / 0.25)[None, None]} for im in images])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def calibration_images(ds: Dataset, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7)
    p = ds.phantom["train"].images
    r = ds.real_train.images
    n_real = min(n // 2, len(r))
    parts = [p[rng.choice(len(p), min(n - n_real, len(p)), replace=False)]]
    if n_real:
        parts.append(r[rng.choice(len(r), n_real, replace=False)])
    return np.concatenate(parts)


def quantize_file(src: Path, dst: Path, calib: np.ndarray, exclude: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            _Frames(calib, "images"),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude,
        )


def float_candidates(path: Path) -> list[list[str]]:
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    return [[], convs[:1], convs[:1] + convs[-1:]]


def quantize(
    src: Path,
    dst: Path,
    ds: Dataset,
    n_calib: int,
    seed: int,
    max_drop: float,
    val_map: Callable[[Path], float],
    log: Any = print,
) -> dict[str, Any]:
    """Quantize ``src`` into ``dst``; try float fallbacks until the val mAP50 drop is within bounds."""
    calib = calibration_images(ds, n_calib, seed)
    ref = val_map(src)
    tried = []
    for exclude in float_candidates(src):
        quantize_file(src, dst, calib, exclude)
        m = val_map(dst)
        tried.append({"float_nodes": exclude, "val_map50": m, "drop": ref - m})
        log(f"int8 with {exclude or 'every conv'} quantized: val mAP50 {m:.4f} (fp32 {ref:.4f})")
        if ref - m <= max_drop:
            break
    best = min(tried, key=lambda t: t["drop"])
    if best is not tried[-1]:
        quantize_file(src, dst, calib, best["float_nodes"])
    report = {
        "format": "QDQ",
        "weights": "int8 per channel, symmetric",
        "activations": "uint8, MinMax calibration",
        "op_types": ["Conv"],
        "calibration_frames": len(calib),
        "calibration_source": "training split only: phantom train frames and real train-clip frames, half each",
        "val_map50_fp32": ref,
        "tried": tried,
        "chosen_float_nodes": best["float_nodes"],
    }
    dst.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return report
