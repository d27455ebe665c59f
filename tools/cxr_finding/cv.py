"""Patient-level validation: grouped k-fold by patient, stratified by label. In each fold a tenth of
the training patients is held back: the model trains on the rest, and its decision threshold (Youden
on the held-back patients' scores) and the INT8 check are fixed there before the validation fold is
scored. Every film is scored once, out of fold; AUC, sensitivity and specificity get 95% bootstrap
intervals resampling patients. The FP32 heatmaps of the validation films are kept for ``cam``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tools.cxr_finding.chain import VARIANTS, build, scores
from tools.cxr_finding.data import Films
from tools.cxr_finding.train import Schedule
from tools.cxr_finding.view import inputs
from tools.modelkit.grouped_stats import auc, fix_threshold
from tools.modelkit.patients import patient_bootstrap, patient_folds

BORDER = 0.12  # share of each side masked in the shortcut check


def masked(images: np.ndarray, share: float = BORDER) -> np.ndarray:
    """The films with a band of ``share`` of each side set to black (markers and text gone)."""
    out = images.copy()
    h, w = out.shape[1:]
    by, bx = int(share * h), int(share * w)
    out[:, :by], out[:, h - by :], out[:, :, :bx], out[:, :, w - bx :] = 0, 0, 0, 0
    return out


def run(films: Films, k: int, s: Schedule, seed: int, work: Path, log: Any = print) -> dict[str, Any]:
    fold_of = patient_folds(films.patients, k, seed, films.labels)
    n = len(films.files)
    oof = {v: np.full(n, np.nan) for v in VARIANTS}
    thr = {v: np.full(n, np.nan) for v in VARIANTS}
    masked_fp32 = np.full(n, np.nan)
    heat: np.ndarray | None = None
    folds = []
    for f in range(k):
        tr, te = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        inner = patient_folds([films.patients[i] for i in tr], 10, seed + f, films.labels[tr]) == 0
        fit_idx, check_idx = tr[~inner], tr[inner]
        log(
            f"fold {f + 1}/{k}: train {len(fit_idx)}, threshold and INT8 check {len(check_idx)}, "
            f"validation {len(te)}"
        )
        d = work / f"fold{f}"
        build(films, fit_idx, check_idx, s, seed + f, d, log)
        x_check, x_test = inputs(films.images[check_idx]), inputs(films.images[te])
        row: dict[str, Any] = {
            "fold": f,
            "train": len(fit_idx),
            "check": len(check_idx),
            "validation": len(te),
        }
        for v in VARIANTS:
            t = fix_threshold(films.labels[check_idx], scores(d / f"{v}.onnx", x_check)[0], "youden")
            p, maps = scores(d / f"{v}.onnx", x_test, heatmaps=v == "fp32")
            oof[v][te], thr[v][te] = p, t
            if maps is not None:
                heat = np.zeros((n, *maps.shape[1:]), np.float16) if heat is None else heat
                heat[te] = maps
            row[v] = {"auc": auc(films.labels[te], p), "threshold": t}
        masked_fp32[te] = scores(d / "fp32.onnx", inputs(masked(films.images[te])))[0]
        log(f"fold {f + 1}: AUC " + ", ".join(f"{v} {row[v]['auc']:.4f}" for v in VARIANTS))
        folds.append(row)
    assert heat is not None and all(np.isfinite(o).all() for o in oof.values()), "every film scored once"
    arrays: dict[str, Any] = {"heat": heat, "masked": masked_fp32}
    arrays.update({f"p_{v}": oof[v] for v in VARIANTS} | {f"t_{v}": thr[v] for v in VARIANTS})
    np.savez_compressed(work / "oof.npz", **arrays)
    out: dict[str, Any] = {
        "scheme": f"grouped {k}-fold by patient id, stratified by label; every film scored out of fold",
        "threshold_from": "Youden on a tenth of each fold's training patients, held back from training",
        "films": n,
        "patients": len(set(films.patients)),
        "folds": folds,
        "variants": {v: figures(films, oof[v], thr[v]) for v in VARIANTS},
        "border_masked_fp32": figures(films, masked_fp32, thr["fp32"]),
    }
    out["drops"] = {
        f"{v}_vs_fp32": out["variants"]["fp32"]["auc"]["value"] - out["variants"][v]["auc"]["value"]
        for v in VARIANTS[1:]
    }
    (work / "cv.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def figures(films: Films, p: np.ndarray, t: np.ndarray, n_boot: int = 2000) -> dict[str, Any]:
    y = films.labels
    call = p >= t

    def ci(stat: Any) -> dict[str, float]:
        it = patient_bootstrap(films.patients, stat, n_boot, 0)
        return {"value": float(stat(np.arange(len(y)))), "low": it.low, "high": it.high}

    def rate(mask_of: Any) -> Any:
        def stat(idx: np.ndarray) -> float:
            m = mask_of(idx)
            return float(call[idx][m].mean()) if m.any() else float("nan")

        return stat

    return {
        "auc": ci(lambda idx: auc(y[idx], p[idx])),
        "sensitivity": ci(rate(lambda idx: y[idx] == 1)),
        "specificity": ci(lambda idx: 1.0 - rate(lambda j: y[j] == 0)(idx)),
        "ppv": ci(lambda idx: float((y[idx][call[idx]] == 1).mean()) if call[idx].any() else float("nan")),
        "npv": ci(
            lambda idx: float((y[idx][~call[idx]] == 0).mean()) if (~call[idx]).any() else float("nan")
        ),
        "positives": int(y.sum()),
        "negatives": int((1 - y).sum()),
    }
