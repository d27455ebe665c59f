"""The heatmap is the CAM: the logits are its spatial mean plus a bias, in torch and in the ONNX file;
a folded threshold moves the argmax to it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


def test_exported_outputs_are_logits_and_the_cam(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from tools.cxr_finding.model import Classifier
    from tools.cxr_finding.train import export

    torch.manual_seed(0)
    model = Classifier(2).eval()
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.3, -0.2]))
    x = np.random.default_rng(0).normal(size=(2, 1, 112, 112)).astype(np.float32)
    assert export(model, tmp_path / "m.onnx", x) < 1e-4
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logits", "heatmap"]
    logits, heat = sess.run(None, {"images": x[:1]})
    assert logits.shape == (1, 2) and heat.shape == (1, 2, 7, 7) and heat.dtype == np.float32
    assert np.allclose(heat.mean(axis=(2, 3)) + np.array([0.3, -0.2]), logits, atol=1e-5)


def test_shift_decision_puts_the_argmax_at_the_threshold() -> None:
    import torch

    from tools.cxr_finding.model import Classifier
    from tools.cxr_finding.train import shift_decision

    model = Classifier(2).eval()
    x = torch.zeros(1, 1, 112, 112)
    with torch.no_grad():
        before = torch.softmax(model(x)[0], 1)[0, 1].item()
        shift_decision(model, before)  # the threshold sits exactly at this film's probability
        after = torch.softmax(model(x)[0], 1)[0, 1].item()
    assert after == pytest.approx(0.5, abs=1e-5)
