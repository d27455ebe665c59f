"""Static INT8 quantization (explicit Q/DQ, per-channel weights) with ONNX Runtime.

Q/DQ is the format TensorRT builds INT8 engines from and ONNX Runtime runs on the CPU, so one
artifact serves both. Calibration frames come from the training clips only. The activation type
(and, if INT8 loses more than 1 macro-F1 point, which layers stay float) is chosen on the
validation clips, never on the held-out test clips.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType

from tools.modelkit.quantize import quantize_qdq
from tools.us_quality.data import ClipData
from tools.us_quality.evaluate import predict, scores, session
from tools.us_quality.preprocess import normalize
from tools.us_quality.samples import STREAM_CALIB, STREAM_VAL, grid_jobs, random_jobs, render
from tools.us_quality.train import FP32_FILE

INT8_FILE = "us-quality-int8.onnx"
MAX_DROP = 0.01  # macro-F1 (0..1) that INT8 may lose against FP32 on the validation clips


def _float_candidates(model_path: Path) -> list[list[str]]:
    """Nodes to keep in float, tried in turn: none, the first Conv (it sees the raw image, whose
    fine gray-level differences carry the gain classes), then also the final Gemm."""
    g = onnx.load(str(model_path)).graph
    convs = [n.name for n in g.node if n.op_type == "Conv"]
    gemms = [n.name for n in g.node if n.op_type in ("Gemm", "MatMul")]
    return [[], convs[:1], convs[:1] + gemms[-1:]]


def quantize_file(src: Path, dst: Path, calib: np.ndarray, activation: QuantType, exclude: list[str]) -> None:
    """The generic Q/DQ quantizer with ONNX Runtime's own defaults (asymmetric activations, INT32
    biases), which is how the published us-quality INT8 file was made; see docs/tensorrt.md for
    why TensorRT needs ``symmetric=True, quantize_bias=False`` instead."""
    quantize_qdq(
        src,
        dst,
        ({"input": normalize(s)[None, None]} for s in calib),
        per_channel=True,
        activation_type=activation,
        weight_type=QuantType.QInt8,
        symmetric=False,
        quantize_bias=True,
        exclude_nodes=exclude,
    )


def quantize(
    out_dir: Path,
    train_clips: list[ClipData],
    val_clips: list[ClipData],
    seed: int,
    n_calib: int = 300,
    val_frames_per_clip: int = 16,
    workers: int = 2,
) -> dict:
    fp32 = out_dir / FP32_FILE
    cjobs = random_jobs(train_clips, n_calib, seed, STREAM_CALIB, 80)
    calib = render(train_clips, cjobs, seed, STREAM_CALIB, workers)
    vjobs = grid_jobs(val_clips, val_frames_per_clip)
    x_val = render(val_clips, vjobs, seed, STREAM_VAL, workers)
    y_val = np.array([j.label for j in vjobs])
    f1_fp32 = float(scores(y_val, predict(session(fp32), x_val).argmax(1))["macro_f1"])  # type: ignore[arg-type]
    tried = []
    with tempfile.TemporaryDirectory() as tmp:
        best: tuple[float, Path, dict] | None = None
        for exclude in _float_candidates(fp32):
            for act in (QuantType.QUInt8, QuantType.QInt8):
                cand = Path(tmp) / f"{act.name}-{len(exclude)}.onnx"
                quantize_file(fp32, cand, calib, act, exclude)
                f1 = float(scores(y_val, predict(session(cand), x_val).argmax(1))["macro_f1"])  # type: ignore[arg-type]
                info = {"activation": act.name, "excluded_nodes": exclude, "val_macro_f1": f1}
                tried.append(info)
                print(
                    f"int8 {act.name} excluding {exclude or 'nothing'}: val macro-F1 {f1:.4f} "
                    f"(fp32 {f1_fp32:.4f})",
                    flush=True,
                )
                if best is None or f1 > best[0]:
                    best = (f1, cand, info)
            if best is not None and f1_fp32 - best[0] <= MAX_DROP:
                break  # good enough without keeping layers in float
        assert best is not None
        shutil.copyfile(best[1], out_dir / INT8_FILE)
    result = {
        "chosen": best[2],
        "fp32_val_macro_f1": f1_fp32,
        "tried": tried,
        "calibration_samples": len(calib),
        "calibration_split": "train",
        "method": "onnxruntime quantize_static, QDQ, per-channel QInt8 weights, MinMax calibration",
    }
    (out_dir / "quantization.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
