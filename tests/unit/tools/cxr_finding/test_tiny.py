"""The whole cxr-finding recipe (--tiny) on a synthetic stand-in, and the runtime loading it with its
heatmap output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.tools.cxr_standins import chest, write_cxr_dev_standin, write_kermany_standin

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (tools extra: scripts/setup.sh --tools)",
)


def test_tiny_chain_publishes_a_finding_model_with_a_heatmap(tmp_path: Path) -> None:
    from edge.inference.manifest import verify_folder
    from edge.inference.model import LoadedModel
    from tools.cxr_finding.__main__ import main
    from tools.modelkit.quantize import tensorrt_qdq_problems

    data = write_kermany_standin(tmp_path / "k", per_class=20)
    adult = write_cxr_dev_standin(tmp_path / "cxr_dev", films=6, patients=3)
    out = tmp_path / "cxr-finding"
    args = ["--tiny", "--data", str(data), "--adult", str(adult), "--out", str(out), "--threads", "1"]
    assert main([*args, "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache")]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["labels"] == ["normal", "pneumonia"] and man["ok_labels"] == ["normal"]
    assert man["outputs"] == [{"name": "logits", "kind": "logits"}, {"name": "heatmap", "kind": "heatmap"}]
    assert man["modality"] == ["CR", "DX"] and man["thresholds"]["review_below"] == 0.8
    assert set(verify_folder(out)) == {"fp32", "int8", "int8-cpu"}
    assert tensorrt_qdq_problems(out / "cxr-finding-int8.onnx") == []
    card = (out / "MODEL_CARD.md").read_text()
    for words in (
        "children aged 1 to 5",
        "Guangzhou",
        "not been shown to work on adults",
        "not for diagnosis",
    ):
        assert words in card
    checks = json.loads((out / "checks.json").read_text())
    assert checks["adult"]["films"] == 6
    model = LoadedModel(out, backend="onnxruntime", warmup_runs=1)
    film, _ = chest(np.random.default_rng(5), 300, 360)
    result = model.infer(film)
    assert result.quality is not None and result.quality.label in ("normal", "pneumonia")
    assert result.heatmap is not None
