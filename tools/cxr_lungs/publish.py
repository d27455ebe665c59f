"""``publish``: the gate, then the model folder (ONNX files, manifest with sha256s, card, attribution).

The published network is the pruned one (FP32 file ``cxr-lungs-fp32.onnx``) with its two INT8
forms; the card's figures are the out-of-fold ones from ``cv.json``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from tools.cxr_lungs.card import data_source, model_card
from tools.cxr_lungs.data import LABELS, Films
from tools.cxr_lungs.view import input_spec
from tools.modelkit.cards import CARD_NAME, write_model_docs
from tools.modelkit.manifest import build_manifest
from tools.modelkit.publish_gate import copy_variants, refuse_drops

NAME = "cxr-lungs"
VERSION = "1.0.0"
THRESHOLDS = {"min_confidence": 0.25, "review_below": 0.5, "iou": 0.45, "max_detections": 4}


def gate(cv: dict[str, Any]) -> None:
    refuse_drops(cv["drops"], "out-of-fold mAP50")


def publish(data: Path, work: Path, out: Path, films: Films, tiny: bool = False) -> Path:
    cv = json.loads((work / "cv.json").read_text())
    build = json.loads((work / "final" / "build.json").read_text())
    stress = json.loads((work / "stress.json").read_text()) if (work / "stress.json").exists() else None
    if not tiny:  # a smoke test's models are untrained: its card says its numbers mean nothing
        gate(cv)
    copy_variants(work / "final", out, NAME)
    man = _manifest(out, input_spec(), build)
    (out / "cv.json").write_text(json.dumps(_slim(cv), indent=2) + "\n")
    (out / "build.json").write_text(json.dumps(build, indent=2) + "\n")
    if stress is not None:
        (out / "stress.json").write_text(json.dumps(stress, indent=2) + "\n")
    write_model_docs(
        out,
        man,
        model_card(cv, build, films, stress),
        data_source(data),
        smoke_test="2 folds, a few training steps" if tiny else None,
    )
    return out


def _manifest(out: Path, spec: Any, build: dict[str, Any]) -> dict[str, Any]:
    return build_manifest(
        out / f"{NAME}-fp32.onnx",
        name=NAME,
        version=VERSION,
        task="detection",
        modality=("CR", "DX"),
        description=(
            "Lung-field detector for chest films: one box per lung field (lung_right is the patient's "
            "right, the image's left on a PA/AP film), for positioning checks (a field cut off by "
            "collimation, rotation, a missing field). Trained on 86 adult films of 42 patients; "
            "quality guidance for radiographers, not a medical device, not for diagnosis."
        ),
        input_size=spec.hw,
        color="gray",
        layout="NCHW",
        resize="letterbox",
        normalize={
            "scale": spec.normalize.scale,
            "mean": list(spec.normalize.mean),
            "std": list(spec.normalize.std),
        },
        labels=LABELS,
        ok_labels=None,
        urgent_labels=None,
        thresholds=THRESHOLDS,
        files={"int8": out / f"{NAME}-int8.onnx"},
        cpu_files={"int8": out / f"{NAME}-int8-cpu.onnx"},
        default_precision="int8",
        provenance={
            "data": "the cxr_dev data set: chest films with radiologist lung boxes (CC BY; DATA_SOURCE.md)",
            "training_code": "tools/cxr_lungs",
            "seed": build["seed"],
            "pruning": f"{build['prune']['flops_removed']:.1%} of FLOPs removed",
            "created": dt.date.today().isoformat(),
        },
        card=CARD_NAME,
    )


def _slim(cv: dict[str, Any]) -> dict[str, Any]:
    """cv.json without the per-fold build logs (kept in the work folder)."""
    return {**cv, "folds": [{k: v for k, v in f.items() if k != "build"} for f in cv["folds"]]}
