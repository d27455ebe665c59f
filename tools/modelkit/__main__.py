"""``python -m tools.modelkit manifest|quantize ...``: bring your own ONNX model to the runtime.

    python -m tools.modelkit manifest --onnx my.onnx --task detection --labels a,b,c \\
        --input-size 640 --color rgb --normalize unit --out models/my-model/
    python -m tools.modelkit quantize --model models/my-model --calib frames/ --max-frames 300

See docs/bring-your-own-model.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from onnxruntime.quantization import CalibrationMethod, QuantType

from edge.errors import EdgeError
from tools.modelkit.compare import format_summary
from tools.modelkit.frames import read_frames
from tools.modelkit.manifest import NORMALIZE_PRESETS, write_manifest
from tools.modelkit.quantize import quantize_folder


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size: expected N or HxW, got {text!r}") from None
    if len(nums) not in (1, 2) or min(nums) < 1:
        raise argparse.ArgumentTypeError(f"--input-size: expected N or HxW, got {text!r}")
    return (nums[0], nums[-1])


def _labels(text: str) -> list[str]:
    """``a,b,c`` or ``@labels.txt`` (one per line, as Ultralytics' names in order)."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"--labels {path}: {exc.strerror or exc}") from None
    return _csv(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.modelkit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("manifest", help="write manifest.json for an ONNX classifier or YOLO detector")
    m.add_argument("--onnx", type=Path, required=True, help="the FP32 ONNX model")
    m.add_argument("--task", choices=("classification", "detection"), required=True)
    m.add_argument("--labels", type=_labels, required=True, help="a,b,c in output order, or @file.txt")
    m.add_argument("--out", type=Path, required=True, help="model folder to create (the ONNX is copied in)")
    m.add_argument("--name", help="model name (default: the folder name)")
    m.add_argument("--version", default="0.1.0")
    m.add_argument("--input-size", type=_size, help="N or HxW; needed when the ONNX input is dynamic")
    m.add_argument("--color", choices=("gray", "rgb", "bgr"), default="rgb")
    m.add_argument("--layout", choices=("NCHW", "NHWC"), help="default: read from the ONNX input shape")
    m.add_argument(
        "--resize",
        choices=("stretch", "letterbox"),
        help="default: letterbox for detection, stretch for classification",
    )
    m.add_argument(
        "--normalize",
        choices=sorted(NORMALIZE_PRESETS),
        default="unit",
        help="unit: x/255 (YOLO); imagenet: x/255 then ImageNet mean/std; none: raw 0..255",
    )
    m.add_argument("--scale", type=float, help="override the preset's pixel scale")
    m.add_argument("--mean", type=_floats, help="override the preset's mean (1 or 3 values)")
    m.add_argument("--std", type=_floats, help="override the preset's std (1 or 3 values)")
    m.add_argument(
        "--output-kind",
        choices=("logits", "probabilities", "yolo"),
        help="default: yolo for detection, logits for classification",
    )
    m.add_argument("--ok-labels", type=_csv, default=[], help="classifier labels that mean 'frame ok'")
    m.add_argument("--urgent-labels", type=_csv, default=[], help="labels whose findings are urgent")
    m.add_argument("--min-confidence", type=float, help="findings below are not reported (default 0.25)")
    m.add_argument("--review-below", type=float, help="findings below are flagged needs_review (0.5)")
    m.add_argument("--iou", type=float, help="NMS overlap threshold (default 0.45)")
    m.add_argument("--modality", type=_csv, default=["US"], help="US, DX, CR (comma-separated)")
    m.add_argument("--description", default="")

    q = sub.add_parser("quantize", help="add an INT8 Q/DQ file calibrated on real frames")
    q.add_argument(
        "--model", type=Path, required=True, help="model folder with manifest.json and an fp32 file"
    )
    q.add_argument(
        "--calib", required=True, help="folder of images, a clip, a DICOM file/folder, or a source URL"
    )
    q.add_argument("--max-frames", type=int, default=300, help="frames read from --calib (default 300)")
    q.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="fraction held back to measure FP32 vs INT8 agreement (default 0.2)",
    )
    q.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-channel weight scales (default on)",
    )
    q.add_argument("--exclude-nodes", type=_csv, default=[], help="node names kept in float")
    q.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    q.add_argument(
        "--asymmetric",
        action="store_true",
        help="ONNX Runtime's asymmetric uint8 activations and INT32 biases (not buildable by TensorRT)",
    )
    q.add_argument(
        "--reduce-range", action="store_true", help="7-bit weights (ONNX Runtime on x86 CPUs without VNNI)"
    )
    q.add_argument("--keep-default", action="store_true", help="do not make int8 the default precision")
    q.add_argument("--report", type=Path, help="write the JSON report here")
    return p


def _cmd_manifest(a: argparse.Namespace) -> int:
    norm: dict[str, Any] = dict(NORMALIZE_PRESETS[a.normalize])
    for key in ("scale", "mean", "std"):
        if getattr(a, key) is not None:
            norm[key] = getattr(a, key)
    thresholds = {
        k: v
        for k, v in (("min_confidence", a.min_confidence), ("review_below", a.review_below), ("iou", a.iou))
        if v is not None
    }
    path = write_manifest(
        a.onnx,
        a.out,
        task=a.task,
        labels=a.labels,
        input_size=a.input_size,
        color=a.color,
        layout=a.layout,
        resize=a.resize,
        normalize=norm,
        output_kind=a.output_kind,
        version=a.version,
        ok_labels=a.ok_labels,
        urgent_labels=a.urgent_labels,
        thresholds=thresholds,
        modality=a.modality,
        description=a.description,
        **({"name": a.name} if a.name else {}),
        provenance={"source_onnx": a.onnx.name, "written_by": "tools.modelkit manifest"},
    )
    print(f"wrote {path}; check it with: edge models verify {a.out}")
    return 0


def _cmd_quantize(a: argparse.Namespace) -> int:
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[a.method]
    images = read_frames(a.calib, a.max_frames)
    options: dict[str, Any] = {
        "per_channel": a.per_channel,
        "exclude_nodes": tuple(a.exclude_nodes),
        "calibrate_method": method,
        "reduce_range": a.reduce_range,
    }
    if a.asymmetric:
        options.update(symmetric=False, quantize_bias=True, activation_type=QuantType.QUInt8)
    report = quantize_folder(a.model, images, holdout=a.holdout, make_default=not a.keep_default, **options)
    print(f"{report['int8_file']}: calibrated on {report['calibration_frames']} frames")
    for problem in report["tensorrt_problems"]:
        print(f"TensorRT will refuse this file: {problem}")
    if "agreement" in report:
        print(f"FP32 vs INT8 on {report['held_back_frames']} held-back frames:")
        print(format_summary(report["agreement"]))
    if a.report:
        a.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"report: {a.report}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _cmd_manifest(args) if args.command == "manifest" else _cmd_quantize(args)
    except (EdgeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
