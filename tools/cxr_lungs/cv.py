"""Patient-level validation: grouped k-fold by patient id. Each fold trains the whole chain (FP32,
pruned, INT8 in both forms) on the other patients' films only, and scores its held-out patients'
films; every film is scored once, out of fold. Figures (mAP50, per-class AP50 and mean IoU) have 95%
bootstrap intervals that resample patients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tools.cxr_lungs import metrics
from tools.cxr_lungs.data import LABELS, Films
from tools.cxr_lungs.train import Schedule
from tools.cxr_lungs.variants import VARIANTS, build
from tools.modelkit.patients import patient_folds


def run(
    films: Films, k: int, s: Schedule, seed: int, work: Path, n_boot: int = 2000, log: Any = print
) -> dict[str, Any]:
    fold_of = patient_folds(films.patients, k, seed)
    oof: dict[str, list[metrics.Prediction | None]] = {v: [None] * len(films) for v in VARIANTS}
    folds = []
    for f in range(k):
        tr, te = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        log(
            f"fold {f + 1}/{k}: {len(tr)} training films, {len(te)} held out "
            f"({len({films.patients[i] for i in te})} patients)"
        )
        report = build(films, tr, s, seed + f, work / f"fold{f}", log)
        test = films.subset(te)
        row: dict[str, Any] = {"fold": f, "train_films": len(tr), "test_films": len(te), "build": report}
        for v in VARIANTS:
            preds = metrics.predict(work / f"fold{f}" / f"{v}.onnx", test)
            for i, p in zip(te, preds):
                oof[v][i] = p
            row[v] = float(
                np.mean([metrics.average_precision(preds, test.boxes, c) for c in range(len(LABELS))])
            )
        log(f"fold {f + 1}: mAP50 " + ", ".join(f"{v} {row[v]:.3f}" for v in VARIANTS))
        folds.append(row)
    summaries = {}
    for v in VARIANTS:
        preds = [p for p in oof[v] if p is not None]
        assert len(preds) == len(films), "every film is scored out of fold once"
        summaries[v] = metrics.summary(preds, films, n_boot, seed)
        summaries[v]["per_film_iou"] = {
            films.files[i]: [
                round(float(x[i]), 4)
                for x in (metrics.best_iou(preds, films.boxes, c) for c in range(len(LABELS)))
            ]
            for i in range(len(films))
        }
    out = {
        "scheme": f"grouped {k}-fold by patient id (patients never split), every film scored out of fold",
        "folds": folds,
        "variants": summaries,
        "drops": {
            f"{v}_vs_fp32": summaries["fp32"]["map50"]["value"] - summaries[v]["map50"]["value"]
            for v in VARIANTS[1:]
        },
        "iou_drops": {
            f"{v}_vs_fp32": float(
                np.mean(
                    [
                        summaries["fp32"]["per_class"][lab]["mean_iou"]["value"]
                        - summaries[v]["per_class"][lab]["mean_iou"]["value"]
                        for lab in LABELS
                    ]
                )
            )
            for v in VARIANTS[1:]
        },
    }
    (work / "cv.json").write_text(json.dumps(out, indent=2) + "\n")
    return out
