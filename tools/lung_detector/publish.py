"""Step 6, ``publish``: the gate, then ``models/<name>/`` with ONNX files, manifest and model card
(``card``).

The gate refuses to publish when pruning or INT8 loses more mAP50 on the phantom test set than
the recipe allows (1 point by default). Everything in the card is read from the files the earlier
steps wrote, so the card cannot disagree with the numbers it quotes. The manifest, the
attribution and the writing of the folder are ``tools.modelkit``'s.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from tools.lung_detector.card import model_card
from tools.lung_detector.evaluate import MAX_DETECTIONS, NMS_IOU
from tools.lung_detector.recipe import Recipe
from tools.modelkit.cards import CARD_NAME, write_model_docs
from tools.modelkit.manifest import build_manifest
from tools.modelkit.pocus import data_source

URGENT_LABELS = ("consolidation", "effusion")  # synced first (issue 5's priority); not a diagnosis


class GateRefused(RuntimeError):
    pass


def gate(metrics: dict[str, Any], max_drop: float) -> None:
    d = metrics["drops"]
    gated = ("pruned_vs_fp32", "int8_vs_pruned", "int8_cpu_vs_pruned")
    bad = {k: v for k, v in d.items() if k in gated and v > max_drop}
    if bad:
        raise GateRefused(
            "mAP50 on the phantom test set fell by more than "
            f"{max_drop * 100:.1f} point(s): " + ", ".join(f"{k} {v * 100:.2f} pt" for k, v in bad.items())
        )


def manifest(
    r: Recipe, out: Path, files: dict[str, str], cpu_files: dict[str, str], metrics: dict[str, Any]
) -> dict[str, Any]:
    spec = r.input_spec()
    return build_manifest(
        out / files["fp32"],
        name=r.name,
        version=r.version,
        task="detection",
        modality=("US",),
        description=(
            "Lung ultrasound finding detector: B-lines, the pleural line, consolidation and pleural "
            "effusion, boxed on each frame; the B-line count per frame is what the overlay shows. "
            "Trained on a phantom and public clips; guidance for trained operators, not a medical "
            "device, not for diagnosis."
        ),
        input_size=spec.hw,
        color=spec.color,
        layout=spec.layout,
        resize=spec.resize,
        normalize=spec.normalize.model_dump(mode="json"),
        output_kind="yolo",
        labels=r.labels,
        ok_labels=None,
        urgent_labels=[lab for lab in URGENT_LABELS if lab in r.labels],
        thresholds={
            "min_confidence": r.evaluate.min_confidence,
            "review_below": metrics["review_below"],
            "iou": NMS_IOU,  # what the evaluation ran with, so the runtime sees the same boxes
            "max_detections": MAX_DETECTIONS,
        },
        files={p: out / f for p, f in files.items() if p != "fp32"},
        cpu_files={p: out / f for p, f in cpu_files.items()},
        default_precision="int8",
        provenance={
            "data": "phantom frames with exact boxes (firmware_bridge.phantom) and pocus_dev clips with "
            "clip-level labels (CC BY; DATA_SOURCE.md); dataset.json lists what went in",
            "training_code": "tools/lung_detector",
            "recipe": "recipe.toml",
            "seed": r.seed,
            "pruning": f"{metrics['pruning']['flops_removed']:.1%} of FLOPs removed",
            "created": dt.date.today().isoformat(),
        },
        card=CARD_NAME,
    )


def publish(r: Recipe, work: Path, out: Path, *, tiny: bool, wall_s: float | None, log: Any = print) -> dict:
    metrics = json.loads((work / "metrics.json").read_text())
    timing = work / "wall.json"  # written by the last `all` run over this work folder
    if wall_s is not None:
        timing.write_text(json.dumps({"wall_s": wall_s}) + "\n")
    elif timing.exists():
        wall_s = float(json.loads(timing.read_text())["wall_s"])
    metrics["pruning"] = {
        k: v for k, v in json.loads((work / "prune.json").read_text()).items() if k != "finetune_history"
    }
    gate(metrics, r.evaluate.max_map_drop)
    out.mkdir(parents=True, exist_ok=True)
    files = {"fp32": f"{r.name}-fp32.onnx", "int8": f"{r.name}-int8.onnx"}
    cpu_files = {"int8": f"{r.name}-int8-cpu.onnx"}
    shutil.copyfile(work / "int8-cpu.onnx", out / cpu_files["int8"])
    shutil.copyfile(work / "pruned.onnx", out / files["fp32"])
    shutil.copyfile(work / "int8.onnx", out / files["int8"])
    for name in ("dataset.json", "int8.json", "prune.json"):
        shutil.copyfile(work / name, out / ("quantization.json" if name == "int8.json" else name))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if r.source:
        shutil.copyfile(r.source, out / "recipe.toml")
    ds = json.loads((work / "dataset.json").read_text())
    used = [c["file"] for side in ("train", "test") for c in ds["real"][side]]
    man = manifest(r, out, files, cpu_files, metrics)
    card = model_card(r, work, metrics, wall_s)
    shrunk = "a few frames, a few steps" if tiny else None
    write_model_docs(out, man, card, data_source(r.pocus_dir(), used, r.name), smoke_test=shrunk)
    log(f"published {out}")
    return man
