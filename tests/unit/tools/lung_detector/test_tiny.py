"""The whole lung-detector chain (--tiny) from the recipe, on the synthetic pocus stand-in.

Runs dataset -> train -> prune -> quantize -> evaluate -> loso -> publish twice with one seed: the model
files must be byte-identical (deterministic), load in the runtime, and decode as detections.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch_pruning") is None,
    reason="torch and torch-pruning are not installed (tools extra: scripts/setup.sh --tools)",
)


def _run(tmp: Path, data: Path, name: str) -> Path:
    from tools.lung_detector.__main__ import main

    out = tmp / name
    args = [
        "all",
        "--tiny",
        "--data",
        str(data),
        "--out",
        str(out),
        "--work",
        str(tmp / f"{name}-work"),
        "--cache",
        str(tmp / "cache"),
    ]
    assert main(args) == 0
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_tiny_chain_is_deterministic_and_runs_in_the_runtime(tmp_path: Path, pocus_dir: Path) -> None:
    from edge.inference.manifest import load_manifest, verify_folder
    from edge.inference.model import LoadedModel

    a = _run(tmp_path, pocus_dir, "a")
    b = _run(tmp_path, pocus_dir, "b")
    man = json.loads((a / "manifest.json").read_text())
    for spec in man["files"].values():
        assert _sha(a / spec["path"]) == _sha(b / spec["path"]), f"{spec['path']} differs between two runs"
    assert set(verify_folder(a)) == {"fp32", "int8", "int8-cpu"}
    for spec in man["cpu_files"].values():
        assert _sha(a / spec["path"]) == _sha(b / spec["path"]), f"{spec['path']} differs between two runs"
    ops = {n.op_type for n in onnx.load(str(a / man["files"]["int8"]["path"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, "INT8 is explicit Q/DQ"
    metrics = json.loads((a / "metrics.json").read_text())
    assert set(metrics["variants"]) == {"fp32", "pruned", "int8", "int8_cpu"}
    quant = json.loads((a / "quantization.json").read_text())
    assert quant["forms"]["int8"]["tensorrt_problems"] == [], "the portable INT8 file is TensorRT-buildable"
    assert metrics["pruning"]["flops_removed"] >= 0.4
    loso = metrics["loso"]
    variants = {"fp32", "pruned", "int8", "int8_cpu"}
    assert set(loso["variants"]) == variants | {f"{v}+consensus" for v in variants} and "teacher" in loso
    ds = json.loads((a / "dataset.json").read_text())
    sources = {c["source"] for c in ds["real"]["clips"]}
    assert len(sources) == 3 and all(c["licence"] for c in ds["real"]["clips"])
    assert len(loso["variants"]["int8"]["folds"]) == 3, "one fold per source"
    assert man["input"]["view"] == "scanlines" and man["postprocess"] == ["consensus_b_lines"]
    for name in (
        "MODEL_CARD.md",
        "DATA_SOURCE.md",
        "recipe.toml",
        "quantization.json",
        "prune.json",
        "loso.md",
    ):
        assert (a / name).exists(), name
    manifest = load_manifest(a).manifest
    assert manifest.task == "detection" and manifest.outputs[0].kind == "yolo"
    model = LoadedModel(a, precision="int8")
    assert model.path.name.endswith("-int8-cpu.onnx"), "ONNX Runtime on the CPU runs the CPU form"
    out = model.infer(np.full((300, 400, 3), 40, np.uint8))
    assert out.quality is None
    assert all(f.label in manifest.labels for f in out.findings)
