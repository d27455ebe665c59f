"""Step 4, ``quantize``: INT8 with explicit Q/DQ nodes through ONNX Runtime static quantization.

Two files from one calibration set (frames of the training split only, phantom and real, half
each), both per-channel int8 weights and MinMax-calibrated activations:

- ``int8.onnx``, the portable one: symmetric int8 activations, float biases, what TensorRT's
  ONNX parser builds INT8 engines from (``tools.modelkit.quantize.tensorrt_qdq_problems`` checks).
- ``int8-cpu.onnx``, ONNX Runtime's CPU form: asymmetric uint8 activations, so each ReLU folds
  into its convolution (a symmetric scale keeps the ReLU as a float op between Q/DQ pairs, which
  costs more than INT8 saves on x86 without VNNI). The manifest lists it under ``cpu_files``.

If either loses more than the recipe allows on the phantom *validation* set, the first
convolution (it sees raw grey levels) and then also the head are kept in float, in turn; the
choice is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tools.lung_detector.dataset import Dataset
from tools.lung_detector.recipe import normalize
from tools.modelkit import quantize as qdq

OP_TYPES = ("Conv", "Relu")  # the box decode after the head stays float
FORMS: dict[str, dict[str, Any]] = {"int8": qdq.PORTABLE_FORM, "int8-cpu": qdq.CPU_FORM}


def calibration_images(ds: Dataset, n: int, seed: int, train_clips: set[str] | None = None) -> np.ndarray:
    """Half phantom training frames, half real frames of the clips the model trained on."""
    rng = np.random.default_rng(seed + 7)
    p = ds.phantom["train"].images
    r = ds.real.frames.images[ds.real.indices(train_clips)]
    n_real = min(n // 2, len(r))
    parts = [p[rng.choice(len(p), min(n - n_real, len(p)), replace=False)]]
    if n_real:
        parts.append(r[rng.choice(len(r), n_real, replace=False)])
    return np.concatenate(parts)


def _feeds(images: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    for im in images:
        yield {"images": normalize(im[None])}


def float_candidates(path: Path) -> list[list[str]]:
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    return [[], convs[:1], convs[:1] + convs[-1:]]


def _one_form(
    form: str,
    src: Path,
    dst: Path,
    calib: np.ndarray,
    ref: float,
    max_drop: float,
    val_map: Callable[[Path], float],
    log: Any,
) -> dict[str, Any]:
    def quantize_to(exclude: Sequence[str]) -> None:
        qdq.quantize_qdq(src, dst, _feeds(calib), exclude_nodes=exclude, op_types=OP_TYPES, **FORMS[form])

    def attempt(exclude: Sequence[str]) -> dict[str, Any]:
        quantize_to(exclude)
        m = val_map(dst)
        log(f"{form}, float: {exclude or 'none'}: val mAP50 {m:.4f} (fp32 {ref:.4f})")
        return {"float_nodes": exclude, "val_map50": m, "drop": ref - m}

    tried, best = qdq.keep_float_until_close(float_candidates(src), attempt, max_drop)
    if best is not tried[-1]:  # dst holds the last try: quantize the best one again
        quantize_to(best["float_nodes"])
    return {
        "file": dst.name,
        **qdq.describe_form(FORMS[form]),
        "tried": tried,
        "chosen_float_nodes": best["float_nodes"],
        "tensorrt_problems": qdq.tensorrt_qdq_problems(dst),
    }


def quantize(
    src: Path,
    work: Path,
    ds: Dataset,
    n_calib: int,
    seed: int,
    max_drop: float,
    val_map: Callable[[Path], float],
    log: Any = print,
    train_clips: set[str] | None = None,
) -> dict[str, Any]:
    """Write ``work/int8.onnx`` and ``work/int8-cpu.onnx`` from ``src``; report to ``work/int8.json``."""
    calib = calibration_images(ds, n_calib, seed, train_clips)
    ref = val_map(src)
    forms = {f: _one_form(f, src, work / f"{f}.onnx", calib, ref, max_drop, val_map, log) for f in FORMS}
    if forms["int8"]["tensorrt_problems"]:
        log(
            f"WARNING: the portable INT8 file is not TensorRT-buildable: {forms['int8']['tensorrt_problems']}"
        )
    report = {
        "format": "QDQ",
        "weights": "int8 per channel, symmetric",
        "calibration": "MinMax",
        "calibration_frames": len(calib),
        "calibration_source": "phantom training frames and real frames of the clips trained on, half each",
        "val_map50_fp32": ref,
        "forms": forms,
    }
    (work / "int8.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
