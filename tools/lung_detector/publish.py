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
from tools.lung_detector.shipped import shipped
from tools.modelkit.cards import CARD_NAME, write_model_docs
from tools.modelkit.manifest import build_manifest
from tools.modelkit.pocus import data_source
from tools.modelkit.publish_gate import refuse_drops

URGENT_LABELS = ("consolidation", "effusion")  # synced first (issue 5's priority); not a diagnosis


GATED = (("pruned", "fp32"), ("int8", "pruned"), ("int8_cpu", "pruned"))


def loso_drops(loso: dict[str, Any], r: Recipe) -> dict[str, float]:
    """Clip AUC lost on the leave-one-source-out real clips, variant against its parent, each as
    the runtime runs it."""
    auc = {k: v["auc"] for k, v in loso["variants"].items()}
    pairs = [(shipped(a, r), shipped(b, r)) for a, b in GATED]
    return {f"{a}_vs_{b}": auc[b] - auc[a] for a, b in pairs if a in auc and b in auc}


def gate(metrics: dict[str, Any], max_drop: float) -> None:
    """Pruning and INT8 may each lose at most ``max_drop`` of the grouped (leave-one-source-out)
    clip AUC on real clips, and of the phantom test mAP50."""
    gated = {f"{a}_vs_{b}" for a, b in GATED}
    drops = {f"phantom mAP50 {k}": v for k, v in metrics["drops"].items() if k in gated}
    drops |= {f"real-clip LOSO AUC {k}": v for k, v in metrics.get("loso_drops", {}).items()}
    refuse_drops(drops, max_drop=max_drop)


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
            "Lung ultrasound finding detector on the scan-line view of the imaging sector: B-lines, "
            "the pleural line, consolidation and pleural effusion, boxed on each frame; the runtime "
            "averages the confident B-line count over a few seconds at one probe position (the clip "
            "score). Trained on a domain-randomised phantom and public clips labelled by a physics-based "
            "teacher; guidance for trained operators, not a medical device, not for diagnosis."
        ),
        input_size=spec.hw,
        color=spec.color,
        layout=spec.layout,
        resize=spec.resize,
        view=spec.view,
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
            "data": "domain-randomised phantom frames with exact boxes (firmware_bridge.phantom) and "
            "pocus_dev clips with clip-level labels, boxed by the physics-based teacher "
            "(CC BY; DATA_SOURCE.md); dataset.json lists what went in",
            "training_code": "tools/lung_detector",
            "recipe": "recipe.toml",
            "seed": r.seed,
            "pruning": f"{metrics['pruning']['flops_removed']:.1%} of FLOPs removed",
            "created": dt.date.today().isoformat(),
        },
        card=CARD_NAME,
        postprocess=r.postprocess,
    )


def publish(r: Recipe, work: Path, out: Path, *, tiny: bool, wall_s: float | None, log: Any = print) -> dict:
    metrics = json.loads((work / "metrics.json").read_text())
    timing = work / "wall.json"  # written by the last `all` run over this work folder
    if wall_s is not None:
        timing.write_text(json.dumps({"wall_s": wall_s}) + "\n")
    elif timing.exists():
        wall_s = float(json.loads(timing.read_text())["wall_s"])
    metrics["wall_s"] = wall_s  # the card quotes it; None when no `all` run timed this work folder
    metrics["pruning"] = {
        k: v for k, v in json.loads((work / "prune.json").read_text()).items() if k != "finetune_history"
    }
    loso = json.loads((work / "loso.json").read_text())
    metrics["loso"] = loso
    metrics["loso_drops"] = loso_drops(loso, r)
    gate(metrics, r.evaluate.max_map_drop)
    out.mkdir(parents=True, exist_ok=True)
    files = {"fp32": f"{r.name}-fp32.onnx", "int8": f"{r.name}-int8.onnx"}
    cpu_files = {"int8": f"{r.name}-int8-cpu.onnx"}
    shutil.copyfile(work / "int8-cpu.onnx", out / cpu_files["int8"])
    shutil.copyfile(work / "pruned.onnx", out / files["fp32"])
    shutil.copyfile(work / "int8.onnx", out / files["int8"])
    for name in ("dataset.json", "int8.json", "prune.json", "loso.md"):
        shutil.copyfile(work / name, out / ("quantization.json" if name == "int8.json" else name))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if r.source:
        shutil.copyfile(r.source, out / "recipe.toml")
    ds = json.loads((work / "dataset.json").read_text())
    used = [c["file"] for c in ds["real"]["clips"]]
    man = manifest(r, out, files, cpu_files, metrics)
    card = model_card(r, work, metrics, wall_s)
    shrunk = "a few frames, a few steps" if tiny else None
    write_model_docs(out, man, card, data_source(r.pocus_dir(), used, r.name), smoke_test=shrunk)
    log(f"published {out}")
    return man
