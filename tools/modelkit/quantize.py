"""Static INT8 quantization to explicit Q/DQ ONNX, for ONNX Runtime and TensorRT alike.

``quantize_qdq`` is the function other tools call: ONNX Runtime's ``quant_pre_process`` then
``quantize_static`` in QDQ format with per-channel INT8 weights. Its defaults make a file that
TensorRT can build (docs/tensorrt.md): symmetric INT8 activations and weights (TensorRT's
``IQuantizeLayer``/``IDequantizeLayer`` take only zero points of 0) and float biases (TensorRT has
no INT32 dequantize for a Conv/Gemm bias). ``quantize_folder`` calibrates on frames preprocessed by
the runtime's own ``Preprocessor``, holds some back to measure FP32 vs INT8 agreement, and adds
the INT8 file to the folder's manifest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge.inference.base import SessionOptions
from edge.inference.manifest import InputSpec, load_manifest
from edge.inference.model import LoadedModel
from edge.inference.preprocess import Preprocessor
from tools.modelkit.compare import compare_models
from tools.modelkit.manifest import add_file

# The two INT8 forms a recipe publishes from one calibration (options of ``quantize_qdq``).
# Portable: what TensorRT's ONNX parser builds INT8 engines from (the manifest's ``files.int8``).
PORTABLE_FORM: dict[str, Any] = {
    "symmetric": True,
    "activation_type": QuantType.QInt8,
    "quantize_bias": False,
}
# ONNX Runtime's CPU form: asymmetric uint8 activations let each ReLU fold into its convolution
# (the manifest's ``cpu_files.int8``, what the runtime loads when ONNX Runtime runs on the CPU).
CPU_FORM: dict[str, Any] = {"symmetric": False, "activation_type": QuantType.QUInt8, "quantize_bias": True}


class _Feeds(CalibrationDataReader):
    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def calibration_feeds(spec: InputSpec, images: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """``{input name: tensor}`` per image, preprocessed exactly as the runtime does."""
    pre = Preprocessor(spec)
    for image in images:
        yield {spec.name: pre(image)[0].copy()}  # the Preprocessor reuses its buffer


def quantize_qdq(
    src: Path,
    dst: Path,
    calib: Iterable[dict[str, np.ndarray]],
    *,
    per_channel: bool = True,
    exclude_nodes: Sequence[str] = (),
    activation_type: QuantType = QuantType.QInt8,
    weight_type: QuantType = QuantType.QInt8,
    symmetric: bool = True,
    quantize_bias: bool = False,
    calibrate_method: CalibrationMethod = CalibrationMethod.MinMax,
    reduce_range: bool = False,
    op_types: Sequence[str] = (),
) -> Path:
    """Quantize ``src`` into ``dst`` (QDQ) calibrated on ``calib``; returns ``dst``.

    ``symmetric=False, quantize_bias=True`` gives ONNX Runtime's defaults (asymmetric activations,
    INT32 biases): fine for ONNX Runtime, refused by TensorRT's ONNX parser. ``reduce_range``
    (7-bit weights) avoids the saturation of ONNX Runtime's u8s8 kernels on x86 CPUs without VNNI.
    ``op_types`` limits quantization to those operator types (default: all ONNX Runtime can); a
    detector's box decode must stay float, or pixel coordinates and scores share one 8-bit scale.
    """
    extra: dict[str, Any] = {}
    if symmetric:
        extra.update(ActivationSymmetric=True, WeightSymmetric=True)
    if not quantize_bias:
        extra["QuantizeBias"] = False
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            _Feeds(calib),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            weight_type=weight_type,
            activation_type=activation_type,
            calibrate_method=calibrate_method,
            nodes_to_exclude=list(exclude_nodes),
            reduce_range=reduce_range,
            op_types_to_quantize=list(op_types) or None,
            extra_options=extra,
        )
    return dst


def tensorrt_qdq_problems(path: Path) -> list[str]:
    """Why TensorRT's ONNX parser would refuse this Q/DQ model (empty: nothing found).

    TensorRT quantizes symmetrically to signed types only: every zero point must be 0 and not
    uint8 (uint8 Q/DQ is DLA-only), and a DequantizeLinear of INT32 data (ONNX Runtime's quantized
    biases) has no TensorRT counterpart.
    """
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    nonzero, unsigned, int32 = [], [], []
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zp = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is not None:
            z = numpy_helper.to_array(zp)
            if z.dtype == np.uint8:
                unsigned.append(node.name)
            if np.any(z != 0):
                nonzero.append(node.name)
        x = inits.get(node.input[0])
        if node.op_type == "DequantizeLinear" and x is not None and x.data_type == onnx.TensorProto.INT32:
            int32.append(node.name)
    problems = []
    for what, nodes in (
        ("non-zero zero points (TensorRT quantizes symmetrically only)", nonzero),
        ("uint8 quantization (TensorRT uses signed INT8 on the GPU)", unsigned),
        ("INT32 DequantizeLinear of a quantized bias (keep biases float)", int32),
    ):
        if nodes:
            shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
            problems.append(f"{len(nodes)} Q/DQ nodes with {what}: {shown}")
    return problems


def describe_form(form: dict[str, Any]) -> dict[str, str]:
    """How a form quantizes activations and biases, in the words the model cards quote."""
    return {
        "activations": f"{form['activation_type'].name}, "
        + ("symmetric" if form["symmetric"] else "asymmetric"),
        "biases": "int32" if form["quantize_bias"] else "float",
    }


def keep_float_until_close(
    candidates: Iterable[Sequence[str]],
    attempt: Callable[[Sequence[str]], dict[str, Any]],
    max_drop: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Quantize with each set of nodes kept in float in turn, until one loses at most ``max_drop``.

    ``attempt(nodes)`` quantizes and scores one try and returns its record with a ``drop`` (the
    score lost against FP32). Returns every try and the best of them (the smallest drop).
    """
    tried: list[dict[str, Any]] = []
    for nodes in candidates:
        tried.append(attempt(nodes))
        if tried[-1]["drop"] <= max_drop:
            break
    return tried, min(tried, key=lambda t: t["drop"])


