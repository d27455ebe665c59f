"""The lung detector's publish step, run on the committed model folder: the gate, and the committed
manifest and card written again from the files the earlier steps left (needs torch)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.support.paths import MODELS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (tools extra)"
)
FOLDER = MODELS / "lung-detector"
FILES = {"fp32": "lung-detector-fp32.onnx", "int8": "lung-detector-int8.onnx"}
CPU_FILES = {"int8": "lung-detector-int8-cpu.onnx"}


def test_manifest_is_the_committed_one() -> None:
    from tools.lung_detector.publish import manifest
    from tools.lung_detector.recipe import load_recipe

    committed = json.loads((FOLDER / "manifest.json").read_text())
    metrics = json.loads((FOLDER / "metrics.json").read_text())
    doc = manifest(load_recipe(FOLDER / "recipe.toml"), FOLDER, FILES, CPU_FILES, metrics)
    doc["provenance"]["created"] = committed["provenance"]["created"]  # the day it was published
    assert json.dumps(doc, indent=2) + "\n" == (FOLDER / "manifest.json").read_text()


def test_card_is_the_committed_one(tmp_path: Path) -> None:
    from tools.lung_detector.card import model_card
    from tools.lung_detector.recipe import load_recipe

    shutil.copyfile(FOLDER / "dataset.json", tmp_path / "dataset.json")
    shutil.copyfile(FOLDER / "quantization.json", tmp_path / "int8.json")  # published under that name
    shutil.copyfile(FOLDER / "loso.md", tmp_path / "loso.md")
    metrics = json.loads((FOLDER / "metrics.json").read_text())
    card = model_card(load_recipe(FOLDER / "recipe.toml"), tmp_path, metrics, wall_s=metrics["wall_s"])
    assert card == (FOLDER / "MODEL_CARD.md").read_text()


def test_the_gate_refuses_a_drop_over_the_recipes_limit() -> None:
    from tools.lung_detector.publish import gate
    from tools.modelkit.publish_gate import GateRefused

    drops = {"pruned_vs_fp32": 0.004, "int8_vs_pruned": 0.0, "int8_cpu_vs_pruned": 0.0, "int8_vs_fp32": 0.5}
    gate({"drops": drops}, max_drop=0.01)  # int8_vs_fp32 is reported, not gated
    with pytest.raises(GateRefused, match=r"phantom mAP50 int8_cpu_vs_pruned 2\.00 pt"):
        gate({"drops": drops | {"int8_cpu_vs_pruned": 0.02}}, max_drop=0.01)


def test_the_gate_holds_on_the_grouped_real_clip_figure_too() -> None:
    from tools.lung_detector.publish import gate, loso_drops
    from tools.lung_detector.recipe import Recipe
    from tools.modelkit.publish_gate import GateRefused

    aucs = {"fp32": 0.90, "pruned": 0.895, "int8": 0.89, "int8_cpu": 0.87}
    loso = {"variants": {f"{k}+consensus": {"auc": v} for k, v in aucs.items()} | {"fp32": {"auc": 0.5}}}
    d = loso_drops(loso, Recipe(postprocess=("consensus_b_lines",)))  # as the runtime runs them
    assert d == pytest.approx(
        {
            "pruned+consensus_vs_fp32+consensus": 0.005,
            "int8+consensus_vs_pruned+consensus": 0.005,
            "int8_cpu+consensus_vs_pruned+consensus": 0.025,
        }
    )
    no_phantom_drop = {"pruned_vs_fp32": 0.0, "int8_vs_pruned": 0.0, "int8_cpu_vs_pruned": 0.0}
    with pytest.raises(
        GateRefused, match=r"real-clip LOSO AUC int8_cpu\+consensus_vs_pruned\+consensus 2\.50"
    ):
        gate({"drops": no_phantom_drop, "loso_drops": d}, max_drop=0.01)
