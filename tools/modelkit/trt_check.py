"""Check a TensorRT engine against ONNX Runtime on real frames, on the device it will run on.

Run on a Jetson (JetPack 6, TensorRT 10) or any Linux box with an NVIDIA GPU, the ``tensorrt``
and ``pycuda`` Python packages and this repository set up::

    python -m tools.modelkit.trt_check models/my-model --precision int8 --source /data/clip.mp4 --frames 200

It builds the engine exactly as ``edge models build-engine`` does (same cache key, same engine
cache and timing cache; an engine already cached is reused, ``--rebuild`` forces a new one), loads
the model twice through the runtime (``LoadedModel``: TensorRT backend, then ONNX Runtime on the
same ONNX file), feeds both the same frames preprocessed by the runtime, and reports per output the
max and mean absolute difference, the classifier's top-1 agreement or the detector's findings
matched by label and IoU >= 0.5 (after the runtime's decode and NMS), and the latency median and
p99 of each (TensorRT: copies in, ``execute_async_v3``, copies out) with the speedup. The JSON
report goes to ``--json``; the exit code is 1 when the outputs disagree beyond the tolerances, 2
when the check cannot run (no TensorRT, a model TensorRT cannot build), 0 when they agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.inference.base import ModelIdentity, SessionOptions
from edge.inference.engine_cache import build_engine, default_cache_dir, engine_files
from edge.inference.manifest import ModelPackage, load_manifest
from edge.inference.model import LoadedModel
from edge.inference.tensorrt_backend import TensorRTBackend, TensorRTOptions, device_info
from tools.modelkit.compare import compare_models, format_summary, tolerance_failures
from tools.modelkit.frames import DEFAULT_SOURCE, read_frames
from tools.modelkit.quantize import tensorrt_qdq_problems

# Defaults per precision: TensorRT FP32 may use TF32 on Ampere (Orin) and later; an INT8 engine
# fuses and reorders Q/DQ arithmetic differently from ONNX Runtime's CPU kernels.
DEFAULT_MAX_ABS_DIFF = {"fp32": 0.05, "int8": 0.5}
ORT_REFERENCE_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class CheckUnavailable(EdgeError):
    """The check cannot run here (no TensorRT, or a model TensorRT cannot build)."""


def require_tensorrt() -> str:
    ok, why = TensorRTBackend().is_available()
    if not ok:
        raise CheckUnavailable(
            f"TensorRT is not installed here ({why}). Run python -m tools.modelkit.trt_check on a Jetson "
            "(JetPack 6, TensorRT 10) or a machine with an NVIDIA GPU and the tensorrt and pycuda packages."
        )
    return why


def ensure_engine(
    package: ModelPackage, precision: str, cache: Path, *, rebuild: bool = False, workspace_mb: int = 1024
) -> dict[str, Any]:
    """The engine for this model file, precision and GPU, built like `edge models build-engine`
    unless the cache already has it. Returns what the report says about it."""
    m = package.manifest
    onnx_path, chosen, sha = package.verified_file(precision)
    if chosen == "int8":
        problems = tensorrt_qdq_problems(onnx_path)
        if problems:
            raise CheckUnavailable(
                f"{onnx_path}: TensorRT cannot build this INT8 file: {'; '.join(problems)}. Re-quantize it "
                f"with: python -m tools.modelkit quantize --model {package.folder} --calib <frames>"
            )
    dev = device_info()
    files = engine_files(ModelIdentity.of(m, sha, chosen), dev, cache)
    path = files.engine
    built_s = None
    if rebuild or not path.is_file():
        t0 = time.monotonic()
        build_engine(
            onnx_path,
            path,
            files.timing_cache,
            chosen,
            workspace_mb,
            input_shapes={m.input.name: tuple(m.input.shape)},
        )
        built_s = round(time.monotonic() - t0, 2)
    return {
        "path": str(path),
        "built_seconds": built_s,  # None: reused from the cache
        "trt_version": dev.trt_version,
        "gpu": dev.gpu_name,
        "compute_capability": dev.compute_capability,
        "sm_count": dev.sm_count,
    }


def ort_reference_providers() -> tuple[str, ...]:
    """CUDA then CPU: never ONNX Runtime's own TensorRT provider, which would compare TensorRT with itself."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return tuple(p for p in ORT_REFERENCE_PROVIDERS if p in available)


