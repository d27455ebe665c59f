"""tools.modelkit.quantize: Q/DQ files TensorRT can parse, and the checker that tells which cannot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import QuantType

from edge.inference.manifest import InputSpec
from tests.support.paths import MODELS
from tests.unit.tools.tiny_models import conv_classifier
from tools.modelkit.quantize import (
    CPU_FORM,
    PORTABLE_FORM,
    calibration_feeds,
    describe_form,
    keep_float_until_close,
    quantize_qdq,
    split_holdout,
    tensorrt_qdq_problems,
)


def _calib(n: int = 16, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """Images of different brightness with some texture: what the model's output depends on."""
    rng = np.random.default_rng(seed)
    return [
        {"input": (rng.uniform(-2, 2) + rng.normal(0, 0.3, (1, 1, 32, 32))).astype(np.float32)}
        for _ in range(n)
    ]


def _zero_points(path: Path) -> list[np.ndarray]:
    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    return [
        inits[n.input[2]]
        for n in g.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits
    ]


def test_default_is_symmetric_int8_with_float_bias(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(conv_classifier(), src)
    dst = quantize_qdq(src, tmp_path / "m-int8.onnx", _calib())
    zps = _zero_points(dst)
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    assert tensorrt_qdq_problems(dst) == []
    # The Q/DQ graph's own arithmetic (what TensorRT implements), without ONNX Runtime's fused x86
    # u8s8 kernels, which can saturate on random weights (see docs/bring-your-own-model.md).
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    fp32, int8 = ort.InferenceSession(str(src)), ort.InferenceSession(str(dst), so)
    # On the calibrated range (MinMax clips what lies beyond it), INT8 stays close to FP32.
    outs = [(fp32.run(None, x)[0], int8.run(None, x)[0]) for x in _calib()]
    span = max(float(np.abs(a).max()) for a, _ in outs)
    assert max(float(np.abs(a - b).max()) for a, b in outs) < 0.1 * span
    assert sum(int(a.argmax() == b.argmax()) for a, b in outs) >= len(outs) - 1


def test_onnxruntime_defaults_are_flagged_for_tensorrt(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(conv_classifier(), src)
    dst = quantize_qdq(
        src, tmp_path / "asym.onnx", _calib(),
        symmetric=False, quantize_bias=True, activation_type=QuantType.QUInt8,
    )  # fmt: skip
    problems = " | ".join(tensorrt_qdq_problems(dst))
    assert "uint8 quantization" in problems and "INT32 DequantizeLinear" in problems


def test_bundled_int8_forms_portable_for_tensorrt_and_cpu_form_not() -> None:
    # files.int8 is the portable form (symmetric int8, float biases); cpu_files.int8 is ONNX
    # Runtime's CPU form (uint8 with zero points, INT32 biases), which TensorRT's parser refuses.
    assert tensorrt_qdq_problems(MODELS / "us-quality" / "us-quality-int8.onnx") == []
    problems = tensorrt_qdq_problems(MODELS / "us-quality" / "us-quality-int8-cpu.onnx")
    assert problems[0].startswith("4 Q/DQ nodes with non-zero zero points")
    assert any(p.startswith("7 Q/DQ nodes with INT32 DequantizeLinear") for p in problems)


def test_excluded_nodes_stay_float(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(conv_classifier(), src)
    dst = quantize_qdq(src, tmp_path / "ex.onnx", _calib(), exclude_nodes=("head",))
    g = onnx.load(str(dst)).graph
    head = next(n for n in g.node if n.op_type == "Gemm")
    producers = {o: n.op_type for n in g.node for o in n.output}
    assert producers.get(head.input[1]) != "DequantizeLinear"  # weights not quantized
    conv = next(n for n in g.node if n.op_type == "Conv")
    assert producers.get(conv.input[1]) == "DequantizeLinear"


def test_calibration_feeds_are_runtime_preprocessed_copies() -> None:
    spec = InputSpec(name="input", shape=(1, 1, 32, 32), color="gray")
    images = [np.full((64, 48, 3), v, np.uint8) for v in (0, 255)]
    feeds = list(calibration_feeds(spec, images))
    assert feeds[0]["input"].shape == (1, 1, 32, 32)
    assert feeds[0]["input"].max() == 0.0 and feeds[1]["input"].min() == pytest.approx(1.0)


def test_split_holdout_spreads_over_the_frames() -> None:
    calib, held = split_holdout(list(range(10)), 0.2)  # type: ignore[arg-type]
    assert held == [4, 9] and len(calib) == 8
    assert split_holdout(list(range(3)), 0.0) == ([0, 1, 2], [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holdout"):
        split_holdout([], 1.0)


def test_the_two_forms_are_what_the_cards_say(tmp_path: Path) -> None:
    assert describe_form(PORTABLE_FORM) == {"activations": "QInt8, symmetric", "biases": "float"}
    assert describe_form(CPU_FORM) == {"activations": "QUInt8, asymmetric", "biases": "int32"}
    src = tmp_path / "m.onnx"
    onnx.save(conv_classifier(), src)
    for form, parsable in ((PORTABLE_FORM, True), (CPU_FORM, False)):
        dst = quantize_qdq(src, tmp_path / "q.onnx", _calib(), **form)
        assert (tensorrt_qdq_problems(dst) == []) is parsable


def test_nodes_stay_float_only_until_int8_is_close_enough() -> None:
    drops = {(): 0.05, ("conv0",): 0.02, ("conv0", "head"): 0.004, ("head",): 0.0}
    seen: list[tuple[str, ...]] = []

    def attempt(nodes: Sequence[str]) -> dict[str, Any]:
        seen.append(tuple(nodes))
        return {"nodes": list(nodes), "drop": drops[tuple(nodes)]}

    candidates = [[], ["conv0"], ["conv0", "head"], ["head"]]
    tried, best = keep_float_until_close(candidates, attempt, max_drop=0.01)
    assert seen == [(), ("conv0",), ("conv0", "head")], "stops at the first try within max_drop"
    assert best is tried[-1] and best["nodes"] == ["conv0", "head"]
    tried, best = keep_float_until_close(candidates[:2], attempt, max_drop=0.01)
    assert best["nodes"] == ["conv0"], "none close enough: the smallest drop"
