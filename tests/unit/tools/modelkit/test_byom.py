"""Bring your own model, end to end as docs/bring-your-own-model.md walks it: manifest ->
`edge models verify` -> quantize on a folder of frames -> the runtime loads and runs it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from edge.cli import main as edge_main
from edge.inference.base import SessionOptions
from edge.inference.model import LoadedModel
from tests.support.onnx_models import yolo_model
from tests.unit.tools.tiny_models import conv_classifier
from tools.modelkit.__main__ import main as modelkit_main
from tools.modelkit.frames import read_frames
from tools.modelkit.quantize import tensorrt_qdq_problems

CPU = SessionOptions(providers=("CPUExecutionProvider",))


def test_classifier_manifest_verify_quantize_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "export" / "my-cls.onnx"
    src.parent.mkdir()
    onnx.save(conv_classifier(size=32, channels=1, classes=3), src)
    folder = tmp_path / "models" / "my-cls"
    rc = modelkit_main(
        ["manifest", "--onnx", str(src), "--task", "classification", "--labels", "good,dark,bright",
         "--ok-labels", "good", "--input-size", "32", "--color", "gray", "--normalize", "none",
         "--scale", "0.00784313725490196", "--mean", "1.0", "--std", "1.0", "--out", str(folder)]
    )  # fmt: skip
    assert rc == 0
    assert edge_main(["models", "verify", str(folder)]) == 0
    assert "fp32" in capsys.readouterr().out

    calib = tmp_path / "frames"
    calib.mkdir()
    for i, image in enumerate(read_frames(max_frames=40)):  # real ultrasound frames, as PNG stills
        cv2.imwrite(str(calib / f"f{i:03d}.png"), image)
    report_path = tmp_path / "q.json"
    rc = modelkit_main(
        [
            "quantize",
            "--model",
            str(folder),
            "--calib",
            str(calib),
            "--holdout",
            "0.25",
            "--report",
            str(report_path),
        ]
    )
    assert rc == 0
    report = json.loads(report_path.read_text())
    assert (report["calibration_frames"], report["held_back_frames"]) == (30, 10)
    assert report["tensorrt_problems"] == []
    assert report["agreement"]["frames"] == 10 and "top1_agreement" in report["agreement"]["classification"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["default_precision"] == "int8" and manifest["files"]["int8"]["path"] == "my-cls-int8.onnx"
    assert tensorrt_qdq_problems(folder / "my-cls-int8.onnx") == []
    assert edge_main(["models", "verify", str(folder)]) == 0

    model = LoadedModel(folder, backend="onnxruntime", options=CPU, warmup_runs=1)
    assert model.precision == "int8"
    q = model.infer(np.full((120, 160, 3), 200, np.uint8)).quality
    assert q is not None and q.label in ("good", "dark", "bright")
    assert sum(q.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_yolo_detector_manifest_verify_run(tmp_path: Path) -> None:
    out = np.zeros((1, 6, 4), np.float32)
    out[0, :, 0] = [32, 32, 16, 16, 0.1, 0.9]  # one "lesion" box in the middle of the 64x64 input
    src = tmp_path / "yolo.onnx"
    onnx.save(yolo_model(out, size=64), src)
    folder = tmp_path / "det"
    rc = modelkit_main(
        ["manifest", "--onnx", str(src), "--task", "detection", "--labels", "line,lesion",
         "--urgent-labels", "lesion", "--min-confidence", "0.3", "--out", str(folder)]
    )  # fmt: skip
    assert rc == 0
    assert edge_main(["models", "verify", str(folder)]) == 0
    model = LoadedModel(folder, backend="onnxruntime", options=CPU, warmup_runs=1)
    (finding,) = model.infer(np.zeros((128, 256, 3), np.uint8)).findings  # letterboxed 2:1 frame
    assert finding.label == "lesion" and finding.confidence == pytest.approx(0.9)
    assert finding.box is not None
    # 256x128 frame -> scale 0.25, 16 px pad on top: box 24..40 in the input maps to 96..160 x, 32..96 y
    assert (finding.box.x0, finding.box.y0, finding.box.x1, finding.box.y1) == pytest.approx(
        (96, 32, 160, 96)
    )


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(conv_classifier(), src)
    rc = modelkit_main(
        [
            "manifest",
            "--onnx",
            str(src),
            "--task",
            "classification",
            "--labels",
            "a,b,c",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2
    assert "--color rgb needs 3 input channel(s); the model's input has 1" in capsys.readouterr().err