def check(
    reference: LoadedModel,
    candidate: LoadedModel,
    images: list[Any],
    *,
    max_abs_diff: float | None,
    min_top1_agreement: float,
    max_unmatched: int,
) -> dict[str, Any]:
    """Compare ``candidate`` (TensorRT) against ``reference`` (ONNX Runtime); the report says
    ``passed`` and lists ``failures`` beyond the tolerances."""
    report = compare_models(reference, candidate, images)
    failures = tolerance_failures(
        report, max_abs_diff=max_abs_diff, min_top1_agreement=min_top1_agreement, max_unmatched=max_unmatched
    )
    report["tolerances"] = {
        "max_abs_diff": max_abs_diff,
        "min_top1_agreement": min_top1_agreement,
        "max_unmatched": max_unmatched,
    }
    report["failures"] = failures
    report["passed"] = not failures
    return report


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.modelkit.trt_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=Path, help="model folder (manifest.json)")
    p.add_argument("--precision", choices=("fp32", "int8"), help="default: the manifest's default")
    p.add_argument("--source", default=str(DEFAULT_SOURCE), help="clip, DICOM, image folder or source URL")
    p.add_argument("--frames", type=int, default=100, help="frames compared (default 100)")
    p.add_argument("--cache", type=Path, help="engine cache (default: $EDGE_ENGINE_CACHE or ~/.cache/...)")
    p.add_argument("--rebuild", action="store_true", help="build the engine even if one is cached")
    p.add_argument("--workspace-mb", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=10, help="warm-up runs per model before timing")
    p.add_argument("--ort-providers", help="comma-separated ONNX Runtime providers (default: CUDA, CPU)")
    p.add_argument("--max-abs-diff", type=float, help="per-output limit (default 0.05 fp32, 0.5 int8)")
    p.add_argument("--min-top1", type=float, default=0.98, help="classifier top-1 agreement (default 0.98)")
    p.add_argument("--max-unmatched", type=int, default=0, help="detector findings unmatched either way")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    try:
        trt_version = require_tensorrt()
        package = load_manifest(a.model)
        precision = a.precision or package.manifest.default_precision
        cache = a.cache or default_cache_dir()
        engine = ensure_engine(package, precision, cache, rebuild=a.rebuild, workspace_mb=a.workspace_mb)
        providers = tuple(a.ort_providers.split(",")) if a.ort_providers else ort_reference_providers()
        ort_model = LoadedModel(
            a.model, precision=precision, backend="onnxruntime",
            options=SessionOptions(providers=providers), warmup_runs=a.warmup,
        )  # fmt: skip
        trt_model = LoadedModel(
            a.model, precision=precision, backend=TensorRTBackend(TensorRTOptions(cache_dir=cache)),
            warmup_runs=a.warmup,
        )  # fmt: skip
        images = read_frames(a.source, a.frames)
        max_abs = a.max_abs_diff if a.max_abs_diff is not None else DEFAULT_MAX_ABS_DIFF[precision]
        report = check(
            ort_model, trt_model, images,
            max_abs_diff=max_abs, min_top1_agreement=a.min_top1, max_unmatched=a.max_unmatched,
        )  # fmt: skip
    except EdgeError as exc:
        print(f"trt_check: {exc}", file=sys.stderr)
        return 2
    report["engine"] = engine
    report["tensorrt"] = trt_version
    report["source"] = a.source
    print(format_summary(report))
    print(f"engine {engine['path']} ({'reused' if engine['built_seconds'] is None else 'built'})")
    for failure in report["failures"]:
        print(f"FAIL {failure}")
    print("PASS: TensorRT agrees with ONNX Runtime" if report["passed"] else "FAIL: outputs disagree")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"report: {a.json}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
