"""The whole cxr-lungs recipe (--tiny) on a synthetic cxr_dev stand-in, and the runtime loading it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.tools.cxr_standins import chest, write_cxr_dev_standin

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (tools extra: scripts/setup.sh --tools)",
)


def test_tiny_chain_publishes_a_folder_the_runtime_loads(tmp_path: Path) -> None:
    from edge.inference.manifest import verify_folder
    from edge.inference.model import LoadedModel
    from tools.cxr_lungs.__main__ import main
    from tools.modelkit.quantize import tensorrt_qdq_problems

    data = write_cxr_dev_standin(tmp_path / "cxr_dev", films=10, patients=5)
    out = tmp_path / "cxr-lungs"
    args = ["--tiny", "--data", str(data), "--out", str(out), "--threads", "1"]
    assert main([*args, "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache")]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["labels"] == ["lung_right", "lung_left"] and man["task"] == "detection"
    assert man["modality"] == ["CR", "DX"] and man["outputs"] == [{"name": "output0", "kind": "yolo"}]
    assert man["input"]["shape"] == [1, 1, 128, 128] and man["input"]["color"] == "gray"
    assert set(verify_folder(out)) == {"fp32", "int8", "int8-cpu"}
    assert tensorrt_qdq_problems(out / "cxr-lungs-int8.onnx") == []
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("> SMOKE TEST") and "lung_right AP50" in card
    assert "CC BY" in (out / "DATA_SOURCE.md").read_text()
    cv = json.loads((out / "cv.json").read_text())
    assert cv["variants"]["int8-cpu"]["films"] == 10, "every film scored out of fold"
    stress = json.loads((out / "stress.json").read_text())
    assert stress["changes"]["as is"]["lung_right"]["films"] == 10
    model = LoadedModel(out, backend="onnxruntime", warmup_runs=1)
    film, _ = chest(np.random.default_rng(3), 300, 360)
    out_ = model.infer(film)  # a film of another size than the training films
    assert {f.label for f in out_.findings} <= {"lung_right", "lung_left"}
    assert all(f.box is not None for f in out_.findings)
