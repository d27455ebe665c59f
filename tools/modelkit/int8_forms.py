"""Both INT8 forms of one FP32 ONNX file from one calibration set, each scored against FP32.

- ``int8``: the portable file, symmetric int8 activations and float biases, what TensorRT's ONNX
  parser builds INT8 engines from (``quantize.tensorrt_qdq_problems`` checks it).
- ``int8-cpu``: ONNX Runtime's CPU form (asymmetric uint8 activations, int32 biases), listed under
  the manifest's ``cpu_files``.

Where a form loses more than ``max_drop`` of ``score`` (higher is better), the first convolution and
then also the last are kept in float, in turn (``quantize.keep_float_until_close``); the choice and
every try are in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tools.modelkit import quantize as qdq

FORMS: dict[str, dict[str, Any]] = {"int8": qdq.PORTABLE_FORM, "int8-cpu": qdq.CPU_FORM}


def float_candidates(path: Path) -> list[list[str]]:
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    return [[], convs[:1], convs[:1] + convs[-1:]]


def quantize_forms(
    src: Path,
    out: Path,
    stem: str,
    calib: np.ndarray,
    input_name: str,
    score: Callable[[Path], float],
    max_drop: float,
    op_types: Sequence[str] = (),
    log: Any = print,
) -> dict[str, Any]:
    """Write ``out/<stem>-int8.onnx`` and ``out/<stem>-int8-cpu.onnx`` from ``src`` calibrated on
    ``calib`` (float32 model inputs [N, ...], one per feed); returns what was tried and chosen."""
    ref = score(src)

    def feeds() -> Iterator[dict[str, np.ndarray]]:
        for x in calib:
            yield {input_name: x[None].astype(np.float32)}

    forms: dict[str, Any] = {}
    for form, options in FORMS.items():
        dst = out / f"{stem}-{form}.onnx"

        def quantize_to(exclude: Sequence[str], dst: Path = dst, options: dict[str, Any] = options) -> None:
            qdq.quantize_qdq(src, dst, feeds(), exclude_nodes=exclude, op_types=op_types, **options)

        def attempt(exclude: Sequence[str], dst: Path = dst, form: str = form) -> dict[str, Any]:
            quantize_to(exclude)
            s = score(dst)
            log(f"{form}, float nodes {list(exclude) or 'none'}: {s:.4f} (fp32 {ref:.4f})")
            return {"float_nodes": list(exclude), "score": s, "drop": ref - s}

        tried, best = qdq.keep_float_until_close(float_candidates(src), attempt, max_drop)
        if best is not tried[-1]:
            quantize_to(best["float_nodes"])
        forms[form] = {
            "file": dst.name,
            **qdq.describe_form(options),
            "tried": tried,
            "chosen_float_nodes": best["float_nodes"],
            "tensorrt_problems": qdq.tensorrt_qdq_problems(dst),
        }
    return {
        "format": "QDQ",
        "weights": "int8 per channel, symmetric",
        "calibration": "MinMax",
        "calibration_inputs": len(calib),
        "score_fp32": ref,
        "forms": forms,
    }
