"""Step ``quantize``: two INT8 files with explicit Q/DQ nodes from one calibration set.

Like the lung detector (``tools/lung_detector/quantize.py``), both have per-channel int8 weights
and MinMax-calibrated activations, through ``tools.modelkit.quantize.quantize_qdq``:

- ``us-quality-int8.onnx``, the portable one (manifest ``files.int8``): symmetric int8
  activations, float biases, what TensorRT's ONNX parser builds INT8 engines from
  (``tensorrt_qdq_problems`` must find nothing).
- ``us-quality-int8-cpu.onnx``, ONNX Runtime's CPU form (manifest ``cpu_files.int8``, what the
  runtime loads on the CPU): asymmetric uint8 activations and int32 biases, so each ReLU folds
  into its convolution.

Calibration frames are rendered training frames (another stream than training's) and phantom
training scenes. If a form loses more than ``MAX_DROP`` of the check score (mean of the macro-F1 on
freshly rendered samples of the training clips and on the phantom validation scenes), the first
Conv and then also the final Gemm are kept in float, in turn; the choice is recorded. The published
model has no held-out clips (every source trains it): how INT8 does on sources it has not seen is
measured per fold by ``grouped_cv``, and the publish gate reads those figures.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import QuantType

from tools.modelkit import quantize as qdq
from tools.modelkit.sessions import cpu_session
from tools.us_quality.data import ClipData
from tools.us_quality.evaluate import predict, scores
from tools.us_quality.phantom import FRAMES_PER_SCENE, PhantomSet, phantom_set
from tools.us_quality.preprocess import normalize
from tools.us_quality.samples import STREAM_CALIB, STREAM_VAL, class_jobs, render
from tools.us_quality.train import FP32_FILE

INT8_FILE = "us-quality-int8.onnx"
INT8_CPU_FILE = "us-quality-int8-cpu.onnx"
MAX_DROP = 0.01  # validation score (0..1) that INT8 may lose against FP32
FORMS: dict[str, dict[str, Any]] = {INT8_FILE: qdq.PORTABLE_FORM, INT8_CPU_FILE: qdq.CPU_FORM}
PHANTOM_CALIB_SHARE = 0.3  # of the calibration frames, as in training batches


def _float_candidates(model_path: Path) -> list[list[str]]:
    """Nodes to keep in float, tried in turn: none, the first Conv (it sees the raw image, whose
    fine gray-level differences carry the gain classes), then also the final Gemm."""
    g = onnx.load(str(model_path)).graph
    convs = [n.name for n in g.node if n.op_type == "Conv"]
    gemms = [n.name for n in g.node if n.op_type in ("Gemm", "MatMul")]
    return [[], convs[:1], convs[:1] + gemms[-1:]]


def quantize_file(src: Path, dst: Path, calib: np.ndarray, form: str, exclude: list[str]) -> None:
    qdq.quantize_qdq(
        src,
        dst,
        ({"input": normalize(s)[None, None]} for s in calib),
        per_channel=True,
        weight_type=QuantType.QInt8,
        exclude_nodes=exclude,
        **FORMS[form],
    )


def _val_score(path: Path, x_val: np.ndarray, y_val: np.ndarray, p_val: PhantomSet) -> tuple[float, float]:
    sess = cpu_session(path)
    real = float(scores(y_val, predict(sess, x_val).argmax(1))["macro_f1"])  # type: ignore[arg-type]
    if not len(p_val):
        return real, real
    ph = float(scores(p_val.labels, predict(sess, p_val.images).argmax(1))["macro_f1"])  # type: ignore[arg-type]
    return real, ph


def quantize(
    out_dir: Path,
    clips: list[ClipData],
    seed: int,
    n_calib: int = 300,
    val_frames_per_clip: int = 4,
    workers: int = 2,
    phantom_val_scenes: int = 200,
) -> dict:
    fp32 = out_dir / FP32_FILE
    n_phantom = round(n_calib * PHANTOM_CALIB_SHARE)
    cjobs = class_jobs(clips, 4, 1)
    pick = np.random.default_rng([seed, STREAM_CALIB]).permutation(len(cjobs))[: n_calib - n_phantom]
    cjobs = [cjobs[i] for i in sorted(pick)]
    p_scenes = max(1, (n_phantom + FRAMES_PER_SCENE - 1) // FRAMES_PER_SCENE)
    p_calib = phantom_set("train", p_scenes, seed, workers)
    x_calib = render(clips, cjobs, seed, STREAM_CALIB, workers)
    calib = np.concatenate([x_calib, p_calib.images[:n_phantom]])
    vjobs = class_jobs(clips, val_frames_per_clip, 1)
    x_val = render(clips, vjobs, seed, STREAM_VAL, workers)
    y_val = np.array([j.label for j in vjobs])
    p_val = phantom_set("val", phantom_val_scenes, seed, workers)
    ref_real, ref_ph = _val_score(fp32, x_val, y_val, p_val)
    ref = (ref_real + ref_ph) / 2
    forms: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for form in FORMS:

            def attempt(exclude: Sequence[str], form: str = form) -> dict[str, Any]:
                cand = Path(tmp) / f"{len(exclude)}-{form}"  # the candidates grow by one node each
                quantize_file(fp32, cand, calib, form, list(exclude))
                real, ph = _val_score(cand, x_val, y_val, p_val)
                print(
                    f"{form} excluding {exclude or 'nothing'}: val macro-F1 {real:.4f} "
                    f"(fp32 {ref_real:.4f}), "
                    f"phantom val {ph:.4f} (fp32 {ref_ph:.4f})",
                    flush=True,
                )
                return {
                    "excluded_nodes": exclude,
                    "val_macro_f1": real,
                    "phantom_val_macro_f1": ph,
                    "drop": ref - (real + ph) / 2,
                    "path": cand,
                }

            tried, best = qdq.keep_float_until_close(_float_candidates(fp32), attempt, MAX_DROP)
            shutil.copyfile(best["path"], out_dir / form)
            forms[form] = {
                **qdq.describe_form(FORMS[form]),
                "chosen": {k: v for k, v in best.items() if k != "path"},
                "tried": [{k: v for k, v in t.items() if k != "path"} for t in tried],
                "tensorrt_problems": qdq.tensorrt_qdq_problems(out_dir / form),
            }
    if forms[INT8_FILE]["tensorrt_problems"]:
        print(f"WARNING: {INT8_FILE} is not TensorRT-buildable: {forms[INT8_FILE]['tensorrt_problems']}")
    result = {
        "forms": forms,
        "portable": INT8_FILE,
        "cpu": INT8_CPU_FILE,
        "fp32_val_macro_f1": ref_real,
        "fp32_phantom_val_macro_f1": ref_ph,
        "calibration_samples": len(calib),
        "calibration_phantom_samples": int(min(n_phantom, len(p_calib))),
        "calibration_split": "rendered frames of the training clips (own stream) and phantom training scenes",
        "check_samples": len(x_val),
        "method": "onnxruntime quant_pre_process + quantize_static via tools.modelkit.quantize.quantize_qdq, "
        "QDQ, per-channel symmetric QInt8 weights, MinMax calibration",
    }
    (out_dir / "quantization.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
