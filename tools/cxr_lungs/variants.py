"""One model through the chain the runtime ships: FP32, pruned and fine-tuned, INT8 in both forms
(from the pruned network), each an ONNX file in ``work``; shared by the folds and the published run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tools.cxr_lungs import metrics
from tools.cxr_lungs.data import LABELS, Films
from tools.cxr_lungs.train import Schedule, export, plain_inputs, pruned, train
from tools.cxr_lungs.view import INPUT_NAME
from tools.modelkit.int8_forms import quantize_forms
from tools.modelkit.publish_gate import MAX_DROP

VARIANTS = ("fp32", "pruned", "int8", "int8-cpu")
OP_TYPES = ("Conv", "Relu")  # the box decode after the head stays float
CALIBRATION = 64


def fit_score(path: Path, films: Films) -> float:
    """Mean over the fields of the best box's IoU on these films (what quantization must keep)."""
    preds = metrics.predict(path, films)
    return float(np.mean([metrics.best_iou(preds, films.boxes, c).mean() for c in range(len(LABELS))]))


def build(
    films: Films, idx: np.ndarray, s: Schedule, seed: int, work: Path, log: Any = print
) -> dict[str, Any]:
    """Train on ``films[idx]`` and write ``work/{fp32,pruned,int8,int8-cpu}.onnx``; the figures."""
    work.mkdir(parents=True, exist_ok=True)
    check = plain_inputs(films, idx[:4])
    model = train(films, idx, s, seed, log)
    torch.save(model.state_dict(), work / "fp32.pt")
    export(model, work / "fp32.onnx", check)
    small, prune_report = pruned(model, films, idx, s, seed, log)
    export(small, work / "pruned.onnx", check)
    torch.save({"state": small.state_dict(), "widths": prune_report["conv_widths_after"]}, work / "pruned.pt")
    rng = np.random.default_rng(seed + 7)
    calib = plain_inputs(films, rng.choice(idx, min(CALIBRATION, len(idx)), replace=False))
    train_films = films.subset(idx)
    q = quantize_forms(
        work / "pruned.onnx",
        work,
        "pruned",
        calib,
        INPUT_NAME,
        lambda p: fit_score(p, train_films),
        MAX_DROP,
        OP_TYPES,
        log,
    )
    for form in ("int8", "int8-cpu"):
        (work / f"pruned-{form}.onnx").replace(work / f"{form}.onnx")
        q["forms"][form]["file"] = f"{form}.onnx"
    q["calibration_source"] = "films of the training patients, as the runtime feeds them"
    q["score"] = "mean best-box IoU on the training films"
    report = {"prune": prune_report, "quantize": q, "schedule": s.__dict__, "seed": seed}
    (work / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
