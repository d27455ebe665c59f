"""One model through the chain the runtime ships (FP32, pruned and fine-tuned, INT8 in both forms from
the pruned network), each an ONNX file in ``work``, and scoring those files on films."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tools.cxr_finding.data import Films
from tools.cxr_finding.train import Schedule, export, pruned, shift_decision, train
from tools.cxr_finding.view import INPUT_NAME, inputs
from tools.modelkit.grouped_stats import auc, fix_threshold
from tools.modelkit.int8_forms import quantize_forms
from tools.modelkit.publish_gate import MAX_DROP
from tools.modelkit.sessions import cpu_session

VARIANTS = ("fp32", "pruned", "int8", "int8-cpu")
CALIBRATION = 128


def scores(path: Path, x: np.ndarray, heatmaps: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """P(pneumonia) per input (softmax of the logits) and, if asked, the heatmaps [n, C, h, w]."""
    sess = cpu_session(path)
    probs, maps = [], []
    for xi in x:
        logits, heat = sess.run(["logits", "heatmap"], {INPUT_NAME: xi[None]})
        z = logits[0].astype(np.float64)
        e = np.exp(z - z.max())
        probs.append(e[1] / e.sum())
        if heatmaps:
            maps.append(heat[0].astype(np.float16))
    return np.array(probs), (np.stack(maps) if heatmaps else None)


def build(
    films: Films,
    fit_idx: np.ndarray,
    check_idx: np.ndarray,
    s: Schedule,
    seed: int,
    work: Path,
    log: Any = print,
    shift: bool = False,
) -> dict[str, Any]:
    """Train on ``films[fit_idx]``; INT8 forms kept within MAX_DROP of AUC on ``films[check_idx]``
    (other patients of the training side); writes ``work/{fp32,pruned,int8,int8-cpu}.onnx``.
    ``shift``: the pruned network's Youden threshold on the check films is folded into its bias
    before INT8 (``shift_decision``), so the runtime's argmax is that decision."""
    work.mkdir(parents=True, exist_ok=True)
    check_x = inputs(films.images[check_idx])
    check_y = films.labels[check_idx]
    model = train(films, fit_idx, s, seed, log)
    export(model, work / "fp32.onnx", check_x)
    torch.save(model.state_dict(), work / "fp32.pt")
    small, prune_report = pruned(model, films, fit_idx, s, seed, log)
    export(small, work / "pruned.onnx", check_x)
    decision = None
    if shift:
        decision = fix_threshold(check_y, scores(work / "pruned.onnx", check_x)[0], "youden")
        shift_decision(small, decision)
        export(small, work / "pruned.onnx", check_x)
    torch.save(small, work / "pruned.pt")
    rng = np.random.default_rng(seed + 7)
    calib = inputs(films.images[rng.choice(fit_idx, min(CALIBRATION, len(fit_idx)), replace=False)])
    q = quantize_forms(
        work / "pruned.onnx",
        work,
        "pruned",
        calib,
        INPUT_NAME,
        lambda p: auc(check_y, scores(p, check_x)[0]),
        MAX_DROP,
        (),
        log,
    )
    for form in ("int8", "int8-cpu"):
        (work / f"pruned-{form}.onnx").replace(work / f"{form}.onnx")
        q["forms"][form]["file"] = f"{form}.onnx"
    q["calibration_source"] = "films of the training patients, as the runtime feeds them"
    q["score"] = "AUC on held-back training patients"
    report = {
        "decision_threshold": decision,
        "prune": prune_report,
        "quantize": q,
        "schedule": s.__dict__,
        "seed": seed,
    }
    (work / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
