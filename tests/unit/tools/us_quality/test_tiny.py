"""The whole us-quality chain (--tiny) on a small synthetic data set written by the test.

It needs torch (the tools extra; CI installs it). The data set imitates pocus_dev's layout and
labels.csv so the real loading, splitting, training, quantization, evaluation and publishing code
runs end to end without the real clips, which users do not have.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (tools extra: scripts/setup.sh --tools)",
)


def test_tiny_chain_writes_a_loadable_model_folder(tmp_path: Path, pocus_dir: Path) -> None:
    import onnxruntime as ort

    from edge.inference.manifest import verify_folder
    from tools.modelkit.quantize import tensorrt_qdq_problems
    from tools.us_quality.__main__ import main

    data = pocus_dir
    out = tmp_path / "us-quality"
    args = ["--tiny", "--data", str(data), "--out", str(out), "--work", str(tmp_path / "work")]
    assert main([*args, "--cache", str(tmp_path / "cache")]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["labels"] == ["diagnostic", "no_contact", "shadow", "gain_high", "gain_low"]
    for spec in man["files"].values():
        sess = ort.InferenceSession(str(out / spec["path"]), providers=["CPUExecutionProvider"])
        assert sess.get_outputs()[0].name == "logits" and sess.get_inputs()[0].shape == [1, 1, 128, 128]
    assert (out / "us-quality-int8.onnx").stat().st_size < (out / "us-quality-fp32.onnx").stat().st_size
    assert set(verify_folder(out)) == {"fp32", "int8", "int8-cpu"}, "the manifest's hashes match its files"
    assert man["version"] == "1.1.0"
    assert man["cpu_files"]["int8"]["path"] == "us-quality-int8-cpu.onnx"
    assert tensorrt_qdq_problems(out / man["files"]["int8"]["path"]) == [], "portable INT8 builds in TensorRT"
    assert tensorrt_qdq_problems(out / man["cpu_files"]["int8"]["path"]), "the CPU form is the asymmetric one"
    metrics = json.loads((out / "metrics.json").read_text())
    for form in ("fp32", "int8", "int8_cpu"):
        ph = metrics[form]["phantom"]
        assert set(ph["per_class"]) == set(man["labels"]) and ph["tour"]["by_stop"], form
    log = json.loads((out / "training_log.json").read_text())
    assert log["phantom_train_frames"] > 0 and log["phantom_val_frames"] > 0
    split = json.loads((out / "split.json").read_text())["splits"]
    test_clips, train_clips = set(split["test"]), set(split["train"])
    assert test_clips and not (test_clips & train_clips), "split by clip: no clip in two splits"
    for name in ("metrics.json", "MODEL_CARD.md", "DATA_SOURCE.md"):
        assert (out / name).exists()