def split_holdout(images: Sequence[np.ndarray], holdout: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration, held back): every k-th frame held back, so both span the whole clip."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), not {holdout}")
    if holdout == 0 or len(images) < 2:
        return list(images), []
    k = max(2, round(1 / holdout))
    held = [im for i, im in enumerate(images) if i % k == k - 1]
    calib = [im for i, im in enumerate(images) if i % k != k - 1]
    return calib, held


def quantize_folder(
    folder: Path,
    images: Sequence[np.ndarray],
    *,
    holdout: float = 0.2,
    out_name: str | None = None,
    make_default: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Quantize a model folder's FP32 file on ``images``, add it as ``int8`` to the manifest and
    return the FP32 vs INT8 comparison on the held-back frames (``options`` go to quantize_qdq)."""
    folder = Path(folder)
    package = load_manifest(folder)
    m = package.manifest
    src, _, _ = package.verified_file("fp32")
    calib, held = split_holdout(images, holdout)
    if not calib:
        raise ValueError("no calibration frames")
    dst = folder / (out_name or f"{src.stem.removesuffix('-fp32')}-int8.onnx")
    quantize_qdq(src, dst, calibration_feeds(m.input, calib), **options)
    problems = tensorrt_qdq_problems(dst)
    opts = {k: (v.name if hasattr(v, "name") else v) for k, v in options.items()}
    add_file(
        folder,
        "int8",
        dst,
        default=make_default,
        quantization={
            "method": "onnxruntime quantize_static, QDQ",
            "calibration_frames": len(calib),
            "held_back_frames": len(held),
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
        },
    )
    report: dict[str, Any] = {
        "int8_file": dst.name,
        "calibration_frames": len(calib),
        "held_back_frames": len(held),
        "tensorrt_problems": problems,
    }
    if held:
        session = SessionOptions(providers=("CPUExecutionProvider",))
        fp32 = LoadedModel(folder, precision="fp32", backend="onnxruntime", options=session, warmup_runs=1)
        int8 = LoadedModel(folder, precision="int8", backend="onnxruntime", options=session, warmup_runs=1)
        report["agreement"] = compare_models(fp32, int8, held)
    return report
